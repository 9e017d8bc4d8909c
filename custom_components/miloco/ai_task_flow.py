"""The AI Task subentry (HA 2025.8+): its availability check, its defaults and its small flow."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.util import find_spec
from typing import Any, Final

from homeassistant.config_entries import ConfigSubentryFlow, SubentryFlowResult
from homeassistant.const import CONF_NAME
from homeassistant.helpers.selector import TextSelector
import voluptuous as vol

from .const import LOGGER, SUBENTRY_AI_TASK
from .engine.frames import DETAIL_BUDGETS
from .form_fields import field, marker
from .settings import AI_TASK_SETTINGS, DETAIL, defaults, stored_value

# Whether this Home Assistant has the AI Task building block; finding the spec does not import it, so the
# 2025.4 line never loads (or fails to load) anything of it.
AI_TASK_AVAILABLE: Final = find_spec("homeassistant.components.ai_task") is not None

DEFAULT_AI_TASK_NAME: Final = "Miloco AI Task"
AI_TASK_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_NAME): TextSelector(),
        **{marker(setting): field(setting) for setting in AI_TASK_SETTINGS},
    }
)


def default_ai_task_subentry() -> dict[str, Any]:
    """Return the AI Task subentry a new backend entry gets, as the core AI integrations do."""
    return {
        "subentry_type": SUBENTRY_AI_TASK,
        "title": DEFAULT_AI_TASK_NAME,
        "data": defaults(AI_TASK_SETTINGS),
        "unique_id": None,
    }


def ai_task_budget(data: Mapping[str, Any]) -> int:
    """Return the image-token budget of an AI Task subentry's detail; a bad stored one takes the default (logged)."""
    detail, problem = stored_value(DETAIL, data)
    if problem is not None:
        LOGGER.warning("Miloco AI Task: %s; using %s", problem, detail)
    return DETAIL_BUDGETS[detail]


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
            data = {setting.key: user_input[setting.key] for setting in AI_TASK_SETTINGS}
            if step_id == "reconfigure":
                return self.async_update_and_abort(
                    self._get_entry(), self._get_reconfigure_subentry(), title=title, data=data
                )
            return self.async_create_entry(title=title, data=data)
        if step_id == "reconfigure":
            subentry = self._get_reconfigure_subentry()
            # A bad stored value is offered as its default, as the camera and rule forms do.
            stored = {setting.key: stored_value(setting, subentry.data)[0] for setting in AI_TASK_SETTINGS}
            suggested = {CONF_NAME: subentry.title, **stored}
        else:
            suggested = {CONF_NAME: DEFAULT_AI_TASK_NAME, **defaults(AI_TASK_SETTINGS)}
        return self.async_show_form(
            step_id=step_id, data_schema=self.add_suggested_values_to_schema(AI_TASK_SCHEMA, suggested)
        )
