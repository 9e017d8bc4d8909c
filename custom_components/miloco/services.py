"""Service actions: ask the model about cameras now, and dry-run a rule without firing its action."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from homeassistant.components import camera
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv, device_registry as dr
import voluptuous as vol

from .capture import camera_exists
from .const import DOMAIN, SNAPSHOT_TIMEOUT
from .engine.backends.base import VisionBackend, VisionRequest
from .engine.backends.errors import BackendError
from .engine.frames import DEFAULT_DETAIL, DETAIL_BUDGETS, prepare_window
from .engine.parse import ReplyParseError, check_reply_schema, parse_reply
from .engine.prompt import LEAD_IN, CheckSpec, build_combined_request, combined_schema, interpret_combined
from .runtime import MilocoConfigEntry, MilocoRuntime

SERVICE_ANALYZE: Final = "analyze"
SERVICE_EVALUATE_RULE: Final = "evaluate_rule"
ATTR_CAMERAS: Final = "cameras"
ATTR_QUESTION: Final = "question"
ATTR_STRUCTURE: Final = "structure"
ATTR_CONFIG_ENTRY: Final = "config_entry_id"
ATTR_RULE: Final = "rule"
MAX_QUESTION_CHARS: Final = 2000
ANSWER_SCHEMA: Final[Mapping[str, Any]] = {
    "type": "object",
    "properties": {"answer": {"type": "string", "maxLength": MAX_QUESTION_CHARS}},
    "required": ["answer"],
}
ANALYZE_SYSTEM_PROMPT: Final = (
    "You are the vision assistant of a smart-home camera. You receive recent frames of one camera, oldest "
    "first; the last frame is the present moment. Answer the user's question about what the frames show, "
    "briefly and factually. Reply with one JSON object that matches the requested format, and nothing else."
)

ANALYZE_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_CAMERAS): cv.entity_ids,
        vol.Required(ATTR_QUESTION): vol.All(cv.string, vol.Length(min=1, max=MAX_QUESTION_CHARS)),
        vol.Optional(ATTR_STRUCTURE): dict,
        vol.Optional(ATTR_CONFIG_ENTRY): cv.string,
    }
)
EVALUATE_RULE_SCHEMA = vol.Schema({vol.Required(ATTR_RULE): cv.string})


def async_register_services(hass: HomeAssistant) -> None:
    """Register the integration's service actions (once, in async_setup)."""

    async def analyze(call: ServiceCall) -> ServiceResponse:
        return await _async_analyze(hass, call)

    async def evaluate_rule(call: ServiceCall) -> ServiceResponse:
        return await _async_evaluate_rule(hass, call)

    hass.services.async_register(
        DOMAIN, SERVICE_ANALYZE, analyze, schema=ANALYZE_SCHEMA, supports_response=SupportsResponse.ONLY
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_EVALUATE_RULE,
        evaluate_rule,
        schema=EVALUATE_RULE_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )


async def _async_analyze(hass: HomeAssistant, call: ServiceCall) -> ServiceResponse:
    """Ask one question about each camera's latest frames; return the answer per camera."""
    cameras: list[str] = call.data[ATTR_CAMERAS]
    for camera_id in cameras:
        _require_camera(hass, camera_id)
    structure = call.data.get(ATTR_STRUCTURE)
    schema: Mapping[str, Any] = structure or ANSWER_SCHEMA
    try:
        # An unsupported structure is the caller's mistake: say so before any model time is spent.
        check_reply_schema(schema)
    except ValueError as err:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="invalid_structure") from err
    answers: dict[str, Any] = {}
    for camera_id in cameras:
        entry = _entry_for(hass, camera_id, call.data.get(ATTR_CONFIG_ENTRY))
        frames = await _async_frames(hass, entry.runtime_data, camera_id)
        request = VisionRequest(
            system_prompt=ANALYZE_SYSTEM_PROMPT,
            lead_in=LEAD_IN,
            frames=frames,
            question=str(call.data[ATTR_QUESTION]),
            json_schema=schema,
            max_tokens=1024,
        )
        text, model, latency = await _async_ask(entry.runtime_data.backend, request)
        answer = await _async_parse(hass, text, schema)
        answers[camera_id] = {
            "answer": answer if structure else answer["answer"],
            "frames": len(frames),
            "model": model,
            "latency_s": round(latency, 3),
        }
    return {"cameras": answers}


