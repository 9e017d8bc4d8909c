"""Config flow: connect Miloco to one model backend (a remote server or an embedded GGUF pair)."""

from __future__ import annotations

from collections.abc import Mapping
import os
from pathlib import Path, PurePath
from typing import Any

from homeassistant.config_entries import (
    SOURCE_REAUTH,
    SOURCE_RECONFIGURE,
    ConfigEntry,
    ConfigEntryState,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentryFlow,
)
from homeassistant.core import callback
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import voluptuous as vol
from yarl import URL

from .ai_task_flow import AI_TASK_AVAILABLE, AITaskSubentryFlow, default_ai_task_subentry
from .camera_flow import CameraSubentryFlow
from .const import (
    BACKEND_EMBEDDED,
    BACKEND_REMOTE,
    CONF_API_KEY,
    CONF_BACKEND,
    CONF_CONTEXT_SIZE,
    CONF_MAX_CONCURRENT,
    CONF_MMPROJ_PATH,
    CONF_MODEL,
    CONF_MODEL_PATH,
    CONF_THREADS,
    CONF_TIMEOUT,
    CONF_URL,
    CONF_VERIFY_SSL,
    DEFAULT_CONTEXT_SIZE,
    DEFAULT_EMBEDDED_TIMEOUT,
    DEFAULT_MAX_CONCURRENT,
    DEFAULT_TIMEOUT,
    DOMAIN,
    ENV_DEFAULT_MMPROJ_PATH,
    ENV_DEFAULT_MODEL_PATH,
    LLAMA_CPP_INSTALL_HINT,
    MAX_CONCURRENT_LIMIT,
    MAX_CONTEXT_SIZE,
    MAX_THREADS,
    MAX_TIMEOUT,
    MIN_CONTEXT_SIZE,
    MIN_TIMEOUT,
    SUBENTRY_AI_TASK,
    SUBENTRY_CAMERA,
    SUBENTRY_RULE,
    TEST_MODEL_TITLE_SUFFIX,
)
from .engine.backends.errors import BackendError
from .engine.backends.openai_compat import normalize_base_url
from .flow_checks import async_check_embedded, async_list_remote_models, async_probe_remote
from .rule_flow import RuleSubentryFlow


def _number(minimum: int, maximum: int, unit: str | None = None) -> NumberSelector:
    """Return a boxed integer selector."""
    config = NumberSelectorConfig(min=minimum, max=maximum, step=1, mode=NumberSelectorMode.BOX)
    if unit is not None:
        config["unit_of_measurement"] = unit
    return NumberSelector(config)


REMOTE_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_URL): TextSelector(TextSelectorConfig(type=TextSelectorType.URL)),
        vol.Optional(CONF_API_KEY): TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD)),
        vol.Required(CONF_VERIFY_SSL, default=True): BooleanSelector(),
        vol.Required(CONF_TIMEOUT, default=DEFAULT_TIMEOUT): _number(MIN_TIMEOUT, MAX_TIMEOUT, "s"),
        vol.Required(CONF_MAX_CONCURRENT, default=DEFAULT_MAX_CONCURRENT): _number(1, MAX_CONCURRENT_LIMIT),
    }
)

EMBEDDED_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_MODEL_PATH): TextSelector(),
        vol.Required(CONF_MMPROJ_PATH): TextSelector(),
        vol.Optional(CONF_THREADS): _number(1, MAX_THREADS),
        vol.Required(CONF_CONTEXT_SIZE, default=DEFAULT_CONTEXT_SIZE): _number(
            MIN_CONTEXT_SIZE, MAX_CONTEXT_SIZE
        ),
        vol.Required(CONF_TIMEOUT, default=DEFAULT_EMBEDDED_TIMEOUT): _number(
            MIN_TIMEOUT, MAX_TIMEOUT * 4, "s"
        ),
    }
)

REAUTH_SCHEMA = vol.Schema(
    {vol.Optional(CONF_API_KEY): TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))}
)


def remote_unique_id(url: str, model: str) -> str:
    """Return the identity of a remote backend: the normalised API root and the model."""
    return f"{URL(url).with_user(None)}#{model}"


def _remote_title(url: str, model: str) -> str:
    """Return a readable entry title such as 'mimo-vl-miloco-7b on 192.168.1.20'."""
    return f"{model} on {URL(url).host}"


def _expand_paths(model: str, mmproj: str) -> tuple[str, str, str]:
    """Return both paths with ~ expanded, and the model's real path as the entry's identity (blocking)."""
    model_path = Path(model.strip()).expanduser()
    mmproj_path = Path(mmproj.strip()).expanduser()
    return str(model_path), str(mmproj_path), str(model_path.resolve())


