"""The browser test: the walkthrough in Home Assistant's real web UI (Playwright and Debian's chromium)."""
