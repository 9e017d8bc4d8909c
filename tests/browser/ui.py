"""Driving Home Assistant's real web UI with Playwright, and checking what it shows.

The two supported HA lines ship different frontends (2025.4: Material 2 widgets, vaadin combo boxes, subentry
actions in the entry's menu; 2026.10: new pickers in popovers, subentry buttons on the integration page, a new
"Add action" dialog). The helpers here find the same control in either, by what a person sees: labels, roles
and texts, never by internal element ids.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import contextlib
import io
import json
import os
from pathlib import Path
import re
import time
from typing import Any

from PIL import Image
from playwright.async_api import (
    ConsoleMessage,
    Error as PlaywrightError,
    Locator,
    Page,
    TimeoutError as PlaywrightTimeoutError,
)

REPO = Path(__file__).resolve().parents[2]
TRANSLATIONS: dict[str, Any] = json.loads(
    (REPO / "custom_components" / "miloco" / "translations" / "en.json").read_text()
)
STRINGS: dict[str, Any] = json.loads((REPO / "custom_components" / "miloco" / "strings.json").read_text())

# Debian's chromium, on the host and in the Debian-testing root filesystem (scripts/test installs both).
CHROMIUM = os.environ.get("MILOCO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests run as root
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
    # Only loopback exists for the browser: Home Assistant and nothing else. Other hosts (the brand icon
    # CDN of HA 2025.4, documentation links) fail at once instead of waiting on DNS.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
VIEWPORT = {"width": 1280, "height": 800}

# MILOCO_SCREENSHOTS=1 saves a screenshot of each step of the walkthrough to docs/images/ (for the README);
# a normal run only checks and does not rewrite them. They come from the newest HA line, what most users see:
# scripts/test runs both suites at once, and two writers would leave a mix of the two frontends.
SCREENSHOT_DIR = REPO / "docs" / "images"
SCREENSHOT_SUITE = "newest"


def screenshots_enabled() -> bool:
    """Return whether this run should (re)write the README's screenshots."""
    if os.environ.get("MILOCO_SCREENSHOTS", "") in ("", "0"):
        return False
    # MILOCO_SUITE is set by scripts/lib/suite; a pytest run by hand writes them from its own HA.
    return os.environ.get("MILOCO_SUITE", SCREENSHOT_SUITE) == SCREENSHOT_SUITE


def _keys(tree: Any) -> Iterator[str]:
    """Yield every key of a nested translation dict."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield key
            yield from _keys(value)


# Our translation keys, as the frontend shows them where a translation is missing: a field's key instead of its
# label, an option's key instead of its name. A whole text equal to any key is one; inside longer text only
# keys with an underscore count (a bare "camera" or "user" is also an ordinary word).
ALL_KEYS = frozenset(_keys(STRINGS)) - {"fps"}  # also the unit shown after the frames-per-second box
RAW_KEYS = sorted({key for key in ALL_KEYS if "_" in key}, key=len, reverse=True)
RAW_KEY_RE = re.compile(r"(?<![\w.\-/])(" + "|".join(map(re.escape, RAW_KEYS)) + r")(?![\w.\-/])")
# Translation paths the frontend shows when it finds no string, and placeholders left unfilled.
RAW_PATH_RE = re.compile(r"component\.miloco\.|config_subentries|\{[a-z_]+\}")
# A whole text that is one snake_case identifier is a key nobody translated (ours or not yet listed).
SNAKE_CASE_RE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+")

# All text in the page, through every shadow root (Home Assistant's UI is web components all the way down).
DEEP_TEXT_JS = """() => {
  const out = [];
  const walk = (node) => {
    if (node.nodeType === Node.TEXT_NODE) {
      const text = node.textContent.trim();
      if (text) out.push(text);
      return;
    }
    if (node.nodeType === Node.ELEMENT_NODE) {
      if (['STYLE', 'SCRIPT', 'TEMPLATE'].includes(node.tagName)) return;
      if (node.shadowRoot) walk(node.shadowRoot);
    }
    for (const child of node.childNodes) walk(child);
  };
  walk(document);
  return out;
}"""

# True once the element that has the keyboard focus (through shadow roots) is a text input.
FOCUSED_INPUT_JS = """() => {
  let active = document.activeElement;
  while (active && active.shadowRoot && active.shadowRoot.activeElement) active = active.shadowRoot.activeElement;
  return !!active && (active.tagName === 'INPUT' || active.tagName === 'TEXTAREA');
}"""


def untranslated(texts: list[str]) -> list[str]:
    """Return the texts that show a raw translation key, path or placeholder."""
    return [
        text
        for text in texts
        if text in ALL_KEYS
        or RAW_PATH_RE.search(text)
        or RAW_KEY_RE.search(text)
        or SNAKE_CASE_RE.fullmatch(text)
    ]


def _save_png(png: bytes, path: Path) -> None:
    """Save a screenshot as a 256-colour PNG: a third of the size, and the UI's flat colours survive."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
        path, optimize=True
    )


def console_error(kind: str, text: str, url: str, base_url: str) -> str | None:
    """Return how to report a console message, or None when it is no error of Home Assistant's page.

    A failed resource of another host is the sandbox, not a bug: the browser may reach only loopback (see
    CHROMIUM_ARGS), so HA 2025.4's brand icons (fetched from a CDN by the browser) never load.
    """
    if kind != "error" or (url and not url.startswith(base_url)):
        return None
    return f"{text} ({url})" if url else text


