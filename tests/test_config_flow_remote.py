"""The remote-server config flow, driven against a real OpenAI-compatible server on loopback."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import aiohttp
from homeassistant import config_entries
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.selector import TextSelector
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.miloco.const import (
    BACKEND_REMOTE,
    CONF_API_KEY,
    CONF_BACKEND,
    CONF_FALLBACKS,
    CONF_MAX_CONCURRENT,
    CONF_MODEL,
    CONF_TIMEOUT,
    CONF_URL,
    CONF_VERIFY_SSL,
    DOMAIN,
)

from .model_server import FakeModelServer, Reply, boxed, error, garbage, hang, thinking

MODEL = "mimo-vl-miloco-7b"
STRINGS: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "custom_components" / "miloco" / "strings.json").read_text(
        encoding="utf-8"
    )
)


async def _start(hass: HomeAssistant) -> dict[str, Any]:
    """Open the flow and pick the remote option from the menu."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": config_entries.SOURCE_USER})
    assert result["type"] is FlowResultType.MENU
    assert result["menu_options"] == ["remote", "embedded"]
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"next_step_id": "remote"})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "remote"
    return result


def _server_form(url: str, **extra: Any) -> dict[str, Any]:
    return {CONF_URL: url, CONF_VERIFY_SSL: True, CONF_TIMEOUT: 10, CONF_MAX_CONCURRENT: 2, **extra}


async def _to_model_step(hass: HomeAssistant, url: str, **extra: Any) -> dict[str, Any]:
    result = await _start(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], _server_form(url, **extra))
    assert result["type"] is FlowResultType.FORM, result
    assert result["step_id"] == "remote_model"
    return result


async def test_full_flow_creates_entry_after_a_real_probe(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model_server.models = ["text-only-llm", MODEL]
    result = await _to_model_step(hass, model_server.url)
    options = result["data_schema"].schema[CONF_MODEL].config["options"]
    assert options == ["mimo-vl-miloco-7b", "text-only-llm"]

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_MODEL: MODEL})

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == f"{MODEL} on 127.0.0.1"
    assert result["data"] == {
        CONF_BACKEND: BACKEND_REMOTE,
        CONF_URL: f"{model_server.url}/v1",
        CONF_MODEL: MODEL,
        CONF_VERIFY_SSL: True,
        CONF_TIMEOUT: 10,
        CONF_MAX_CONCURRENT: 2,
    }
    assert result["result"].unique_id == f"{model_server.url}/v1#{MODEL}"
    # The probe was a real vision request: system prompt, one JPEG, the question last, thinking off.
    (probe,) = model_server.chat_requests
    assert probe["temperature"] == 0
    assert probe["response_format"]["type"] == "json_schema"
    system, user = probe["messages"]
    assert system["role"] == "system"
    image, question = user["content"]
    prefix = "data:image/jpeg;base64,"
    assert image["image_url"]["url"].startswith(prefix)
    assert base64.b64decode(image["image_url"]["url"][len(prefix) :])[:2] == b"\xff\xd8"
    assert question["text"].endswith("/no_think")


@pytest.mark.parametrize("suffix", ["/v1", "/v1/", "/", "/v1/chat/completions", "  "])
async def test_url_is_normalised(hass: HomeAssistant, model_server: FakeModelServer, suffix: str) -> None:
    result = await _to_model_step(hass, f"  {model_server.url}{suffix}")
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_MODEL: MODEL})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_URL] == f"{model_server.url}/v1"


@pytest.mark.parametrize("url", ["not a url", "ftp://example.com", "http://", "127.0.0.1:8080"])
async def test_invalid_url(hass: HomeAssistant, url: str) -> None:
    result = await _start(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], _server_form(url))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_URL: "invalid_url"}


async def test_cannot_connect_then_recover(hass: HomeAssistant, model_server: FakeModelServer) -> None:
    port = model_server.port
    await model_server.stop()
    result = await _start(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _server_form(f"http://127.0.0.1:{port}")
    )
    assert result["errors"] == {"base": "cannot_connect"}

    # The user starts the server and submits again: the same flow goes on.
    await model_server.start(port)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _server_form(f"http://127.0.0.1:{port}")
    )
    assert result["step_id"] == "remote_model"


async def test_invalid_auth(hass: HomeAssistant, model_server: FakeModelServer) -> None:
    model_server.api_key = "right-key"
    result = await _start(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _server_form(model_server.url, api_key="wrong-key")
    )
    assert result["errors"] == {"base": "invalid_auth"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _server_form(model_server.url, api_key="right-key")
    )
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_MODEL: MODEL})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_API_KEY] == "right-key"
    assert model_server.headers_seen[-1]["Authorization"] == "Bearer right-key"


