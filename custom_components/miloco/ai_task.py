"""AI Task platform (HA 2025.8+): ai_task.generate_data answered by the entry's vision backend.

Only forwarded where Home Assistant has `homeassistant.components.ai_task` (see ai_task_flow.AI_TASK_AVAILABLE):
nothing on older releases imports this module.
"""

# scripts/lint runs mypy against the 2025.4 floor, which has no ai_task or conversation.Attachment: the names this
# module needs from them are unknown there. Checked with mypy --strict against the newest line's HA instead.
# mypy: disable-error-code="attr-defined, name-defined, misc, import-untyped, import-not-found, no-any-return"

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

from homeassistant.components import ai_task, conversation
from homeassistant.config_entries import ConfigSubentry
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import llm
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
import voluptuous as vol

from .const import AI_TASK_SLOT_WAIT_S, CONF_DETAIL, DOMAIN, SUBENTRY_AI_TASK
from .engine.backends.base import VisionRequest
from .engine.backends.errors import BackendError
from .engine.frames import DEFAULT_DETAIL, DETAIL_BUDGETS, FrameDecodeError, PreparedFrame, prepare_window
from .engine.parse import ReplyParseError, check_reply_schema, parse_reply
from .engine.prompt import AI_TASK_SYSTEM_PROMPT, LEAD_IN
from .engine.scheduling import FairLimiter
from .entity import service_device
from .runtime import MilocoConfigEntry, MilocoRuntime
from .settings import WINDOW_FRAMES

PARALLEL_UPDATES = 0

# Attachments are read into memory: a bound keeps one bad file from taking it all.
MAX_ATTACHMENT_BYTES: Final = 20 * 1024 * 1024
# As many images as a camera's window may hold: the model was tuned on short clips, not albums.
MAX_ATTACHMENTS: Final = int(WINDOW_FRAMES.maximum)
MAX_ANSWER_CHARS: Final = 4000
# Without a structure the model is asked for one JSON field, which the same parser reads.
ANSWER_SCHEMA: Final[Mapping[str, Any]] = {
    "type": "object",
    "properties": {"answer": {"type": "string", "maxLength": MAX_ANSWER_CHARS}},
    "required": ["answer"],
}


async def async_setup_entry(
    hass: HomeAssistant, entry: MilocoConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """Add one AI Task entity for each AI Task subentry of the backend, now and later."""

    def entities_of(runtime: MilocoRuntime, subentry_id: str) -> list[Entity]:
        subentry = entry.subentries.get(subentry_id)
        if subentry is None or subentry.subentry_type != SUBENTRY_AI_TASK:
            return []
        return [MilocoAITaskEntity(entry, subentry)]

    entry.runtime_data.async_register_platform("ai_task", async_add_entities, entities_of)


class MilocoAITaskEntity(ai_task.AITaskEntity):
    """Generates data from instructions and images with the backend that watches the cameras."""

    _attr_has_entity_name = True
    _attr_name = None
    _attr_supported_features = (
        ai_task.AITaskEntityFeature.GENERATE_DATA | ai_task.AITaskEntityFeature.SUPPORT_ATTACHMENTS
    )

    def __init__(self, entry: MilocoConfigEntry, subentry: ConfigSubentry) -> None:
        """Tie the entity to the backend entry and to its own service device."""
        self._entry = entry
        self._budget = DETAIL_BUDGETS.get(str(subentry.data.get(CONF_DETAIL)), DETAIL_BUDGETS[DEFAULT_DETAIL])
        self._slot_key = f"ai_task_{subentry.subentry_id}"
        self._attr_unique_id = subentry.subentry_id
        self._attr_device_info = service_device(subentry.subentry_id, subentry.title, "AI Task")

    async def _async_generate_data(
        self, task: ai_task.GenDataTask, chat_log: conversation.ChatLog
    ) -> ai_task.GenDataTaskResult:
        """Send the instructions and the attachments' images to the backend; return the parsed answer."""
        schema = reply_schema(task.structure) if task.structure is not None else ANSWER_SCHEMA
        frames = await self._async_frames(task.attachments or [])
        request = VisionRequest(
            system_prompt=AI_TASK_SYSTEM_PROMPT,
            lead_in=LEAD_IN if frames else "",
            frames=frames,
            question=task.instructions,
            json_schema=schema,
            max_tokens=1024,
        )
        runtime = self._entry.runtime_data
        async with backend_slot(runtime.limiter, self._slot_key, AI_TASK_SLOT_WAIT_S):
            try:
                reply = await runtime.backend.async_complete(request)
            except BackendError as err:
                raise HomeAssistantError(
                    translation_domain=DOMAIN,
                    translation_key="backend_error",
                    translation_placeholders={"reason": err.reason},
                ) from err
        try:
            parsed = await self.hass.async_add_executor_job(parse_reply, reply.text, schema)
        except ReplyParseError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN, translation_key="reply_not_understood"
            ) from err
        data: Any = parsed if task.structure is not None else parsed["answer"]
        chat_log.async_add_assistant_content_without_tools(
            conversation.AssistantContent(agent_id=self.entity_id or "", content=reply.text)
        )
        return ai_task.GenDataTaskResult(conversation_id=chat_log.conversation_id, data=data)

    async def _async_frames(self, attachments: Sequence[conversation.Attachment]) -> list[bytes]:
        """Return the images, oldest first, sized for the model within this entity's token budget."""
        if len(attachments) > MAX_ATTACHMENTS:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="too_many_attachments",
                translation_placeholders={"max": str(MAX_ATTACHMENTS)},
            )
        for attachment in attachments:
            if not attachment.mime_type.startswith("image/"):
                raise HomeAssistantError(
                    translation_domain=DOMAIN,
                    translation_key="unsupported_attachment",
                    translation_placeholders={"mime_type": attachment.mime_type},
                )
        if not attachments:
            return []
        paths = [attachment.path for attachment in attachments]
        try:
            prepared = await self.hass.async_add_executor_job(_read_and_prepare, paths, self._budget)
        except (FrameDecodeError, OSError, ValueError) as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN, translation_key="attachment_unreadable"
            ) from err
        return [frame.jpeg for frame in prepared]