def _development_defaults() -> dict[str, str]:
    """Return model paths that scripts/develop offers (the tiny test pair), or nothing outside development."""
    defaults = {
        CONF_MODEL_PATH: os.environ.get(ENV_DEFAULT_MODEL_PATH, ""),
        CONF_MMPROJ_PATH: os.environ.get(ENV_DEFAULT_MMPROJ_PATH, ""),
    }
    return {key: value for key, value in defaults.items() if value}


def _as_int(value: Any) -> int:
    """Return a number selector's value (a float in the UI) as an int."""
    return int(value)


class MilocoConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up or change the model backend of a Miloco entry."""

    VERSION = 1
    MINOR_VERSION = 1

    def __init__(self) -> None:
        """Start with nothing entered."""
        self._remote: dict[str, Any] = {}
        self._models: list[str] = []

    @classmethod
    @callback
    def async_get_supported_subentry_types(
        cls, config_entry: ConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        """Return the subentries a backend entry holds: the cameras it watches and the rules it judges."""
        types: dict[str, type[ConfigSubentryFlow]] = {
            SUBENTRY_CAMERA: CameraSubentryFlow,
            SUBENTRY_RULE: RuleSubentryFlow,
        }
        if AI_TASK_AVAILABLE:  # ecosystem hook: the AI Task entity of the backend (HA 2025.8+)
            types[SUBENTRY_AI_TASK] = AITaskSubentryFlow
        return types

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask which kind of backend to connect."""
        return self.async_show_menu(step_id="user", menu_options=[BACKEND_REMOTE, BACKEND_EMBEDDED])

    async def async_step_reconfigure(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Change the backend settings of an existing entry, keeping its cameras and rules."""
        if self._get_reconfigure_entry().data[CONF_BACKEND] == BACKEND_EMBEDDED:
            return await self.async_step_embedded()
        return await self.async_step_remote()

    async def async_step_remote(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the server address and credentials, then list its models."""
        errors: dict[str, str] = {}
        current = self._current_data()
        if user_input is not None:
            try:
                url = normalize_base_url(user_input[CONF_URL])
            except ValueError:
                errors[CONF_URL] = "invalid_url"
            else:
                # An empty key field on reconfigure keeps the stored key (it is never shown back).
                api_key = user_input.get(CONF_API_KEY) or current.get(CONF_API_KEY)
                self._remote = {
                    CONF_BACKEND: BACKEND_REMOTE,
                    CONF_URL: url,
                    CONF_VERIFY_SSL: user_input[CONF_VERIFY_SSL],
                    CONF_TIMEOUT: _as_int(user_input[CONF_TIMEOUT]),
                    CONF_MAX_CONCURRENT: _as_int(user_input[CONF_MAX_CONCURRENT]),
                }
                if api_key:
                    self._remote[CONF_API_KEY] = api_key
                try:
                    self._models = await async_list_remote_models(self.hass, self._remote)
                except BackendError as err:
                    errors["base"] = err.reason
                else:
                    return await self.async_step_remote_model()
        suggested = {key: value for key, value in (user_input or current).items() if key != CONF_API_KEY}
        return self.async_show_form(
            step_id="remote",
            data_schema=self.add_suggested_values_to_schema(REMOTE_SCHEMA, suggested),
            errors=errors,
        )

    async def async_step_remote_model(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Choose the model (from the server's list when it has one) and probe it with a real image."""
        errors: dict[str, str] = {}
        if user_input is not None:
            model = str(user_input[CONF_MODEL]).strip()
            data = {**self._remote, CONF_MODEL: model}
            unique_id = remote_unique_id(data[CONF_URL], model)
            if (abort := await self._async_claim_unique_id(unique_id)) is not None:
                return abort
            error = await async_probe_remote(self.hass, data)
            if error == "model_not_found" and not self._models:
                error = "no_models"
            if error is None:
                return self._async_finish(_remote_title(data[CONF_URL], model), unique_id, data)
            errors[CONF_MODEL if error in ("model_not_found", "no_models") else "base"] = error
        selector: SelectSelector | TextSelector = (
            SelectSelector(
                SelectSelectorConfig(
                    options=self._models, custom_value=True, mode=SelectSelectorMode.DROPDOWN
                )
            )
            if self._models
            else TextSelector()
        )
        current_model = (user_input or self._current_data()).get(CONF_MODEL)
        default = current_model or (self._models[0] if self._models else None)
        key = vol.Required(CONF_MODEL) if default is None else vol.Required(CONF_MODEL, default=default)
        return self.async_show_form(
            step_id="remote_model",
            data_schema=vol.Schema({key: selector}),
            errors=errors,
            description_placeholders={"url": URL(self._remote[CONF_URL]).with_user(None).human_repr()},
        )

    async def async_step_embedded(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the GGUF model and projector files and check them without loading them."""
        errors: dict[str, str] = {}
        if user_input is not None:
            model_path, mmproj_path, unique_id = await self.hass.async_add_executor_job(
                _expand_paths, user_input[CONF_MODEL_PATH], user_input[CONF_MMPROJ_PATH]
            )
            data: dict[str, Any] = {
                CONF_BACKEND: BACKEND_EMBEDDED,
                CONF_MODEL_PATH: model_path,
                CONF_MMPROJ_PATH: mmproj_path,
                CONF_CONTEXT_SIZE: _as_int(user_input[CONF_CONTEXT_SIZE]),
                CONF_TIMEOUT: _as_int(user_input[CONF_TIMEOUT]),
            }
            if user_input.get(CONF_THREADS):
                data[CONF_THREADS] = _as_int(user_input[CONF_THREADS])
            check = await async_check_embedded(self.hass, data)
            errors = check.errors
            if not errors:
                if (abort := await self._async_claim_unique_id(unique_id)) is not None:
                    return abort
                title = PurePath(model_path).stem
                if check.test_model:
                    title += TEST_MODEL_TITLE_SUFFIX
                return self._async_finish(title, unique_id, data)
        return self.async_show_form(
            step_id="embedded",
            data_schema=self.add_suggested_values_to_schema(
                EMBEDDED_SCHEMA, user_input or self._current_data() or _development_defaults()
            ),
            errors=errors,
            description_placeholders={"install": LLAMA_CPP_INSTALL_HINT},
        )

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """Ask for a new API key after the server refused the stored one."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Check the new key against the server before saving it."""
        errors: dict[str, str] = {}
        entry = self._get_reauth_entry()
        if user_input is not None:
            data = {**entry.data}
            data.pop(CONF_API_KEY, None)
            if user_input.get(CONF_API_KEY):
                data[CONF_API_KEY] = user_input[CONF_API_KEY]
            try:
                await async_list_remote_models(self.hass, data)
            except BackendError as err:
                errors["base"] = err.reason
            else:
                return self._async_save(entry, "reauth_successful", data=data)
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=REAUTH_SCHEMA,
            errors=errors,
            description_placeholders={"title": entry.title},
        )

    def _current_data(self) -> Mapping[str, Any]:
        """Return the stored data when reconfiguring, else nothing."""
        if self.source == SOURCE_RECONFIGURE:
            return self._get_reconfigure_entry().data
        return {}

    async def _async_claim_unique_id(self, unique_id: str) -> ConfigFlowResult | None:
        """Take the unique id, or return an abort when another entry already has it."""
        entry: ConfigEntry | None = None
        if self.source == SOURCE_RECONFIGURE:
            entry = self._get_reconfigure_entry()
        elif self.source == SOURCE_REAUTH:
            entry = self._get_reauth_entry()
        await self.async_set_unique_id(unique_id)
        for other in self._async_current_entries(include_ignore=False):
            if other.unique_id == unique_id and (entry is None or other.entry_id != entry.entry_id):
                return self.async_abort(reason="already_configured")
        return None

    def _async_finish(self, title: str, unique_id: str, data: dict[str, Any]) -> ConfigFlowResult:
        """Create the entry, or update and reload it when reconfiguring."""
        if self.source == SOURCE_RECONFIGURE:
            return self._async_save(
                self._get_reconfigure_entry(),
                "reconfigure_successful",
                unique_id=unique_id,
                title=title,
                data=data,
            )
        # ecosystem hook: a new backend gets its AI Task entity by default, as core's AI integrations do.
        extra: dict[str, Any] = {"subentries": [default_ai_task_subentry()]} if AI_TASK_AVAILABLE else {}
        return self.async_create_entry(title=title, data=data, **extra)

    def _async_save(self, entry: ConfigEntry, reason: str, **changes: Any) -> ConfigFlowResult:
        """Store changed settings; a loaded entry's update listener reloads it, others are reloaded here."""
        changed = self.hass.config_entries.async_update_entry(entry, **changes)
        if changed and entry.state is not ConfigEntryState.LOADED:
            self.hass.config_entries.async_schedule_reload(entry.entry_id)
        return self.async_abort(reason=reason)
