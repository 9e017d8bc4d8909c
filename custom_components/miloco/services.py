"""Service actions: ask the model about cameras now, and dry-run a rule without firing its action."""

from __future__ import annotations

from collections.abc import Callable, Mapping
import math
from typing import Any, Final

from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv, device_registry as dr
import voluptuous as vol

from .capture import camera_exists
from .const import DOMAIN
from .engine.answers import ANSWER_SCHEMA, MAX_QUESTION_CHARS
from .engine.parse import check_reply_schema
from .engine.prompt import QuestionSpec
from .entries import entry_for_camera, loaded_entries
from .questions import async_ask, camera_settings, dry_run_spec
from .runtime import MilocoConfigEntry

SERVICE_ANALYZE: Final = "analyze"
SERVICE_EVALUATE_RULE: Final = "evaluate_rule"
ATTR_CAMERAS: Final = "cameras"
ATTR_QUESTION: Final = "question"
ATTR_STRUCTURE: Final = "structure"
ATTR_CONFIG_ENTRY: Final = "config_entry_id"
ATTR_RULE: Final = "rule"
ATTR_MAX_WAIT: Final = "max_wait"
# Ids of config entries and devices are 26 to 32 characters; anything far longer is not one.
MAX_ID_CHARS: Final = 255
MAX_WAIT_S: Final = 600.0
# An answer structure is a small JSON schema; a deep or huge one is a mistake (and deep recursion a fault).
MAX_STRUCTURE_DEPTH: Final = 8
MAX_STRUCTURE_NODES: Final = 500


class _FieldInvalid(vol.Invalid):
    """A service field's value is refused; carries the translation of the reason."""

    def __init__(self, translation_key: str, **placeholders: str) -> None:
        """Remember which translated message explains the refusal."""
        super().__init__(translation_key)
        # Not `translation_key`: newer voluptuous releases define that name as a read-only property.
        self.refusal_key = translation_key
        self.refusal_placeholders = placeholders


def _text(max_chars: int) -> Callable[[Any], str]:
    """Return a validator of text of 1 to `max_chars` characters without control characters but line breaks."""

    def validate(value: Any) -> str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise _FieldInvalid("invalid_text", max=str(max_chars))
        text = str(value)
        if not 0 < len(text) <= max_chars or any(ord(char) < 32 and char not in "\n\t\r" for char in text):
            raise _FieldInvalid("invalid_text", max=str(max_chars))
        return text

    return validate


def _seconds(maximum: float) -> Callable[[Any], float]:
    """Return a validator of a finite number of seconds from 0 to `maximum`."""

    def validate(value: Any) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise _FieldInvalid("invalid_number", min="0", max=f"{maximum:g}") from None
        if isinstance(value, bool) or not (math.isfinite(number) and 0 <= number <= maximum):
            raise _FieldInvalid("invalid_number", min="0", max=f"{maximum:g}")
        return number

    return validate


def _structure(value: Any) -> dict[str, Any]:
    """Return an answer structure that is a small object schema of the supported subset."""
    if not isinstance(value, dict) or not _small(value):
        raise _FieldInvalid("invalid_structure")
    try:
        check_reply_schema(value)
    except ValueError as err:
        raise _FieldInvalid("invalid_structure") from err
    return value


def _small(value: object) -> bool:
    """Return whether a nested value stays within the depth and size of a sensible schema (no recursion)."""
    pending: list[tuple[object, int]] = [(value, 1)]
    nodes = 0
    while pending:
        item, depth = pending.pop()
        nodes += 1
        if depth > MAX_STRUCTURE_DEPTH or nodes > MAX_STRUCTURE_NODES:
            return False
        if isinstance(item, Mapping):
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list | tuple):
            pending.extend((child, depth + 1) for child in item)
    return True


def _cameras(value: Any) -> list[str]:
    """Return the camera entity ids, each once, in the order given."""
    try:
        ids: list[str] = cv.entity_ids(value)
    except (vol.Invalid, TypeError) as err:
        # TypeError: HA's validator iterates over whatever is not a string (a number, for one).
        raise _FieldInvalid("invalid_cameras") from err
    if not ids:
        raise _FieldInvalid("invalid_cameras")
    # A camera named twice is asked once.
    return list(dict.fromkeys(ids))


