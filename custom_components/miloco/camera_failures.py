"""A camera's failure streaks: when its entities go unavailable, and what is logged (the back-off is the schedule's)."""

from __future__ import annotations

from homeassistant.core import callback

from .camera_events import CameraEvents
from .const import FAILURES_BEFORE_UNAVAILABLE, LOGGER
from .engine.backends.errors import BackendError, InvalidAuth
from .health import BackendHealth


class CameraFailures:
    """Counts failed captures and failed checks in a row; a stopping camera's failures do not count."""

    def __init__(self, camera_entity_id: str, events: CameraEvents, health: BackendHealth) -> None:
        """Start with no failures."""
        self._camera_entity_id = camera_entity_id
        self._events = events
        self._health = health
        self._captures = 0
        self._checks = 0
        self._unexpected_logged = False
        self.stopping = False

    @property
    def available(self) -> bool:
        """Return False while the camera or the model keeps failing."""
        return max(self._captures, self._checks) < FAILURES_BEFORE_UNAVAILABLE

    @callback
    def log_unexpected(self, doing: str) -> None:
        """Log an unexpected error with its traceback, once per camera (a persistent fault must not spam)."""
        if self.stopping:
            return
        level = LOGGER.debug if self._unexpected_logged else LOGGER.warning
        self._unexpected_logged = True
        level(
            "Unexpected error while %s on %s; counted as a failure",
            doing,
            self._camera_entity_id,
            exc_info=True,
        )

    @callback
    def capture_failed(self, reason: str) -> None:
        """Count a failed capture; the camera's entities go unavailable after a few in a row."""
        if self.stopping:
            return
        was_available = self.available
        self._captures += 1
        if was_available and not self.available:
            LOGGER.warning("Camera %s gives no images: %s", self._camera_entity_id, reason)
            self._events.availability(False)
            self._events.state()

    @callback
    def capture_ok(self) -> None:
        """Reset the capture failure streak."""
        recovered = self._captures >= FAILURES_BEFORE_UNAVAILABLE
        self._captures = 0
        if recovered:
            LOGGER.info("Camera %s gives images again", self._camera_entity_id)
            self._events.state()

    @callback
    def check_failed(self, err: BackendError) -> None:
        """Count a failed check (the caller tells the entities); a refused key makes the camera unavailable at once."""
        was_available = self.available
        self._checks += 1
        if isinstance(err, InvalidAuth):
            # The key will not start working by itself: the user has to act.
            self._checks = max(self._checks, FAILURES_BEFORE_UNAVAILABLE)
        self._health.record_failure(err)
        if was_available and not self.available:
            LOGGER.warning(
                "Miloco cannot analyse %s: the model backend fails (%s)", self._camera_entity_id, err.reason
            )
            self._events.availability(False)

    @callback
    def check_ok(self) -> None:
        """Reset the check failure streak."""
        if self._checks >= FAILURES_BEFORE_UNAVAILABLE:
            LOGGER.info("Miloco analyses %s again", self._camera_entity_id)
        self._checks = 0
        self._health.record_success()
