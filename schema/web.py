"""The dashboard and GraphiQL, served from the package's own built assets (no CDN).

`make web` builds web/ with Vite into `schema/static/` (package data, so the wheel carries it):
`index.html` (the dashboard, served at `/`), `graphiql.html` (served at `/graphql` to browsers
asking for HTML, when the `graphiql` setting is on) and their hashed files under `/assets/`.
Both pages are sent with a strict Content-Security-Policy: scripts only from this origin (the
built files are external scripts; none is inline), requests only to this origin.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).resolve().parent / "static"
ASSETS_DIR = STATIC_DIR / "assets"

# GraphiQL's stylesheet embeds its fonts and icons as data: URLs; ECharts' PNG export is one.
# Inline *styles* are allowed for GraphiQL's editor; inline *scripts* never are.
CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HTML_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
NOT_BUILT = """<!doctype html><html lang="en"><meta charset="utf-8"><title>Tidemill</title>
<h1>{what} is not built</h1><p>Run <code>make web</code> in the Tidemill repository (it needs
Node.js); releases carry the build.</p></html>"""


def _page(name: str, what: str) -> Response:
    path = STATIC_DIR / name
    if not path.is_file():
        return HTMLResponse(NOT_BUILT.format(what=what), 503, headers=HTML_HEADERS)
    return HTMLResponse(path.read_text(encoding="utf-8"), headers=HTML_HEADERS)


async def dashboard(_: Request) -> Response:
    return _page("index.html", "The dashboard")


def graphiql_page() -> Response:
    """GraphiQL's page, from the package's assets."""
    return _page("graphiql.html", "GraphiQL")


class Assets(StaticFiles):
    """The built files: content-hashed names, so cached for good; 404 before a build."""

    def __init__(self) -> None:
        super().__init__(directory=ASSETS_DIR, check_dir=False)

    async def get_response(self, path: str, scope: Scope) -> Response:
        if not ASSETS_DIR.is_dir():
            return Response("not built (make web)", 404, media_type="text/plain")
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
            response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def routes() -> list[BaseRoute]:
    """`/` (the dashboard) and `/assets/` (the built files of both pages)."""
    return [Route("/", dashboard, methods=["GET"]), Mount("/assets", Assets(), name="assets")]