async def test_server_without_model_list_takes_free_text(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model_server.models_missing = True
    result = await _to_model_step(hass, model_server.url)
    # No list: a plain text field instead of a dropdown.
    assert isinstance(result["data_schema"].schema[CONF_MODEL], TextSelector)

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_MODEL: "no-such-model"})
    assert result["errors"] == {CONF_MODEL: "no_models"}

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_MODEL: MODEL})
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_typed_model_unknown_to_a_listing_server(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    result = await _to_model_step(hass, model_server.url)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_MODEL: "typo-model"})
    assert result["errors"] == {CONF_MODEL: "model_not_found"}


@pytest.mark.parametrize(
    ("reply", "error_key"),
    [
        (garbage(), "bad_reply"),
        (Reply(content='{"result": "maybe"}'), "bad_reply"),
        (Reply(raw_body=b"<html>proxy error</html>"), "bad_reply"),
        (error(500, "boom"), "server_error"),
        (error(429, "slow down", **{"Retry-After": "3600"}), "rate_limited"),
    ],
)
async def test_probe_errors(
    hass: HomeAssistant, model_server: FakeModelServer, reply: Reply, error_key: str
) -> None:
    # Repeat the reply so retries meet it too.
    model_server.default_reply = reply
    result = await _to_model_step(hass, model_server.url)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_MODEL: MODEL})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": error_key}


async def test_model_that_cannot_see(hass: HomeAssistant, model_server: FakeModelServer) -> None:
    model_server.reject_images = True
    result = await _to_model_step(hass, model_server.url)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_MODEL: MODEL})
    assert result["errors"] == {"base": "no_vision"}
    # Rejected at once, not retried.
    assert len(model_server.chat_requests) == 1


async def test_timeout(hass: HomeAssistant, model_server: FakeModelServer) -> None:
    model_server.script(hang())
    result = await _start(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**_server_form(model_server.url), CONF_TIMEOUT: 5}
    )
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_MODEL: MODEL})
    assert result["errors"] == {"base": "timeout"}


@pytest.mark.parametrize("reply", [thinking(), boxed(), thinking('```json\n{"result": "No"}\n```')])
async def test_thinking_and_boxed_answers_are_understood(
    hass: HomeAssistant, model_server: FakeModelServer, reply: Reply
) -> None:
    model_server.script(reply)
    result = await _to_model_step(hass, model_server.url)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_MODEL: MODEL})
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_busy_server_is_retried_after_its_retry_after(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    # One short Retry-After is waited for within the probe; a longer or repeated one is the user's to retry.
    model_server.script(error(429, "busy", **{"Retry-After": "0"}))
    result = await _to_model_step(hass, model_server.url)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_MODEL: MODEL})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert len(model_server.chat_requests) == 2


async def test_server_without_json_schema_support_falls_back(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    # llama-cpp-python's own server knows only json_object (with an optional schema).
    model_server.accepted_formats = {"json_object"}
    result = await _to_model_step(hass, model_server.url)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_MODEL: MODEL})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    formats = [body["response_format"] for body in model_server.chat_requests]
    assert formats[0]["type"] == "json_schema"
    assert formats[1] == {"type": "json_object", "schema": formats[0]["json_schema"]["schema"]}


async def test_duplicate_is_aborted(hass: HomeAssistant, model_server: FakeModelServer) -> None:
    MockConfigEntry(domain=DOMAIN, unique_id=f"{model_server.url}/v1#{MODEL}", data={}).add_to_hass(hass)
    result = await _to_model_step(hass, f"{model_server.url}/v1/")
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_MODEL: MODEL})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert model_server.chat_requests == []


@pytest.mark.parametrize("step", ["remote", "remote_model"])
async def test_unexpected_errors_show_unknown(
    hass: HomeAssistant, model_server: FakeModelServer, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in a library")

    if step == "remote":
        result = await _start(hass)
        monkeypatch.setattr(aiohttp.ClientSession, "request", broken)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], _server_form(model_server.url)
        )
    else:
        result = await _to_model_step(hass, model_server.url)
        monkeypatch.setattr(aiohttp.ClientSession, "request", broken)
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_MODEL: MODEL})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "unknown"}


async def test_a_deeply_nested_reply_is_not_understood(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model_server.script(Reply(raw_body=b"[" * 200_000))
    result = await _to_model_step(hass, model_server.url)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_MODEL: MODEL})
    assert result["errors"] == {"base": "bad_reply"}


