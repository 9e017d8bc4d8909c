"""Miloco's LLM API: any conversation agent that supports LLM APIs can look through the cameras with it.

Registered once, in async_setup: the API spans every loaded entry (each camera is asked through the entry that
watches it), and its id stays selectable while an entry reloads. Every question goes through questions.py.
"""

from __future__ import annotations

import importlib
from typing import Any, Final

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import llm
from homeassistant.util import dt as dt_util

from .assist_cameras import OfferedCamera, offered_cameras, resolve_cameras
from .const import DOMAIN
from .detections import KINDS, recent_detections
from .engine.answers import ANSWER_SCHEMA, MAX_QUESTION_CHARS
from .engine.prompt import QuestionSpec
from .entries import entry_for_camera, loaded_entries
from .entry_link import EntryLink
from .keyframes import KeyFrames
from .questions import async_ask_showing, default_wait_s
from .settings import SAVED_FRAMES_MAX

API_ID: Final = DOMAIN
API_NAME: Final = "Miloco"
# A voice user waits seconds, not minutes: a busy model is reported after this long without a free slot.
MAX_LOOK_WAIT_S: Final = 15.0
# An area's cameras are asked one after another: a few at most, so the answer still comes in time.
MAX_LOOK_CAMERAS: Final = 3
MAX_MINUTES: Final = 24 * 60
DEFAULT_MINUTES: Final = 60
# The newest detections listed; an agent reads them aloud, and a long list is noise.
MAX_LISTED: Final = 30
KIND_ALL: Final = "all"
# How many snapshots of a camera nobody watches are kept in the media folder (as a watched camera's default).
_SAVED_LOOKS: Final = int(SAVED_FRAMES_MAX.default or 1)
LOOK_LABEL: Final = "look"

PROMPT_HEAD: Final = (
    "Miloco watches the home's cameras with a vision model. To answer what a camera shows now, call `look` "
    "with the camera (or an area) and the question. To answer what happened earlier (a gesture, an activity, "
    "someone arriving or leaving, a rule that fired), call `recent_detections`. Cameras:"
)
NO_CAMERA_PROMPT: Final = (
    "Miloco has no camera exposed to Assist: if the user asks about a camera, tell them to expose it under "
    "Settings > Voice assistants > Expose."
)


def _schema_library() -> Any:
    """Return the schema library this Home Assistant's LLM tools are described with (probatio from 2026)."""
    try:
        return importlib.import_module("probatio")
    except ImportError:
        return importlib.import_module("voluptuous")


# Chosen once, as the module is imported (off the event loop): a failed import is not cached, and looking again
# at every call would be a blocking import on the loop each time.
_SCHEMAS: Final = _schema_library()


def _schemas() -> Any:
    """Return the schema library chosen at import."""
    return _SCHEMAS


def _tool_result(data: dict[str, Any]) -> Any:
    """Return a tool's answer in this release's form (ToolResult where it exists, a plain object before)."""
    result_type = getattr(llm, "ToolResult", None)
    return result_type(data=data) if result_type is not None else data


@callback
def async_register_llm_api(hass: HomeAssistant) -> CALLBACK_TYPE:
    """Register Miloco's LLM API; return the unregister."""
    return llm.async_register_api(hass, MilocoAPI(hass))


class MilocoAPI(llm.API):
    """The cameras exposed to Assist, as the look and recent_detections tools."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Name the API as conversation agents list it."""
        super().__init__(hass=hass, id=API_ID, name=API_NAME)

    async def async_get_api_instance(self, llm_context: llm.LLMContext) -> llm.APIInstance:
        """Return the tools with a prompt that names the exposed cameras, their areas and what each watches."""
        cameras = offered_cameras(self.hass)
        return llm.APIInstance(
            api=self,
            api_prompt=api_prompt(cameras),
            llm_context=llm_context,
            tools=[LookTool(), RecentDetectionsTool()],
        )


def api_prompt(cameras: list[OfferedCamera]) -> str:
    """Return the API's prompt for these cameras."""
    if not cameras:
        return NO_CAMERA_PROMPT
    return "\n".join([PROMPT_HEAD, *(camera.describe() for camera in cameras)])


class _MilocoTool(llm.Tool):
    """What both tools share: the integration they come from, read-only behaviour, checked arguments."""

    integration = DOMAIN

    def __init__(self) -> None:
        """Declare the tool read-only where this release describes tools' behaviour."""
        if (annotations := getattr(llm, "ToolAnnotations", None)) is not None:
            self.annotations = annotations(
                read_only=True, destructive=False, idempotent=False, open_world=False
            )

    def checked(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Return the arguments validated by the tool's schema; a translated error otherwise."""
        try:
            checked: dict[str, Any] = self.parameters(arguments)
        except _schemas().Invalid as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="invalid_tool_arguments",
                translation_placeholders={"reason": str(err)[:200]},
            ) from err
        return checked


