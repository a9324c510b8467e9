"""Helpers of the browser tests: headless Chromium via Playwright (async API, so the browser is
driven from the same event loop as the aiohttp test server), sign-in, screenshots."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SCREENSHOTS = REPO / "artifacts" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required"]
TIMEOUT_MS = 20_000


def chromium_path() -> str | None:
    for candidate in (os.environ.get("HOTLINE_CHROMIUM"), "/usr/bin/chromium",
                      shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """A headless Chromium; the test is skipped when neither Playwright nor Chromium exist."""
    try:
        from playwright.async_api import async_playwright
    except ImportError:  # pragma: no cover - the test extra installs it
        pytest.skip("playwright is not installed")
    executable = chromium_path()
    if executable is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable,
                                                   args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


async def new_page(browser: Any, width: int = 1440, height: int = 900) -> Any:
    context = await browser.new_context(viewport={"width": width, "height": height},
                                        locale="ru-RU", timezone_id="Europe/Moscow")
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    page.console_errors = []  # type: ignore[attr-defined]

    def on_console(message: Any) -> None:
        # The browser itself logs every 4xx answer (expected ones too): keep script errors.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            page.console_errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: page.console_errors.append(str(exc)))
    return page


async def sign_in(page: Any, base_url: str, login: str, password: str) -> None:
    await page.goto(base_url + "/login")
    await page.fill("#login", login)
    await page.fill("#password", password)
    await page.click("#login-submit")


async def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.evaluate("window.scrollTo(0, 0)")  # the sticky header stays on top
    await page.screenshot(path=str(path), full_page=True)
    return path


async def route_exists(harness: Any, method: str, path: str) -> bool:
    """Whether the running app has a route for ``method path`` (parts land in parallel)."""
    assert harness.server is not None
    app = harness.server.app
    for resource in app.router.resources():
        info = resource.get_info()
        pattern = info.get("formatter") or info.get("path") or ""
        if pattern == path and any(route.method in (method, "*") for route in resource):
            return True
    return False


def start_ami(services: Any) -> None:
    """Connect the service to its PBX now (it was started with connect_ami=False so that
    clients could sign in and subscribe before the first call rings)."""
    services.connect_ami()


# Installed before any page script: notes when the screen-pop card first shows a request
# number, and which websocket frames the page had received by then.
POP_OBSERVER = """
(() => {
  const seen = () => {
    const el = document.querySelector('#pop-number');
    if (!el || window.__popSeen) return;
    window.__popSeen = {
      at: performance.now(), text: el.textContent,
      types: (window.__hotlineEvents || []).map((f) => f.type),
    };
  };
  new MutationObserver(seen).observe(document, { childList: true, subtree: true });
})();
"""
