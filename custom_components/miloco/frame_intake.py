"""A camera's frame intake: take the next frame, prepare it as far as the scene needs, and let the gate judge it."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

from homeassistant.const import STATE_ON
from homeassistant.core import HomeAssistant

from .camera_config import CameraConfig
from .camera_failures import CameraFailures
from .capture import Captured, CaptureError, FrameSource
from .engine.camera_schedule import CameraSchedule
from .engine.frames import FrameDecodeError, FramePlan, FrameVersions
from .engine.gate import GateDecision, Thumb, thumbnail
from .engine.window import Frame, FrameWindow, prepare_capture

# A camera at rest (still for a whole window, no check in flight) takes one frame in this many: what CPU a
# still room costs is mostly per frame. The first frame that moves brings the camera's own rate back at once.
REST_STRIDE: Final = 2


class FrameIntake:
    """Brings one camera's frames into its window, each decoded once, and hands their thumbs to the schedule."""

    def __init__(
        self,
        hass: HomeAssistant,
        config: CameraConfig,
        source: FrameSource,
        *,
        schedule: CameraSchedule,
        failures: CameraFailures,
        cpu_slots: asyncio.Semaphore,
    ) -> None:
        """Prepare an empty window sized for the camera's checks, with a little slack."""
        self._hass = hass
        self._config = config
        self.source = source
        self._schedule = schedule
        self._failures = failures
        self._cpu_slots = cpu_slots
        self.window = FrameWindow.for_checks_of(config.window_frames)
        self._plan = FramePlan(frames=config.window_frames, budget=config.token_budget)
        # Frames in a row the gate found unchanged since the last check.
        self._still_frames = 0
        self.capture_task: asyncio.Task[Captured | None] | None = None

    def recent_frames(self) -> list[Frame]:
        """Return the frames the next check would use, oldest first (empty before the first frame)."""
        newest = self.window.newest
        if newest is None:
            return []
        # The window ends at the newest frame, which a stream decoded a little before now.
        return self.window.select(self._config.window_frames, self._config.window_s, newest.timestamp)

    @property
    def frame_stride(self) -> int:
        """Return how many frame periods to wait before the next frame: more while the camera is at rest."""
        resting = self._still_frames >= self._config.window_frames and not self._schedule.checking
        return REST_STRIDE if resting else 1

    async def async_next(self) -> GateDecision | None:
        """Take the source's next frame into the window; return the gate's decision (None: no new frame)."""
        # A gate decision belongs to its frame: with no new frame (a failure, or a stream between two
        # frames) no check starts on frames that were already judged.
        self._schedule.no_frame()
        try:
            captured = await self._async_take()
            if captured is None:
                # A stream with no new frame since the last one: nothing to add, and nothing failed.
                return None
            taken_at, jpeg = captured
            thumb, prepared = await self._async_prepare(jpeg)
        except (CaptureError, FrameDecodeError, OSError) as err:
            self._failures.capture_failed(str(err))
            return None
        except Exception as err:
            # Any other camera or decoder fault is a failed capture too.
            self._failures.log_unexpected("capturing a frame")
            self._failures.capture_failed(type(err).__name__)
            return None
        self.window.add(Frame(taken_at, jpeg, thumb, prepared))
        # A motion sensor that is on asks for a check even when the picture barely changes.
        motion_id = self._config.motion_entity_id
        motion = bool(motion_id and self._hass.states.is_state(motion_id, STATE_ON))
        decision = self._schedule.observe(thumb, time.monotonic(), motion=motion)
        self._still_frames = 0 if decision.changed else self._still_frames + 1
        self._failures.capture_ok()
        return decision

    async def _async_prepare(self, jpeg: bytes) -> tuple[Thumb, FrameVersions | None]:
        """Return the frame's gate thumbnail and, unless the scene has been still for a whole window, its sizes."""
        async with self._cpu_slots:
            if self._still_frames >= self._config.window_frames:
                # Still for a whole window: the model would not see this frame unless something moves, so the
                # gate's thumbnail is all it needs (the check that follows a change, or the heartbeat's, sizes
                # its window itself). A still room costs no more than before.
                return await self._hass.async_add_executor_job(thumbnail, jpeg), None
            # One decode per frame: the gate's thumbnail and every size a check's window takes.
            return await self._hass.async_add_executor_job(prepare_capture, jpeg, self._plan)

    async def _async_take(self) -> Captured | None:
        """Return the source's next frame, from a task of its own that a stop abandons instead of awaiting.

        Home Assistant's camera code turns a cancellation into HomeAssistantError, so cancelling a capture
        awaited directly would not end the loop; waiting on the task lets the cancellation land here.
        """
        task = self._hass.async_create_background_task(
            self.source.async_next(), f"miloco capture {self._config.camera_entity_id}"
        )
        if task.done():
            # The task started eagerly and the camera answered without waiting (a cached picture, a stream's
            # newest frame): no wait, and no callbacks, to pay for on every frame.
            return task.result()
        # Retrieve the outcome of an abandoned capture, so that none is reported as never retrieved.
        task.add_done_callback(_consume_outcome)
        self.capture_task = task
        try:
            await asyncio.wait((task,))
        finally:
            self.capture_task = None
            if not task.done():
                task.cancel()
        return task.result()


def _consume_outcome(task: asyncio.Task[Any]) -> None:
    """Retrieve a finished task's exception, so that asyncio never reports it as unretrieved."""
    if not task.cancelled():
        task.exception()
