"""The counters a camera watcher keeps for its diagnostic sensors and the diagnostics download."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(slots=True)
class WatcherStats:
    """Counters shown by the camera's diagnostic sensors."""

    checks: int = 0
    skipped_by_gate: int = 0
    skipped_busy: int = 0
    failures: int = 0
    # Answers dropped because a newer window's answer (a check on a spare slot) came first.
    stale_answers: int = 0
    last_analysis: datetime | None = None
    last_latency_s: float | None = None
    last_image_tokens: int | None = None
    last_reason: str | None = None
