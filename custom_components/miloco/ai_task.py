"""AI Task platform (HA 2025.8+): ai_task.generate_data answered by the entry's vision backend.

Only forwarded where Home Assistant has `homeassistant.components.ai_task` (see ai_task_flow.AI_TASK_AVAILABLE):
nothing on older releases imports this module.
"""

# scripts/lint runs mypy against the 2025.4 floor, which has no ai_task or conversation.Attachment: the names this
# module needs from them are unknown there. Checked with mypy --strict against the newest line's HA instead.
# mypy: disable-error-code="attr-defined, name-defined, misc, import-untyped, import-not-found, no-any-return"

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
import importlib
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

from .ai_task_flow import ai_task_budget
from .const import DOMAIN, SUBENTRY_AI_TASK
from .engine.answers import ANSWER_SCHEMA, MAX_QUESTION_CHARS, readable_schema
from .engine.check import NamedImage
from .engine.prompt import QuestionSpec
from .engine.video_clip import VideoClipError, clip_from_video
from .engine.window import DEFAULT_FPS, DEFAULT_FRAMES_PER_CHECK, Frame
from .entity import service_device
from .questions import async_ask_clip, async_ask_images
from .runtime import MilocoConfigEntry, MilocoRuntime
from .settings import WINDOW_FRAMES

PARALLEL_UPDATES = 0

# Attachments are read into memory: a bound keeps one bad file from taking it all.
MAX_ATTACHMENT_BYTES: Final = 20 * 1024 * 1024
# As many images as a camera's window may hold: the model was tuned on short clips, not albums.
MAX_ATTACHMENTS: Final = int(WINDOW_FRAMES.maximum)
# An image's name in the prompt: its source's last path segment, cut to a sensible length.
MAX_NAME_CHARS: Final = 100
# A video becomes a window as long as a camera's default one (the model was tuned on such clips).
CLIP_FRAMES: Final = DEFAULT_FRAMES_PER_CHECK
# The chat log's system content rides with the instructions as context, at most this long.
MAX_CONTEXT_CHARS: Final = 1000
# Home Assistant's generic AI Task system prompt tells a vision model nothing: left out of the context.
GENERIC_SYSTEM_PROMPT: Final = getattr(
    importlib.import_module("homeassistant.components.ai_task.const"), "DEFAULT_SYSTEM_PROMPT", ""
)


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
        self._budget = ai_task_budget(subentry.data)
        self._attr_unique_id = subentry.subentry_id
        self._attr_device_info = service_device(subentry.subentry_id, subentry.title, "AI Task")

    async def _async_generate_data(
        self, task: ai_task.GenDataTask, chat_log: conversation.ChatLog
    ) -> ai_task.GenDataTaskResult:
        """Ask the instructions about the attachments, each a separate named image; return the parsed answer."""
        instructions = task.instructions
        if not instructions.strip() or len(instructions) > MAX_QUESTION_CHARS:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="invalid_instructions",
                translation_placeholders={"max": str(MAX_QUESTION_CHARS)},
            )
        schema = reply_schema(task.structure) if task.structure is not None else ANSWER_SCHEMA
        question = with_context(instructions, chat_log)
        attachments = task.attachments or []
        runtime = self._entry.runtime_data
        if any(_is_video(attachment) for attachment in attachments):
            clip = await self._async_clip(runtime, attachments)
            spec = QuestionSpec(question=question, json_schema=schema, fps=clip_rate(clip))
            answer = await async_ask_clip(self.hass, runtime, spec, clip, self._budget)
        else:
            images = await self._async_images(attachments)
            spec = QuestionSpec(question=question, json_schema=schema)
            answer = await async_ask_images(self.hass, runtime, spec, images, self._budget)
        parsed = answer.structured or {}
        data: Any = parsed if task.structure is not None else parsed.get("answer")
        chat_log.async_add_assistant_content_without_tools(
            conversation.AssistantContent(agent_id=self.entity_id or "", content=answer.replies[-1])
        )
        return ai_task.GenDataTaskResult(conversation_id=chat_log.conversation_id, data=data)

    async def _async_clip(
        self, runtime: MilocoRuntime, attachments: Sequence[conversation.Attachment]
    ) -> list[Frame]:
        """Return the one video attachment as a clip: a window of frames spread over it, oldest first."""
        if len(attachments) != 1:
            raise HomeAssistantError(
                translation_domain=DOMAIN, translation_key="video_with_other_attachments"
            )
        try:
            (data,) = await self.hass.async_add_executor_job(_read, [attachments[0].path])
        except (OSError, ValueError) as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN, translation_key="attachment_unreadable"
            ) from err
        try:
            # Decoding is CPU work: off the event loop, within the entry's cap on image jobs.
            async with runtime.cpu_slots:
                return await self.hass.async_add_executor_job(clip_from_video, data, CLIP_FRAMES)
        except VideoClipError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="video_unreadable",
                translation_placeholders={"reason": err.reason},
            ) from err

    async def _async_images(self, attachments: Sequence[conversation.Attachment]) -> list[NamedImage]:
        """Return the attachments' images as read, each named by its source; sized later, within the slot."""
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
            contents = await self.hass.async_add_executor_job(_read, paths)
        except (OSError, ValueError) as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN, translation_key="attachment_unreadable"
            ) from err
        return [
            NamedImage(_name(attachment), data)
            for attachment, data in zip(attachments, contents, strict=True)
        ]


