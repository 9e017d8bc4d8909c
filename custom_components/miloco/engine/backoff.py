"""How long a camera waits after failed checks: exponential back-off, or longer when the server asks."""

from __future__ import annotations

import math
from typing import Final

# A Retry-After beyond this is not believed (a misconfigured server must not silence a camera for days).
RETRY_AFTER_MAX_S: Final = 3600.0


class Backoff:
    """Doubling waits from `base_s` up to `max_s`; a server's Retry-After wins when it is longer."""

    def __init__(self, base_s: float, max_s: float = 60.0) -> None:
        """Create a back-off; raise ValueError unless 0 < base_s <= max_s, both finite."""
        if not (math.isfinite(base_s) and math.isfinite(max_s) and 0 < base_s <= max_s):
            raise ValueError(f"back-off must satisfy 0 < base_s <= max_s, not {base_s}, {max_s}")
        self._base_s = base_s
        self._max_s = max_s
        self._failures = 0

    @property
    def failures(self) -> int:
        """Return the failures since the last success."""
        return self._failures

    def failed(self, retry_after: object = None) -> float:
        """Count a failure and return the seconds to wait before the next attempt."""
        self._failures += 1
        wait = min(self._max_s, self._base_s * 2.0 ** min(self._failures - 1, 32))
        if (
            isinstance(retry_after, int | float)
            and not isinstance(retry_after, bool)
            and math.isfinite(retry_after)
            and retry_after > 0
        ):
            wait = max(wait, min(float(retry_after), RETRY_AFTER_MAX_S))
        return wait

    def succeeded(self) -> None:
        """Start over: the next failure waits `base_s` again."""
        self._failures = 0
