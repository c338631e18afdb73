"""Helpers of the browser tests: a database holding the demo company, a real server over it,
and Playwright driving Debian's chromium (never a downloaded browser), recording every request
the page makes and every Content-Security-Policy violation."""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from playwright.async_api import Browser, Page, Request, async_playwright
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app import migrate
from app.db import asyncpg_url
from app.demo import load_demo
from tests.conftest import session_engine
from tests.demo_data import load_demo_rates

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"  # gitignored screenshots
# Records what the page does that a test must see: CSP violations and uncaught errors.
WATCH = """
window.__tidemill = {violations: [], errors: []};
document.addEventListener('securitypolicyviolation',
  (e) => window.__tidemill.violations.push(`${e.violatedDirective} ${e.blockedURI}`));
window.addEventListener('error', (e) => window.__tidemill.errors.push(String(e.message)));
"""


def chromium_path() -> str:
    """Debian's chromium; the tests fail (never skip) without it: `make chromium` installs it."""
    path = shutil.which("chromium") or CHROMIUM
    assert Path(path).exists(), "Debian's chromium is missing: run `make chromium`"
    return path


async def _admin(admin_url: str, statement: str) -> None:
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(sa.text(statement))
    await engine.dispose()


@contextlib.asynccontextmanager
async def demo_database(server_url: str, customers: int = 300) -> AsyncIterator[str]:
    """A fresh database of its own (other tests truncate theirs) with the demo company."""
    admin = asyncpg_url(server_url)
    name = f"tidemill_test_web_{uuid.uuid4().hex[:8]}"
    await _admin(admin.render_as_string(hide_password=False), f'CREATE DATABASE "{name}"')
    url = admin.set(database=name).render_as_string(hide_password=False)
    engine = session_engine(url)
    try:
        await migrate.upgrade(engine)
        await load_demo_rates(engine)
        await load_demo(engine, customers, 7, progress=lambda _stage, _count: None)
        await engine.dispose()
        yield url
    finally:
        await engine.dispose()
        await _admin(
            admin.render_as_string(hide_password=False), f'DROP DATABASE "{name}" WITH (FORCE)'
        )


async def delete_keys(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(sa.text("DELETE FROM api_key"))


@dataclass
class Visit:
    """A page and everything it requested."""

    page: Page
    requests: list[str] = field(default_factory=list)

    def foreign(self, origin: str) -> list[str]:
        """Requests that left `origin` (data: and blob: URLs never leave the page)."""
        local = (origin + "/", "data:", "blob:")
        return [url for url in self.requests if not url.startswith(local)]

    async def watched(self) -> dict[str, Any]:
        found: dict[str, Any] = await self.page.evaluate("window.__tidemill")
        return found


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_FLAGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def visit(
    browser: Browser, width: int = 1280, height: int = 900, **context: Any
) -> AsyncIterator[Visit]:
    """A new browser context (its own session storage) and page, watched."""
    page_context = await browser.new_context(
        viewport={"width": width, "height": height}, accept_downloads=True, **context
    )
    page = await page_context.new_page()
    seen = Visit(page)

    def record(request: Request) -> None:
        seen.requests.append(request.url)

    page.on("request", record)
    await page.add_init_script(WATCH)
    try:
        yield seen
    finally:
        await page_context.close()


async def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
