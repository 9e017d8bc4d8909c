"""Backend health shared by an entry's cameras: one repair issue when the model stays unreachable."""

from __future__ import annotations

from collections.abc import Callable
import time

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from .const import BACKEND_ISSUE_AFTER_S, DOMAIN, LOGGER
from .engine.backends.errors import BackendError, InvalidAuth
from .reasons import reason_text


def backend_issue_id(entry_id: str) -> str:
    """Return the id of an entry's 'the backend keeps failing' repair issue."""
    return f"backend_failing_{entry_id}"


class BackendHealth:
    """Track how long the backend has failed without a single success, and say so in Repairs."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry_id: str,
        title: str,
        *,
        start_reauth: Callable[[], None] | None = None,
    ) -> None:
        """Start healthy; `start_reauth` asks the user for new credentials (the entry's reauth flow)."""
        self._hass = hass
        self._entry_id = entry_id
        self._title = title
        self._start_reauth = start_reauth
        self._failing_since: float | None = None
        self._issue_raised = False
        self._reauth_started = False

    @property
    def issue_id(self) -> str:
        """Return the id of this backend's 'keeps failing' repair issue."""
        return backend_issue_id(self._entry_id)

    @callback
    def record_success(self) -> None:
        """Clear the failure streak and its repair issue."""
        self._failing_since = None
        self._reauth_started = False
        if self._issue_raised:
            self._issue_raised = False
            ir.async_delete_issue(self._hass, DOMAIN, self.issue_id)
            LOGGER.info("The model backend of %s answers again", self._title)

    @callback
    def record_failure(self, err: BackendError) -> None:
        """Note a failed request; raise the repair issue once failures have lasted long enough."""
        if isinstance(err, InvalidAuth) and not self._reauth_started and self._start_reauth is not None:
            # A key revoked while running: ask for a new one now, not after the next reload.
            self._reauth_started = True
            LOGGER.warning("The model server of %s refuses the credentials; re-authenticate it", self._title)
            self._start_reauth()
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        if self._issue_raised or now - self._failing_since < BACKEND_ISSUE_AFTER_S:
            return
        self._issue_raised = True
        ir.async_create_issue(
            self._hass,
            DOMAIN,
            self.issue_id,
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key="backend_failing",
            translation_placeholders={"title": self._title, "reason": reason_text(self._hass, err)},
        )
