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
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
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
    CONF_FALLBACKS,
    CONF_MAX_CONCURRENT,
    CONF_MMPROJ_PATH,
    CONF_MODEL,
    CONF_MODEL_PATH,
    CONF_THREADS,
    CONF_TIMEOUT,
    CONF_URL,
    CONF_VERIFY_SSL,
    DOMAIN,
    ENV_DEFAULT_MMPROJ_PATH,
    ENV_DEFAULT_MODEL_PATH,
    LLAMA_CPP_INSTALL_HINT,
    SUBENTRY_AI_TASK,
    SUBENTRY_CAMERA,
    SUBENTRY_RULE,
    TEST_MODEL_TITLE_SUFFIX,
)
from .engine.backends.errors import BackendError
from .engine.backends.openai_compat import normalize_base_url
from .fallback_servers import (
    CONF_ADD_FALLBACK,
    MAX_FALLBACKS,
    async_check_fallback,
    fallback_schema,
    wants_no_server,
)
from .flow_checks import async_check_model_files, async_list_remote_models, async_probe_remote
from .form_fields import number_field, text_field
from .rule_flow import RuleSubentryFlow
from .server_keys import async_check_new_keys, reauth_schema, refused_servers, server_name
from .settings import (
    API_KEY_TEXT,
    CONTEXT_SIZE,
    EMBEDDED_TIMEOUT,
    MAX_CONCURRENT,
    MMPROJ_PATH_TEXT,
    MODEL_PATH_TEXT,
    MODEL_TEXT,
    REMOTE_TIMEOUT,
    THREADS,
    URL_TEXT,
    form_errors,
    placeholders,
)

REMOTE_FIELDS = (URL_TEXT, API_KEY_TEXT, REMOTE_TIMEOUT, MAX_CONCURRENT)
EMBEDDED_FIELDS = (MODEL_PATH_TEXT, MMPROJ_PATH_TEXT, THREADS, CONTEXT_SIZE, EMBEDDED_TIMEOUT)

REMOTE_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_URL): text_field(URL_TEXT, TextSelectorType.URL),
        vol.Optional(CONF_API_KEY): text_field(API_KEY_TEXT, TextSelectorType.PASSWORD),
        vol.Required(CONF_VERIFY_SSL, default=True): BooleanSelector(),
        vol.Required(CONF_TIMEOUT, default=REMOTE_TIMEOUT.default): number_field(REMOTE_TIMEOUT),
        vol.Required(CONF_MAX_CONCURRENT, default=MAX_CONCURRENT.default): number_field(MAX_CONCURRENT),
    }
)

EMBEDDED_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_MODEL_PATH): text_field(MODEL_PATH_TEXT),
        vol.Required(CONF_MMPROJ_PATH): text_field(MMPROJ_PATH_TEXT),
        vol.Optional(CONF_THREADS): number_field(THREADS),
        vol.Required(CONF_CONTEXT_SIZE, default=CONTEXT_SIZE.default): number_field(CONTEXT_SIZE),
        vol.Required(CONF_TIMEOUT, default=EMBEDDED_TIMEOUT.default): number_field(EMBEDDED_TIMEOUT),
    }
)


def remote_unique_id(url: str, model: str) -> str:
    """Return the identity of a remote backend: the normalised API root and the model."""
    return f"{URL(url).with_user(None)}#{model}"


def _remote_title(url: str, model: str) -> str:
    """Return a readable entry title such as 'mimo-vl-miloco-7b on 192.168.1.20'."""
    return f"{model} on {URL(url).host}"


def _expand_paths(model: str, mmproj: str) -> tuple[str, str, str] | None:
    """Return both paths with ~ expanded, and the model's real path as the entry's identity (blocking).

    Return None when the model path cannot be resolved (a loop of links, a name too long).
    """
    model_path = Path(model.strip()).expanduser()
    mmproj_path = Path(mmproj.strip()).expanduser()
    try:
        return str(model_path), str(mmproj_path), str(model_path.resolve())
    except (OSError, RuntimeError, ValueError):
        return None


