"""The dashboard's and GraphiQL's pages and assets over HTTP (schema/web.py): served from the
package's own build with a strict Content-Security-Policy, nothing from elsewhere, and every
persisted-query hash the bundle sends registered by the server. (test_dashboard.py drives them
in a real browser.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from app.config import QUERIES_DIR
from app.security.manifest import manifest
from app.security.persisted import load_documents
from schema.web import ASSETS_DIR, STATIC_DIR
from tests.edge import persisted, real_app, serving

HTML = {"Accept": "text/html"}
SHA256 = re.compile(r"\b[0-9a-f]{64}\b")
SCRIPT = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)
REPO = Path(__file__).resolve().parents[1]


def built() -> None:
    assert (STATIC_DIR / "index.html").is_file(), "the dashboard is not built: run `make web`"


def csp(header: str) -> dict[str, list[str]]:
    directives = (part.split() for part in header.split(";") if part.strip())
    return {name: values for name, *values in directives}


def external_only(html: str) -> None:
    """Every script of the page is a file of this origin; none is inline or from elsewhere."""
    scripts = SCRIPT.findall(html)
    assert scripts
    for attributes in scripts:
        source = re.search(r'src="([^"]+)"', attributes)
        assert source is not None, f"inline script: {attributes}"
        assert source.group(1).startswith("/assets/"), source.group(1)
    assert "http://" not in html
    assert "https://" not in html


def strict(header: str) -> None:
    policy = csp(header)
    assert policy["script-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]


@pytest.mark.usefixtures("engine")
async def test_the_dashboard_is_served_at_the_root(database_url: str) -> None:
    built()
    async with serving(real_app(database_url)) as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        strict(page.headers["content-security-policy"])
        assert page.headers["x-content-type-options"] == "nosniff"
        external_only(page.text)
        for asset in re.findall(r'(?:src|href)="(/assets/[^"]+)"', page.text):
            served = await client.get(asset)
            assert served.status_code == 200, asset
            assert "immutable" in served.headers["cache-control"]
        assert (await client.get("/assets/nothing.js")).status_code == 404


@pytest.mark.usefixtures("engine")
async def test_graphiql_comes_from_the_package_not_a_cdn(database_url: str) -> None:
    built()
    async with serving(real_app(database_url)) as client:
        page = await client.get("/graphql", headers=HTML)
        assert page.status_code == 200
        assert "GraphiQL" in page.text
        strict(page.headers["content-security-policy"])
        external_only(page.text)
        assert "unpkg" not in page.text
        assert "jsdelivr" not in page.text


@pytest.mark.usefixtures("engine")
async def test_graphiql_keeps_its_rules(database_url: str) -> None:
    built()
    snapshot = next(d for d in load_documents().values() if d.name == "MrrSnapshot")
    query = {"extensions": json.dumps(persisted(snapshot.sha256))}
    async with serving(real_app(database_url)) as client:
        hashed = await client.get("/graphql", params=query, headers=HTML)
        assert hashed.headers["content-type"].startswith("application/json")  # not the IDE
    async with serving(real_app(database_url, graphiql=False)) as client:
        page = await client.get("/graphql", headers=HTML)
        assert page.status_code == 404
        assert "GraphiQL" not in page.text


def test_every_hash_the_bundle_sends_is_registered() -> None:
    built()
    registered = {d.sha256 for d in load_documents().values()}
    dashboard = {sha for name, sha in manifest().items() if name.startswith("Dashboard")}
    bundle = "".join(path.read_text() for path in ASSETS_DIR.glob("dashboard-*.js"))
    found = set(SHA256.findall(bundle))
    assert dashboard <= found, "a Dashboard query of queries/ is missing from the bundle"
    assert found <= registered, found - registered
    # Hash only: no document text travels with the bundle.
    assert "query DashboardOverview" not in bundle
    assert "summary(field" not in bundle


@pytest.mark.usefixtures("engine")
async def test_a_hash_from_the_bundle_runs(database_url: str) -> None:
    built()
    bundle = "".join(path.read_text() for path in ASSETS_DIR.glob("dashboard-*.js"))
    meta = next(d for d in load_documents().values() if d.name == "DashboardMeta")
    assert meta.sha256 in bundle
    async with serving(real_app(database_url)) as client:
        response = await client.post("/graphql", json={"extensions": persisted(meta.sha256)})
    assert response.json()["data"]["viewer"]["keyless"] is True


def test_the_wheel_carries_the_build(tmp_path: Path) -> None:
    built()
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    command += ["--quiet", "-w", str(tmp_path), str(REPO)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    [wheel] = tmp_path.glob("tidemill-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "schema/static/index.html" in names
    assert "schema/static/graphiql.html" in names
    assets = {f"schema/static/assets/{path.name}" for path in ASSETS_DIR.iterdir()}
    assert assets <= names, assets - names
    # the persisted queries too: a pip-installed server serves them to the CLI and partners
    documents = {f"queries/{path.name}" for path in QUERIES_DIR.glob("*.graphql")}
    assert documents, "no persisted queries in the checkout"
    assert documents <= names, documents - names