async def _async_evaluate_rule(hass: HomeAssistant, call: ServiceCall) -> ServiceResponse:
    """Judge one rule on its cameras' latest frames, without touching its state or running its action."""
    device = dr.async_get(hass).async_get(call.data[ATTR_RULE])
    found = _find_rule(hass, device) if device is not None else None
    if found is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="rule_not_found",
            translation_placeholders={"rule": call.data[ATTR_RULE]},
        )
    entry, rule_id = found
    rule = entry.runtime_data.rules[rule_id]
    verdicts: dict[str, Any] = {}
    for camera_id in rule.config.cameras:
        _require_camera(hass, camera_id)
        frames = await _async_frames(hass, entry.runtime_data, camera_id)
        spec = CheckSpec(rules=(rule.spec,))
        request = build_combined_request(spec, frames)
        text, _, latency = await _async_ask(entry.runtime_data.backend, request)
        observation = interpret_combined(await _async_parse(hass, text, combined_schema(spec)), spec)
        verdicts[camera_id] = {
            "verdict": observation.rules.get(rule_id, False),
            "reason": observation.reason,
            "raw_reply": text,
            "frames": len(frames),
            "latency_s": round(latency, 3),
        }
    return {"rule": rule.title, "condition": rule.config.condition, "cameras": verdicts}


def _require_camera(hass: HomeAssistant, camera_id: str) -> None:
    """Raise ServiceValidationError unless the camera entity exists."""
    if not camera_exists(hass, camera_id):
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="camera_not_found",
            translation_placeholders={"camera": camera_id},
        )


def _loaded_entries(hass: HomeAssistant) -> list[MilocoConfigEntry]:
    """Return the loaded Miloco entries."""
    return [
        entry for entry in hass.config_entries.async_entries(DOMAIN) if entry.state is ConfigEntryState.LOADED
    ]


def _entry_for(hass: HomeAssistant, camera_id: str, entry_id: str | None) -> MilocoConfigEntry:
    """Return the backend to ask: the one named, else the one watching the camera, else the first loaded."""
    entries = _loaded_entries(hass)
    if entry_id is not None:
        for entry in entries:
            if entry.entry_id == entry_id:
                return entry
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_loaded",
            translation_placeholders={"entry": entry_id},
        )
    for entry in entries:
        if entry.runtime_data.watcher_for(camera_id) is not None:
            return entry
    if not entries:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="no_backend")
    return entries[0]


def _find_rule(hass: HomeAssistant, device: dr.DeviceEntry) -> tuple[MilocoConfigEntry, str] | None:
    """Return the loaded entry and subentry id of the rule a device stands for."""
    for entry in _loaded_entries(hass):
        for domain, identifier in device.identifiers:
            if domain == DOMAIN and identifier in entry.runtime_data.rules:
                return entry, identifier
    return None


async def _async_frames(hass: HomeAssistant, runtime: MilocoRuntime, camera_id: str) -> list[bytes]:
    """Return the camera's latest window (or one snapshot of an unwatched camera), sized for the model."""
    watcher = runtime.watcher_for(camera_id)
    jpegs = [frame.jpeg for frame in watcher.recent_frames()] if watcher is not None else []
    budget = watcher.config.token_budget if watcher is not None else DETAIL_BUDGETS[DEFAULT_DETAIL]
    if not jpegs:
        try:
            image = await camera.async_get_image(hass, camera_id, timeout=SNAPSHOT_TIMEOUT)
        except HomeAssistantError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="camera_unavailable",
                translation_placeholders={"camera": camera_id},
            ) from err
        jpegs = [image.content]
    prepared = await hass.async_add_executor_job(prepare_window, jpegs, budget)
    return [frame.jpeg for frame in prepared]


async def _async_ask(backend: VisionBackend, request: VisionRequest) -> tuple[str, str, float]:
    """Send the request; translate a backend failure for the caller."""
    try:
        reply = await backend.async_complete(request)
    except BackendError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="backend_error",
            translation_placeholders={"reason": err.reason},
        ) from err
    return reply.text, reply.model, reply.latency_s


async def _async_parse(hass: HomeAssistant, text: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """Parse the reply off the event loop; translate a reply that is not understood."""
    try:
        return await hass.async_add_executor_job(parse_reply, text, schema)
    except ReplyParseError as err:
        raise HomeAssistantError(translation_domain=DOMAIN, translation_key="reply_not_understood") from err
