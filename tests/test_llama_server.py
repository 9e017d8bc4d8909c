"""Real inference through llama.cpp's OpenAI-compatible servers (the Python one and the C++ llama-server).

Every test runs once per server kind (the `llama_server` fixture's parameter); the C++ server is skipped
only on a Debian 12 host, which has no llama.cpp-tools package.
"""

from __future__ import annotations

from homeassistant import config_entries
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from custom_components.miloco.const import CONF_MODEL, DOMAIN
from testkit.llama_server import ALIAS, CppLlamaServer, LlamaServer

from .perception_helpers import wait_for, watch
from .scenes import SceneCamera, waving_hand


async def test_config_flow_lists_and_probes_the_real_server(
    hass: HomeAssistant, llama_server: LlamaServer
) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": config_entries.SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"next_step_id": "remote"})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {"url": llama_server.url, "verify_ssl": True, "timeout": 60, "max_concurrent": 1},
    )
    assert result["step_id"] == "remote_model"
    assert result["data_schema"].schema[CONF_MODEL].config["options"] == [ALIAS]

    # The probe: one generated JPEG through the real vision tower, JSON constrained by the schema.
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_MODEL: ALIAS})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"]["url"] == f"{llama_server.url}/v1"
    await hass.async_block_till_done()


async def test_perception_checks_run_through_the_real_server(
    hass: HomeAssistant, llama_server: LlamaServer
) -> None:
    entry = await watch(hass, llama_server, SceneCamera("Living room", waving_hand()), model=ALIAS)
    watcher = next(iter(entry.runtime_data.watchers.values()))
    # Random weights say random things, but in the schema: every check parses, none fails.
    await wait_for(lambda: watcher.stats.checks >= 2, within=60)
    assert watcher.stats.failures == 0
    assert watcher.stats.last_image_tokens is not None
    # llama-cpp-python's server refuses OpenAI's json_schema form, and the client stepped down once; the
    # C++ server takes it as sent.
    expected_format = {"python": "json_object+schema", "cpp": "json_schema"}[llama_server.kind]
    assert entry.runtime_data.backend.diagnostics()["response_format"] == expected_format
    assert hass.states.get("binary_sensor.living_room_person").state in ("on", "off")
    if isinstance(llama_server, CppLlamaServer):
        # The server's own counters: it decoded the checks' prompts, images included, and generated replies.
        metrics = await hass.async_add_executor_job(llama_server.metrics)
        assert metrics["prompt_tokens_total"] >= watcher.stats.last_image_tokens
        assert metrics["tokens_predicted_total"] > 0


async def test_killed_server_makes_entities_unavailable_and_recovers(
    hass: HomeAssistant, llama_server: LlamaServer
) -> None:
    await watch(hass, llama_server, SceneCamera("Living room", waving_hand()), model=ALIAS)
    person = "binary_sensor.living_room_person"
    await wait_for(lambda: hass.states.get(person).state in ("on", "off"), within=60)

    llama_server.stop()
    await wait_for(lambda: hass.states.get(person).state == STATE_UNAVAILABLE, within=60)

    # Back on the same port: no restart of Home Assistant, no reload of the entry.
    llama_server.start()
    await wait_for(lambda: hass.states.get(person).state in ("on", "off"), within=60)