class LookTool(_MilocoTool):
    """Answer a question from what a camera (or an area's cameras) shows now."""

    name = "look"
    description = (
        "Look through a home camera now and answer a question about what it shows. Give a camera (its name or "
        "entity id) or an area, and the question."
    )

    def __init__(self) -> None:
        """Describe the arguments."""
        super().__init__()
        schemas = _schemas()
        self.parameters = schemas.Schema(
            {
                schemas.Optional("camera", description="the camera's name or entity id"): str,
                schemas.Optional("area", description="an area whose cameras to look through"): str,
                schemas.Required("question", description="what to find out, e.g. 'Is anyone at the door?'"): (
                    schemas.All(str, schemas.Length(min=1, max=MAX_QUESTION_CHARS))
                ),
            }
        )

    async def async_call(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> Any:
        """Ask each named camera the question through the one question path; keep the frame it looked at."""
        arguments = self.checked(tool_input.tool_args)
        # Looking costs model time: with several cameras, the agent must say which one it means.
        cameras = resolve_cameras(
            hass, arguments.get("camera"), arguments.get("area"), all_when_unnamed=False
        )
        spec = QuestionSpec(question=arguments["question"], json_schema=ANSWER_SCHEMA)
        answers = [await _async_look(hass, camera, spec) for camera in cameras[:MAX_LOOK_CAMERAS]]
        data: dict[str, Any] = {"answers": answers}
        if skipped := [camera.entity_id for camera in cameras[MAX_LOOK_CAMERAS:]]:
            # Said, so the agent can ask about them one by one instead of believing it saw the whole area.
            data["not_looked_at"] = skipped
        return _tool_result(data)


async def _async_look(hass: HomeAssistant, camera: OfferedCamera, spec: QuestionSpec) -> dict[str, Any]:
    """Return one camera's answer, with where the frame it looked at is kept."""
    entry = entry_for_camera(hass, camera.entity_id)
    runtime = entry.runtime_data
    wait_s = min(default_wait_s(runtime), MAX_LOOK_WAIT_S)
    answer, frame = await async_ask_showing(hass, runtime, camera.entity_id, spec, wait_s=wait_s)
    watcher = runtime.watcher_for(camera.entity_id)
    if watcher is not None:
        # The camera's Last detection image now shows what the answer was about (and saves it, when set).
        key_frame = watcher.key_frames.record_image(LOOK_LABEL, frame)
    else:
        # A camera nobody watches has no image entity: its snapshot is saved in the media folder (bounded).
        frames = KeyFrames(
            hass,
            EntryLink.of(hass, entry).start_task,
            camera.entity_id,
            save=True,
            keep=_SAVED_LOOKS,
        )
        key_frame = frames.record_image(LOOK_LABEL, frame)
    parsed = answer.structured or {}
    return {
        "camera": camera.entity_id,
        "name": camera.name,
        "answer": parsed.get("answer"),
        "key_frame": key_frame,
    }


class RecentDetectionsTool(_MilocoTool):
    """List what the cameras detected lately, from the entries' bounded records."""

    name = "recent_detections"
    description = (
        "List what home cameras detected recently: gestures, activities starting or ending, people arriving or "
        "leaving (presence), and rules that fired, newest first, with times and key-frame references."
    )

    def __init__(self) -> None:
        """Describe the arguments."""
        super().__init__()
        schemas = _schemas()
        self.parameters = schemas.Schema(
            {
                schemas.Optional("camera", description="the camera's name or entity id"): str,
                schemas.Optional("area", description="an area whose cameras to read"): str,
                schemas.Optional("kind", default=KIND_ALL, description="what kind of detection"): schemas.In(
                    [*KINDS, KIND_ALL]
                ),
                schemas.Optional(
                    "minutes",
                    default=DEFAULT_MINUTES,
                    description=f"how far back, 1 to {MAX_MINUTES} minutes",
                ): schemas.All(schemas.Coerce(int), schemas.Range(min=1, max=MAX_MINUTES)),
            }
        )

    async def async_call(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> Any:
        """Return the detections of the named cameras within the time asked, newest first."""
        arguments = self.checked(tool_input.tool_args)
        cameras = resolve_cameras(hass, arguments.get("camera"), arguments.get("area"))
        kind = arguments["kind"]
        now = dt_util.utcnow()
        found = recent_detections(
            [entry.runtime_data.detections for entry in loaded_entries(hass)],
            [camera.entity_id for camera in cameras],
            arguments["minutes"],
            None if kind == KIND_ALL else kind,
            now,
        )
        listed = [detection.as_dict(now) for detection in found[:MAX_LISTED]]
        return _tool_result(
            {
                "cameras": [camera.entity_id for camera in cameras],
                "minutes": arguments["minutes"],
                "detections": listed,
                "not_listed": max(0, len(found) - MAX_LISTED),
            }
        )
