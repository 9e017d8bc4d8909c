"""The browser test's own checks, without a browser: what counts as untranslated, and as a Miloco error."""

from __future__ import annotations

import pytest

from testkit.home_assistant import miloco_errors

from .ui import console_error, untranslated

BASE = "http://127.0.0.1:8123"


@pytest.mark.parametrize(
    "text",
    [
        "component.miloco.config_subentries.camera.initiate_flow.user",
        "config_subentries.rule.step.user.title",
        "remote_model",  # a step id shown instead of its title
        "The model says: no_vision",  # an error key inside a sentence
        "gestures",  # a field key shown instead of its label
        "open_palm",  # an option key shown instead of its name
        "Keep it under {max_chars} characters.",  # a placeholder nobody filled in
        "some_new_key",  # any bare snake_case text
    ],
)
def test_raw_keys_are_untranslated(text: str) -> None:
    assert untranslated([text]) == [text]


@pytest.mark.parametrize(
    "text",
    [
        "Watch a camera",
        "Gestures",
        "Demo camera",
        "camera.demo_camera",  # entity ids are shown by some pickers
        "light.bed_light",
        "fps",  # the unit after the frames-per-second box
        "http://127.0.0.1:8123/v1",
        "Created configuration for mimo-vl-miloco-7b on 127.0.0.1.",
    ],
)
def test_translated_text_passes(text: str) -> None:
    assert untranslated([text]) == []


def test_console_errors_of_the_page_count_and_the_sandbox_does_not() -> None:
    assert console_error("error", "boom", f"{BASE}/frontend_latest/app.js", BASE) == (
        f"boom ({BASE}/frontend_latest/app.js)"
    )
    assert console_error("error", "Uncaught TypeError: miloco", "", BASE) == "Uncaught TypeError: miloco"
    # Not errors: warnings, and resources of other hosts (the browser may reach only loopback).
    assert console_error("warning", "deprecated", f"{BASE}/x.js", BASE) is None
    assert (
        console_error(
            "error",
            "Failed to load resource: net::ERR_NAME_NOT_RESOLVED",
            "https://brands.home-assistant.io/_/miloco/icon.png",
            BASE,
        )
        is None
    )


def test_log_errors_about_miloco_are_found_with_their_traceback() -> None:
    log = "\n".join(
        [
            "2026-11-29 00:51:50.553 WARNING (SyncWorker_0) [homeassistant.loader] We found a custom "
            "integration miloco which has not been tested by Home Assistant.",
            "2026-11-29 00:51:51.000 ERROR (MainThread) [homeassistant.components.met] No module named 'metno'",
            "2026-11-29 00:51:52.000 ERROR (MainThread) [homeassistant.config_entries] Error setting up entry",
            "Traceback (most recent call last):",
            '  File "/config/custom_components/miloco/__init__.py", line 1, in async_setup_entry',
            "ValueError: boom",
            "2026-11-29 00:51:53.000 INFO (MainThread) [homeassistant.setup] Setting up light",
        ]
    )
    errors = miloco_errors(log)
    assert len(errors) == 1
    assert "ValueError: boom" in errors[0]


def test_log_errors_of_other_integrations_under_a_miloco_directory_are_not_miloco_errors() -> None:
    # HA 2025.4's media player image proxy fails in the test venv, which lives under ~/.cache/miloco/.
    log = "\n".join(
        [
            "2026-12-07 16:49:37.509 ERROR (MainThread) [aiohttp.server] Error handling request from 127.0.0.1",
            "Traceback (most recent call last):",
            '  File "/root/.cache/miloco/venvs/ha-oldest-1cd234c8f1a3/lib/python3.13/site-packages/'
            'homeassistant/components/media_player/__init__.py", line 1277, in get',
            '  File "/opt/miloco/venvs/ha-newest/lib/python3.14/site-packages/aiodns/__init__.py", line 119',
            "TypeError: Channel.getaddrinfo() takes 3 positional arguments",
            "2026-12-07 16:49:38.000 ERROR (MainThread) [custom_components.miloco.llm_api] Look failed",
            "2026-12-07 16:49:39.000 ERROR (MainThread) [homeassistant.components.script] Error in miloco.analyze",
        ]
    )
    errors = miloco_errors(log)
    assert [error.split(" [")[1].split("]")[0] for error in errors] == [
        "custom_components.miloco.llm_api",
        "homeassistant.components.script",
    ]
