"""A backend's defaults, stated once for the integration's settings table and the evaluation toolkit."""

from __future__ import annotations

from typing import Final

# Seconds to wait for one answer. The embedded runtime's is longer: CPU inference of a 7B model over six frames
# takes tens of seconds on small machines.
REMOTE_TIMEOUT_S: Final = 30
EMBEDDED_TIMEOUT_S: Final = 180
# Six 448-px frames alone are about 1,500 image tokens; below 4096 a check hardly fits.
DEFAULT_CONTEXT_SIZE: Final = 8192
