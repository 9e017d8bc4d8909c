"""The remote backend's faults as a user meets them in Home Assistant's config flow."""

from __future__ import annotations

from typing import Any

from homeassistant import config_entries
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from custom_components.miloco.const import (
    CONF_MAX_CONCURRENT,
    CONF_MODEL,
    CONF_TIMEOUT,
    CONF_URL,
    CONF_VERIFY_SSL,
    DOMAIN,
)

from ..model_server import FakeModelServer, Reply, context_exceeded, error

MODEL = "mimo-vl-miloco-7b"


async def _model_step(hass: HomeAssistant, url: str) -> dict[str, Any]:
    """Open the flow, choose a remote server and submit its address; return the model step."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": config_entries.SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"next_step_id": "remote"})
    form = {CONF_URL: url, CONF_VERIFY_SSL: True, CONF_TIMEOUT: 10, CONF_MAX_CONCURRENT: 2}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], form)
    assert result["type"] is FlowResultType.FORM, result
    assert result["step_id"] == "remote_model"
    return result


async def test_a_server_answering_in_segments_can_be_added(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    # A 3.4 KB model list and a thinking probe reply, each arriving in 1,448-byte segments over a LAN.
    model_server.models = [MODEL] + [f"org-{i:02d}/vision-model-{i:02d}-q4_k_m.gguf" for i in range(39)]
    model_server.segmented(1448, pause_s=0.01)
    thoughts = "A red square sits in the middle of a white image. " * 40
    model_server.script(Reply(content=f'<think>{thoughts}</think>{{"result": "yes"}}'))
    result = await _model_step(hass, model_server.url)
    assert len(result["data_schema"].schema[CONF_MODEL].config["options"]) == 40
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_MODEL: MODEL})
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    # Setup lists the models again, in segments too.
    await hass.async_block_till_done()
    assert result["result"].state is ConfigEntryState.LOADED


async def test_a_context_size_400_on_the_probe_is_its_own_error(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model_server.script(context_exceeded())
    result = await _model_step(hass, model_server.url)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_MODEL: MODEL})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "request_too_large"}
    # Not read as a refused response_format: the probe was sent once, with the strongest format.
    assert [body["response_format"]["type"] for body in model_server.chat_requests] == ["json_schema"]


async def test_a_crashing_server_costs_the_probe_one_request(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model_server.default_reply = error(500, "CUDA error: out of memory")
    result = await _model_step(hass, model_server.url)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_MODEL: MODEL})
    assert result["errors"] == {"base": "server_error"}
    assert len(model_server.chat_requests) == 1