def _read_and_prepare(paths: Sequence[Path], budget: int) -> list[PreparedFrame]:
    """Read the attachment files and size them like a check's window (blocking: runs in the executor)."""
    images = []
    for path in paths:
        if path.stat().st_size > MAX_ATTACHMENT_BYTES:
            raise ValueError(f"attachment larger than {MAX_ATTACHMENT_BYTES} bytes")
        images.append(path.read_bytes())
    return prepare_window(images, budget)


def _to_openapi(structure: Any) -> Mapping[str, Any]:
    """Return the structure as an OpenAPI schema, with the converter this Home Assistant release uses."""
    try:
        import probatio  # noqa: PLC0415 - HA 2026.x describes structures with probatio

        return probatio.to_openapi(structure, custom_serializer=llm.selector_serializer)
    except ImportError:
        # HA 2025.8 to 2025.x: voluptuous schemas, converted by voluptuous-openapi.
        from voluptuous_openapi import convert  # noqa: PLC0415

        return convert(structure, custom_serializer=llm.selector_serializer)


def reply_schema(structure: Any) -> dict[str, Any]:
    """Return the JSON schema of the answer a task's structure describes, within what our parser reads."""
    try:
        schema = _subset(_to_openapi(structure))
        check_reply_schema(schema)
    except (ValueError, TypeError, vol.Invalid) as err:
        raise HomeAssistantError(translation_domain=DOMAIN, translation_key="invalid_structure") from err
    return schema


_SUBSET_KEYWORDS: Final[Mapping[str, tuple[str, ...]]] = {
    "string": ("enum", "maxLength"),
    "integer": ("minimum", "maximum"),
    "number": ("minimum", "maximum"),
    "boolean": (),
}


def _subset(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Return the schema with the keywords our parser does not read dropped; raise ValueError for a type it cannot."""
    kind = schema.get("type")
    out: dict[str, Any] = {"type": kind}
    if isinstance(schema.get("description"), str):
        out["description"] = schema["description"]
    if kind == "object":
        properties = {name: _subset(prop) for name, prop in schema.get("properties", {}).items()}
        out["properties"] = properties
        out["required"] = [name for name in schema.get("required", []) if name in properties]
    elif kind == "array":
        out["items"] = _subset(schema.get("items", {"type": "string"}))
        if "maxItems" in schema:
            out["maxItems"] = schema["maxItems"]
    elif isinstance(kind, str) and kind in _SUBSET_KEYWORDS:
        out.update({key: schema[key] for key in _SUBSET_KEYWORDS[kind] if key in schema})
    else:
        raise ValueError(f"unsupported answer type {kind!r}")
    return out


@asynccontextmanager
async def backend_slot(limiter: FairLimiter, key: str, timeout_s: float) -> AsyncIterator[None]:
    """Hold one of the backend's slots, waiting in line behind live checks for up to `timeout_s`."""
    if not await limiter.async_acquire_patient(key, timeout_s):
        raise HomeAssistantError(translation_domain=DOMAIN, translation_key="backend_busy")
    try:
        yield
    finally:
        limiter.release(key)