def _is_video(attachment: conversation.Attachment) -> bool:
    """Return whether an attachment is a video clip (MP4, WebM, ...)."""
    return str(attachment.mime_type).startswith("video/")


def clip_rate(clip: Sequence[Frame]) -> float:
    """Return the clip's frames per second as the prompt states it: its frames spread over its span."""
    span = clip[-1].timestamp - clip[0].timestamp if clip else 0.0
    if len(clip) < 2 or span <= 0:
        return DEFAULT_FPS
    return (len(clip) - 1) / span


def with_context(instructions: str, chat_log: conversation.ChatLog) -> str:
    """Return the instructions with the chat log's system content as context (capped), when it adds any.

    Home Assistant puts the task's system prompt there: its generic AI Task line, the current date and time,
    the prompt of an LLM API the caller gave and a conversation's extra system prompt.
    """
    parts = [
        str(content.content or "")
        for content in chat_log.content
        if isinstance(content, conversation.SystemContent)
    ]
    context = "\n".join(parts).replace(GENERIC_SYSTEM_PROMPT, "").strip()[:MAX_CONTEXT_CHARS]
    if not context:
        return instructions
    return f"{instructions}\n\nContext from Home Assistant:\n{context}"


def _read(paths: Sequence[Path]) -> list[bytes]:
    """Read the attachment files, each within the size bound (blocking: runs in the executor)."""
    contents = []
    for path in paths:
        if path.stat().st_size > MAX_ATTACHMENT_BYTES:
            raise ValueError(f"attachment larger than {MAX_ATTACHMENT_BYTES} bytes")
        contents.append(path.read_bytes())
    return contents


def _name(attachment: conversation.Attachment) -> str:
    """Return how the prompt names an attachment: the last segment of its media id (a file or a camera)."""
    source = str(attachment.media_content_id or "").rstrip("/")
    name = source.rsplit("/", 1)[-1] or Path(attachment.path).name
    # A name is shown to the model as text: no line breaks or other control characters, and short.
    return "".join(char for char in name if char.isprintable())[:MAX_NAME_CHARS] or "image"


def _openapi_converter() -> Callable[..., Mapping[str, Any]]:
    """Return the converter this Home Assistant release describes structures with (probatio from 2026)."""
    try:
        import probatio  # noqa: PLC0415 - HA 2026.x describes structures with probatio
    except ImportError:
        # HA 2025.8 to 2025.x: voluptuous schemas, converted by voluptuous-openapi.
        from voluptuous_openapi import convert  # noqa: PLC0415

        return convert
    return probatio.to_openapi


# Chosen once, as the module is imported (off the event loop): a failed import is not cached, and trying it at
# every task would be a blocking import on the loop each time.
_TO_OPENAPI: Final = _openapi_converter()


def _to_openapi(structure: Any) -> Mapping[str, Any]:
    """Return the structure as an OpenAPI schema, with the converter this Home Assistant release uses."""
    return _TO_OPENAPI(structure, custom_serializer=llm.selector_serializer)


def reply_schema(structure: Any) -> dict[str, Any]:
    """Return the JSON schema of the answer a task's structure describes, within what our parser reads."""
    try:
        return readable_schema(_to_openapi(structure))
    except (ValueError, TypeError, vol.Invalid) as err:
        raise HomeAssistantError(translation_domain=DOMAIN, translation_key="invalid_structure") from err