async def _to_fallback_step(hass: HomeAssistant, url: str) -> dict[str, Any]:
    result = await _to_model_step(hass, url)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_MODEL: MODEL, "add_fallback": True}
    )
    assert result["type"] is FlowResultType.FORM, result
    assert result["step_id"] == "fallback"
    return result


async def test_fallback_servers_are_probed_and_stored_in_order(
    hass: HomeAssistant, model_server: FakeModelServer, second_server: FakeModelServer
) -> None:
    second_server.api_key = "fallback-key"
    result = await _to_fallback_step(hass, model_server.url)
    assert result["description_placeholders"]["number"] == "1"
    # The fallback is probed like the first server: a wrong key is refused with a translated error.
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: second_server.url, CONF_API_KEY: "wrong", "add_fallback": False}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    assert "invalid_auth" in STRINGS["config"]["error"]
    # The same server and model as the first one is not a fallback.
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: f"{model_server.url}/v1", "add_fallback": False}
    )
    assert result["errors"] == {CONF_URL: "fallback_duplicate"}
    # A model left empty is the first server's.
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            CONF_URL: second_server.url,
            CONF_API_KEY: "fallback-key",
            CONF_VERIFY_SSL: False,
            "add_fallback": True,
        },
    )
    assert result["step_id"] == "fallback"
    assert result["description_placeholders"]["number"] == "2"
    # An empty address ends the list.
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"add_fallback": False})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_FALLBACKS] == [
        {
            CONF_URL: f"{second_server.url}/v1",
            CONF_MODEL: MODEL,
            CONF_VERIFY_SSL: False,
            CONF_API_KEY: "fallback-key",
        }
    ]
    # Two probes reached the fallback: the one with the wrong key, and the good one.
    assert len(second_server.chat_requests) == 2
    assert result["data"][CONF_URL] == f"{model_server.url}/v1"


@pytest.mark.parametrize(
    ("form", "errors"),
    [
        ({CONF_URL: "ftp://example.com"}, {CONF_URL: "invalid_url"}),
        ({CONF_URL: "http://127.0.0.1/\x00"}, {CONF_URL: "invalid_text"}),
        ({CONF_URL: "http://127.0.0.1:9", CONF_MODEL: "x" * 5000}, {CONF_MODEL: "text_too_long"}),
        ({CONF_URL: "http://127.0.0.1:9"}, {"base": "cannot_connect"}),
    ],
)
async def test_a_bad_fallback_is_refused(
    hass: HomeAssistant, model_server: FakeModelServer, form: dict[str, Any], errors: dict[str, str]
) -> None:
    result = await _to_fallback_step(hass, model_server.url)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**form, "add_fallback": False}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    for key in errors.values():
        assert key in STRINGS["config"]["error"]


async def test_reconfigure_walks_through_the_fallbacks_and_keeps_their_keys(
    hass: HomeAssistant, model_server: FakeModelServer, second_server: FakeModelServer
) -> None:
    second_server.api_key = "fallback-key"
    fallback = {CONF_URL: f"{second_server.url}/v1", CONF_MODEL: MODEL, CONF_VERIFY_SSL: True}
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="old",
        unique_id=f"{model_server.url}/v1#{MODEL}",
        data={
            CONF_BACKEND: BACKEND_REMOTE,
            CONF_URL: f"{model_server.url}/v1",
            CONF_MODEL: MODEL,
            CONF_VERIFY_SSL: True,
            CONF_TIMEOUT: 10,
            CONF_MAX_CONCURRENT: 2,
            CONF_FALLBACKS: [{**fallback, CONF_API_KEY: "fallback-key"}],
        },
    )
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], _server_form(model_server.url))
    assert result["step_id"] == "remote_model"
    # The stored fallbacks are walked through by default.
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_MODEL: MODEL})
    assert result["step_id"] == "fallback"
    suggested = {
        str(key): (key.description or {}).get("suggested_value") for key in result["data_schema"].schema
    }
    assert suggested[CONF_URL] == fallback[CONF_URL]
    # The key is never shown back; left empty, the stored one stays (the probe needs it).
    assert suggested.get(CONF_API_KEY) is None
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: fallback[CONF_URL], "add_fallback": False}
    )
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_FALLBACKS] == [{**fallback, CONF_API_KEY: "fallback-key"}]

    # Unticked, the fallbacks go.
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], _server_form(model_server.url))
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_MODEL: MODEL, "add_fallback": False}
    )
    assert result["reason"] == "reconfigure_successful"
    assert CONF_FALLBACKS not in entry.data