class Ui:
    """One browser page on the development Home Assistant, with the checks every step runs."""

    def __init__(self, page: Page, base_url: str) -> None:
        """Watch the page's console from the start."""
        self.page = page
        self.base_url = base_url
        self.console_errors: list[str] = []
        self._step = 0
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.console_errors.append(f"uncaught: {error}"))

    def _on_console(self, message: ConsoleMessage) -> None:
        url = message.location.get("url", "") if message.location else ""
        if (error := console_error(message.type, message.text, url, self.base_url)) is not None:
            self.console_errors.append(error)

    def miloco_console_errors(self) -> list[str]:
        """Return the console errors that mention our integration."""
        return [error for error in self.console_errors if "miloco" in error.lower()]

    async def goto(self, path: str) -> None:
        """Open a page of the UI by its address, as a bookmark would."""
        await self.page.goto(self.base_url + path)

    async def texts(self) -> list[str]:
        """Return every text node of the page, shadow roots included."""
        texts: list[str] = await self.page.evaluate(DEEP_TEXT_JS)
        return texts

    async def wait_for_texts(self, *expected: str, within: float = 30.0) -> None:
        """Wait until the page shows these texts one right after the other (e.g. an entity and its state)."""
        n = len(expected)
        deadline = time.monotonic() + within
        while True:
            texts = await self.texts()
            if any(tuple(texts[i : i + n]) == expected for i in range(len(texts) - n + 1)):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the page does not show {expected} in a row; it shows {texts}")
            await asyncio.sleep(0.25)

    async def checkpoint(self, name: str, *, screenshot: bool = True) -> None:
        """Check that nothing untranslated shows, and save a screenshot when asked to."""
        raw = untranslated(await self.texts())
        assert not raw, f"untranslated text at step '{name}': {raw}"
        errors = self.miloco_console_errors()
        assert not errors, f"console errors about Miloco at step '{name}': {errors}"
        if screenshot and screenshots_enabled():
            self._step += 1
            # Let transitions (dialogs fading in, ripples) settle so the picture shows the final state.
            await self.page.wait_for_timeout(400)
            path = SCREENSHOT_DIR / f"ui-{self._step:02d}-{name}.png"
            _save_png(await self.page.screenshot(), path)

    async def show(self, locator: Locator) -> None:
        """Scroll a dialog so that this element is in the middle of what is visible (for the screenshot)."""
        await locator.evaluate("element => element.scrollIntoView({block: 'center'})")

    async def type_into_focused(self, text: str) -> None:
        """Type once a text field has the focus.

        HA 2026.x binds single-letter shortcuts (a: Assist, c: commands, e: entity search) to the page: keys
        typed before a picker's search field has the focus would open those dialogs instead.
        """
        await self.page.wait_for_function(FOCUSED_INPUT_JS)
        await self.page.keyboard.type(text)

    async def choose(self, name: str) -> None:
        """Search an open picker for `name` and click the item shown with exactly that name."""
        await self.type_into_focused(name)
        item = (
            self.page.locator("ha-combo-box-item")
            .or_(self.page.get_by_role("option"))
            .filter(has=self.page.get_by_text(name, exact=True))
        )
        await item.first.click()
        # HA 2026.x pickers hand the choice to the form only once their popover has finished closing; a
        # field filled before that would be overwritten with the form's data from before the choice.
        await self.page.locator("wa-popover[role=dialog]").first.wait_for(state="detached")

    async def pick(self, picker: Locator, name: str) -> None:
        """Open an entity picker and choose the entity called `name`."""
        await picker.click()
        await self.choose(name)

    async def open_subentry_flow(self, entry_title: str, label: str) -> None:
        """Start adding a subentry ("Add camera", "Add rule") from the integration page.

        HA 2026.x shows a button per subentry type on the integration page; HA 2025.4 lists them in the
        menu of the entry.
        """
        await self.page.get_by_text(entry_title, exact=True).first.wait_for()
        button = self.page.get_by_role("button", name=label, exact=True)
        if await button.count():
            await button.click()
        else:
            await self.page.get_by_role("button", name="Menu").first.click()
            await self.page.get_by_role("menuitem", name=label).click()

    async def click_row(self, cell: Locator) -> None:
        """Click a row of a filtered data table by one of its cells.

        HA 2025.4's data table sometimes leaves a row of the unfiltered list drawn over the first filtered row
        (seen under load: "switch.ac" over "Demo camera Last detection", for good); a person would scroll or
        click again. The click then goes to the cell itself, whose row handles it.
        """
        try:
            await cell.click(timeout=5_000)
        except PlaywrightTimeoutError:
            await cell.dispatch_event("click")

    async def open_device(self, name: str) -> None:
        """Open a device's page from the device list, searching it by name."""
        await self.goto("/config/devices/dashboard")
        await self.page.locator('input[placeholder^="Search"]').filter(visible=True).first.fill(name)
        await self.page.get_by_text(name, exact=True).first.click()
        await self.page.wait_for_url(lambda url: "/config/devices/device/" in url)

    async def close(self) -> None:
        """Close the page (its browser is closed by the fixture)."""
        with contextlib.suppress(PlaywrightError):
            await self.page.close()