# HA validates these before the handler runs and would raise a bare vol.Invalid; each field is checked in
# the handler instead (VALIDATE_*), so every refusal is a translated ServiceValidationError.
ANALYZE_SCHEMA = vol.Schema({str: object})
EVALUATE_RULE_SCHEMA = vol.Schema({str: object})
VALIDATE_ANALYZE = vol.Schema(
    {
        vol.Required(ATTR_CAMERAS): _cameras,
        vol.Required(ATTR_QUESTION): _text(MAX_QUESTION_CHARS),
        vol.Optional(ATTR_STRUCTURE): _structure,
        vol.Optional(ATTR_CONFIG_ENTRY): _text(MAX_ID_CHARS),
        vol.Optional(ATTR_MAX_WAIT): _seconds(MAX_WAIT_S),
    }
)
VALIDATE_EVALUATE_RULE = vol.Schema(
    {vol.Required(ATTR_RULE): _text(MAX_ID_CHARS), vol.Optional(ATTR_MAX_WAIT): _seconds(MAX_WAIT_S)}
)


def async_register_services(hass: HomeAssistant) -> None:
    """Register the integration's service actions (once, in async_setup)."""

    async def analyze(call: ServiceCall) -> ServiceResponse:
        return await _async_analyze(hass, _validated(VALIDATE_ANALYZE, call.data))

    async def evaluate_rule(call: ServiceCall) -> ServiceResponse:
        return await _async_evaluate_rule(hass, _validated(VALIDATE_EVALUATE_RULE, call.data))

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


def _validated(schema: vol.Schema, data: Mapping[str, Any]) -> dict[str, Any]:
    """Return the call's data checked and converted; raise a translated ServiceValidationError otherwise."""
    try:
        validated: dict[str, Any] = schema(dict(data))
    except vol.Invalid as err:
        first = err.errors[0] if isinstance(err, vol.MultipleInvalid) else err
        field = str(first.path[0]) if first.path else "?"
        if isinstance(first, _FieldInvalid):
            key, placeholders = first.refusal_key, first.refusal_placeholders
        else:
            # A missing required field or one the service does not have.
            key, placeholders = "invalid_field", {}
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key=key,
            translation_placeholders={"field": field[:MAX_ID_CHARS], **placeholders},
        ) from err
    return validated


async def _async_analyze(hass: HomeAssistant, data: dict[str, Any]) -> ServiceResponse:
    """Ask one question about each camera's latest frames; return the answer per camera."""
    cameras: list[str] = data[ATTR_CAMERAS]
    for camera_id in cameras:
        _require_camera(hass, camera_id)
    structure: dict[str, Any] | None = data.get(ATTR_STRUCTURE)
    wait_s: float | None = data.get(ATTR_MAX_WAIT)
    question = QuestionSpec(question=data[ATTR_QUESTION], json_schema=structure or ANSWER_SCHEMA)
    answers: dict[str, Any] = {}
    for camera_id in cameras:
        entry = entry_for_camera(hass, camera_id, data.get(ATTR_CONFIG_ENTRY))
        result = await async_ask(hass, entry.runtime_data, camera_id, question, wait_s=wait_s)
        parsed = result.structured or {}
        answers[camera_id] = {
            "answer": parsed if structure else parsed.get("answer"),
            "frames": result.frames_sent,
            "model": result.model,
            "latency_s": round(result.latency_s, 3),
        }
    return {"cameras": answers}


async def _async_evaluate_rule(hass: HomeAssistant, data: dict[str, Any]) -> ServiceResponse:
    """Judge one rule on its cameras' latest frames, without touching its state or running its action."""
    device = dr.async_get(hass).async_get(data[ATTR_RULE])
    found = _find_rule(hass, device) if device is not None else None
    if found is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="rule_not_found",
            translation_placeholders={"rule": data[ATTR_RULE]},
        )
    entry, rule_id = found
    runtime = entry.runtime_data
    rule = runtime.rules[rule_id]
    wait_s: float | None = data.get(ATTR_MAX_WAIT)
    verdicts: dict[str, Any] = {}
    for camera_id in dict.fromkeys(rule.config.cameras):
        _require_camera(hass, camera_id)
        spec = dry_run_spec(runtime, camera_settings(runtime, camera_id), rule_id)
        result = await async_ask(hass, runtime, camera_id, spec, wait_s=wait_s)
        verdicts[camera_id] = {
            "verdict": result.observation.rules.get(rule_id, False),
            "reason": result.observation.reason,
            "raw_reply": "\n".join(result.replies),
            "frames": result.frames_sent,
            "latency_s": round(result.latency_s, 3),
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


def _find_rule(hass: HomeAssistant, device: dr.DeviceEntry) -> tuple[MilocoConfigEntry, str] | None:
    """Return the loaded entry and subentry id of the rule a device stands for."""
    for entry in loaded_entries(hass):
        for domain, identifier in device.identifiers:
            if domain == DOMAIN and identifier in entry.runtime_data.rules:
                return entry, identifier
    return None
