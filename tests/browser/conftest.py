"""Fixtures of the browser test: a development Home Assistant in a subprocess, and Chromium driving its UI."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
import contextlib
import os
from pathlib import Path

import aiohttp
from playwright.async_api import Error as PlaywrightError, async_playwright
import pytest

from testkit.home_assistant import PASSWORD, USERNAME, DevHomeAssistant
from testkit.ports import free_port

from ..ollama_server import ScriptedOllama
from .assist import LOOK_QUESTION
from .ui import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, Ui

_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember whether the test itself failed, for the `ui` fixture's diagnostics."""
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


def _failure_screenshot_path(name: str) -> Path:
    """Return where to keep the screenshot of a failure: the cache's logs, which outlive the suite's TMPDIR."""
    logs = Path(os.environ.get("MILOCO_CACHE", Path.home() / ".cache" / "miloco")) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return logs / f"browser-failure-{name}.png"


def _require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: scripts/test installs Debian's chromium (apt-get install chromium)"
        )


async def _diagnose(driver: Ui, name: str) -> None:
    """Print what the browser showed when the test failed, and keep a screenshot of it."""
    with contextlib.suppress(PlaywrightError):  # a browser that died has nothing to show
        print(f"browser at {driver.page.url}; page text:\n" + "\n".join(await driver.texts()))
        path = _failure_screenshot_path(name)
        await driver.page.screenshot(path=str(path))
        print(f"screenshot of the failure: {path}")


@pytest.fixture
async def dev_ha(socket_enabled: None, tmp_path: Path) -> AsyncGenerator[DevHomeAssistant]:
    """Run a development Home Assistant on a free loopback port, onboarded (owner account created)."""
    ha = DevHomeAssistant(tmp_path / "config", free_port())
    ha.write_config()
    ha.start()
    try:
        async with aiohttp.ClientSession() as session:
            await ha.wait_until_ready(session)
            await ha.onboard(session)
        yield ha
    finally:
        ha.stop()


@pytest.fixture
async def ollama(socket_enabled: None) -> AsyncGenerator[ScriptedOllama]:
    """Run the scripted Ollama server: it asks Miloco's look tool the walkthrough's camera question."""
    server = ScriptedOllama("look", {"camera": "Demo camera", "question": LOOK_QUESTION})
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def ui(request: pytest.FixtureRequest, dev_ha: DevHomeAssistant) -> AsyncGenerator[Ui]:
    """Log in to the development Home Assistant through its login page, in a fresh headless Chromium."""
    _require_chromium()
    async with async_playwright() as playwright:
        # Playwright starts Chromium with a fresh temporary profile (--user-data-dir) of its own.
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport=VIEWPORT, locale="en-US")
            context.set_default_timeout(30_000)
            page = await context.new_page()
            driver = Ui(page, dev_ha.url)
            await driver.goto("/")
            await page.get_by_role("textbox", name="Username").fill(USERNAME)
            await page.get_by_role("textbox", name="Password").fill(PASSWORD)
            await driver.checkpoint("login", screenshot=False)
            await page.get_by_role("button", name="Log in").click()
            # The frontend stores its tokens once it has handled the login redirect; only then may the
            # test open other pages by address.
            await page.wait_for_url(lambda url: "/auth/" not in url and "auth_callback" not in url)
            await page.wait_for_function("() => window.localStorage.getItem('hassTokens') !== null")
            yield driver
            if request.node.stash.get(_FAILED, False):
                await _diagnose(driver, request.node.name)
            await driver.close()
        finally:
            await browser.close()