def _development_defaults() -> dict[str, str]:
    """Return model paths that scripts/develop offers (the tiny test pair), or nothing outside development."""
    defaults = {
        CONF_MODEL_PATH: os.environ.get(ENV_DEFAULT_MODEL_PATH, ""),
        CONF_MMPROJ_PATH: os.environ.get(ENV_DEFAULT_MMPROJ_PATH, ""),
    }
    return {key: value for key, value in defaults.items() if value}


def _entered(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """Return the form's values without the optional fields left empty (a required one stays, to be refused)."""
    return {
        key: value
        for key, value in user_input.items()
        if key not in (CONF_API_KEY, CONF_THREADS) or (value is not None and value != "")
    }


class MilocoConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up or change the model backend of a Miloco entry."""

    VERSION = 1
    MINOR_VERSION = 1

    def __init__(self) -> None:
        """Start with nothing entered."""
        self._remote: dict[str, Any] = {}
        self._models: list[str] = []
        # The first server, checked, with its title and unique id, while fallback servers are added after it.
        self._primary: dict[str, Any] = {}
        self._identity = ("", "")
        self._fallbacks: list[dict[str, Any]] = []

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
            values = _entered(user_input)
            errors = form_errors(REMOTE_FIELDS, values)
            if not errors:
                try:
                    url = normalize_base_url(values[CONF_URL])
                except ValueError:
                    errors[CONF_URL] = "invalid_url"
            if not errors:
                # An empty key field on reconfigure keeps the stored key (it is never shown back).
                api_key = values.get(CONF_API_KEY) or current.get(CONF_API_KEY)
                self._remote = {
                    CONF_BACKEND: BACKEND_REMOTE,
                    CONF_URL: url,
                    CONF_VERIFY_SSL: bool(values[CONF_VERIFY_SSL]),
                    CONF_TIMEOUT: values[CONF_TIMEOUT],
                    CONF_MAX_CONCURRENT: values[CONF_MAX_CONCURRENT],
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
            description_placeholders=placeholders(REMOTE_FIELDS),
        )

    async def async_step_remote_model(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Choose the model (from the server's list when it has one) and probe it with a real image."""
        errors: dict[str, str] = {}
        if user_input is not None:
            values = dict(user_input)
            errors = form_errors((MODEL_TEXT,), values)
            if not errors:
                model = values[CONF_MODEL].strip()
                data = {**self._remote, CONF_MODEL: model}
                unique_id = remote_unique_id(data[CONF_URL], model)
                if (abort := await self._async_claim_unique_id(unique_id)) is not None:
                    return abort
                error = await async_probe_remote(self.hass, data)
                if error == "model_not_found" and not self._models:
                    error = "no_models"
                if error is None and values.get(CONF_ADD_FALLBACK):
                    self._primary = data
                    self._identity = (_remote_title(data[CONF_URL], model), unique_id)
                    self._fallbacks = []
                    return await self.async_step_fallback()
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
            else text_field(MODEL_TEXT)
        )
        current_model = (
            None
            if errors.get(CONF_MODEL) in ("invalid_text", "text_too_long")
            else ((user_input or self._current_data()).get(CONF_MODEL))
        )
        default = current_model or (self._models[0] if self._models else None)
        key = vol.Required(CONF_MODEL) if default is None else vol.Required(CONF_MODEL, default=default)
        # Changing the settings walks through the stored fallback servers unless this is unticked.
        add_fallback = bool(
            (user_input or {}).get(CONF_ADD_FALLBACK, self._current_data().get(CONF_FALLBACKS))
        )
        return self.async_show_form(
            step_id="remote_model",
            data_schema=vol.Schema(
                {key: selector, vol.Required(CONF_ADD_FALLBACK, default=add_fallback): BooleanSelector()}
            ),
            errors=errors,
            description_placeholders={"url": URL(self._remote[CONF_URL]).with_user(None).human_repr()},
        )

    async def async_step_fallback(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for one more server, tried in order when the ones before it fail; probe it like the first."""
        primary = self._primary
        errors: dict[str, str] = {}
        stored_list: list[dict[str, Any]] = list(self._current_data().get(CONF_FALLBACKS) or [])
        position = len(self._fallbacks)
        stored = stored_list[position] if position < len(stored_list) else None
        if user_input is not None:
            values = _entered(user_input)
            if wants_no_server(values):
                return self._async_finish_with_fallbacks()
            fallback, errors = await async_check_fallback(
                self.hass, values, primary=primary, taken=self._fallbacks, stored=stored
            )
            if fallback is not None:
                self._fallbacks.append(fallback)
                if values.get(CONF_ADD_FALLBACK) and len(self._fallbacks) < MAX_FALLBACKS:
                    return await self.async_step_fallback()
                return self._async_finish_with_fallbacks()
        suggested = user_input or {key: value for key, value in (stored or {}).items() if key != CONF_API_KEY}
        return self.async_show_form(
            step_id="fallback",
            data_schema=self.add_suggested_values_to_schema(
                fallback_schema(position + 1 < min(len(stored_list), MAX_FALLBACKS)), suggested
            ),
            errors=errors,
            description_placeholders={
                "number": str(position + 1),
                "max": str(MAX_FALLBACKS),
                "model": str(primary[CONF_MODEL]),
            },
        )

    def _async_finish_with_fallbacks(self) -> ConfigFlowResult:
        """Save the first server with the fallback servers checked after it."""
        data = {**self._primary, CONF_FALLBACKS: self._fallbacks} if self._fallbacks else self._primary
        return self._async_finish(*self._identity, data)

    async def async_step_embedded(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the GGUF model and projector files and check them without loading them."""
        errors: dict[str, str] = {}
        if user_input is not None:
            values = _entered(user_input)
            errors = form_errors(EMBEDDED_FIELDS, values)
            if not errors:
                paths = await self.hass.async_add_executor_job(
                    _expand_paths, values[CONF_MODEL_PATH], values[CONF_MMPROJ_PATH]
                )
                if paths is None:
                    errors = {CONF_MODEL_PATH: "file_unreadable"}
                else:
                    result, errors = await self._async_save_embedded(values, *paths)
                    if result is not None:
                        return result
        return self.async_show_form(
            step_id="embedded",
            data_schema=self.add_suggested_values_to_schema(
                EMBEDDED_SCHEMA, user_input or self._current_data() or _development_defaults()
            ),
            errors=errors,
            description_placeholders={"install": LLAMA_CPP_INSTALL_HINT, **placeholders(EMBEDDED_FIELDS)},
        )

    async def _async_save_embedded(
        self, values: Mapping[str, Any], model_path: str, mmproj_path: str, unique_id: str
    ) -> tuple[ConfigFlowResult | None, dict[str, str]]:
        """Check the model pair, then save the entry; return the errors when the pair cannot serve."""
        check = await async_check_model_files(self.hass, model_path, mmproj_path)
        if check.errors:
            return None, check.errors
        if (abort := await self._async_claim_unique_id(unique_id)) is not None:
            return abort, {}
        data: dict[str, Any] = {
            CONF_BACKEND: BACKEND_EMBEDDED,
            CONF_MODEL_PATH: model_path,
            CONF_MMPROJ_PATH: mmproj_path,
            CONF_CONTEXT_SIZE: values[CONF_CONTEXT_SIZE],
            CONF_TIMEOUT: values[CONF_TIMEOUT],
        }
        if CONF_THREADS in values:
            data[CONF_THREADS] = values[CONF_THREADS]
        title = PurePath(model_path).stem
        if check.test_model:
            title += TEST_MODEL_TITLE_SUFFIX
        return self._async_finish(title, unique_id, data), {}

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """Ask for new API keys after a server (the first or a fallback) refused its stored one."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Offer the key of every server, naming those that refused theirs; check new keys before saving."""
        errors: dict[str, str] = {}
        entry = self._get_reauth_entry()
        refused = refused_servers(self.hass, entry)
        if user_input is not None:
            data, errors = await async_check_new_keys(self.hass, entry.data, _entered(user_input))
            if data is not None:
                return self._async_save(entry, "reauth_successful", data=data)
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=reauth_schema(entry.data),
            errors=errors,
            description_placeholders={
                "title": entry.title,
                "servers": ", ".join(server_name(entry.data, index) for index in refused),
            },
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
