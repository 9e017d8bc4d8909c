"""On Home Assistant before 2025.8 (no AI Task building block) nothing of Miloco's AI Task loads."""

from __future__ import annotations

from importlib.util import find_spec
import sys

from homeassistant.core import HomeAssistant

from custom_components.miloco import PLATFORMS
from custom_components.miloco.ai_task_flow import AITaskSubentryFlow
from custom_components.miloco.config_flow import MilocoConfigFlow
from custom_components.miloco.const import SUBENTRY_AI_TASK

from .helpers import remote_entry
from .model_server import FakeModelServer

HAS_AI_TASK = find_spec("homeassistant.components.ai_task") is not None


async def test_ai_task_is_offered_exactly_where_home_assistant_has_it(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    entry = remote_entry(model_server)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    types = MilocoConfigFlow.async_get_supported_subentry_types(entry)
    assert (types.get(SUBENTRY_AI_TASK) is AITaskSubentryFlow) is HAS_AI_TASK
    assert ("ai_task" in PLATFORMS) is HAS_AI_TASK
    if not HAS_AI_TASK:
        # The 2025.4 line: neither HA's module nor ours was imported by loading the integration.
        assert "homeassistant.components.ai_task" not in sys.modules
        assert "custom_components.miloco.ai_task" not in sys.modules
