"""The AI Task subentry (HA 2025.8+): its availability check, its defaults and its small flow."""

from __future__ import annotations

from importlib.util import find_spec
from typing import Any, Final

from homeassistant.config_entries import ConfigSubentryFlow, SubentryFlowResult
from homeassistant.const import CONF_NAME
from homeassistant.helpers.selector import (
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
)
import voluptuous as vol

from .const import CONF_DETAIL, SUBENTRY_AI_TASK
from .engine.frames import DEFAULT_DETAIL, DETAIL_BUDGETS

# Whether this Home Assistant has the AI Task building block; finding the spec does not import it, so the
# 2025.4 line never loads (or fails to load) anything of it.
AI_TASK_AVAILABLE: Final = find_spec("homeassistant.components.ai_task") is not None

DEFAULT_AI_TASK_NAME: Final = "Miloco AI Task"
AI_TASK_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_NAME): TextSelector(),
        vol.Required(CONF_DETAIL): SelectSelector(
            SelectSelectorConfig(
                options=list(DETAIL_BUDGETS), translation_key=CONF_DETAIL, mode=SelectSelectorMode.DROPDOWN
            )
        ),
    }
)


def default_ai_task_subentry() -> dict[str, Any]:
    """Return the AI Task subentry a new backend entry gets, as the core AI integrations do."""
    return {
        "subentry_type": SUBENTRY_AI_TASK,
        "title": DEFAULT_AI_TASK_NAME,
        "data": {CONF_DETAIL: DEFAULT_DETAIL},
        "unique_id": None,
    }


class AITaskSubentryFlow(ConfigSubentryFlow):
    """Add or change an AI Task entity of a backend: its name and how much detail its images keep."""

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Add an AI Task entity."""
        return await self._async_step_form("user", user_input)

    async def async_step_reconfigure(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Change an AI Task entity."""
        return await self._async_step_form("reconfigure", user_input)

    async def _async_step_form(self, step_id: str, user_input: dict[str, Any] | None) -> SubentryFlowResult:
        """Show the form, then save it."""
        if user_input is not None:
            title = str(user_input[CONF_NAME]).strip() or DEFAULT_AI_TASK_NAME
            data = {CONF_DETAIL: user_input[CONF_DETAIL]}
            if step_id == "reconfigure":
                return self.async_update_and_abort(
                    self._get_entry(), self._get_reconfigure_subentry(), title=title, data=data
                )
            return self.async_create_entry(title=title, data=data)
        if step_id == "reconfigure":
            subentry = self._get_reconfigure_subentry()
            suggested = {CONF_NAME: subentry.title, **subentry.data}
        else:
            suggested = {CONF_NAME: DEFAULT_AI_TASK_NAME, CONF_DETAIL: DEFAULT_DETAIL}
        return self.async_show_form(
            step_id=step_id, data_schema=self.add_suggested_values_to_schema(AI_TASK_SCHEMA, suggested)
        )
