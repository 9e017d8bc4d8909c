"""The typed runtime data of a Miloco entry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from homeassistant.config_entries import ConfigEntry

from .engine.backends.base import VisionBackend
from .engine.scheduling import FairLimiter
from .health import BackendHealth
from .watcher import CameraWatcher


@dataclass(slots=True)
class MilocoRuntime:
    """What a loaded entry owns: its model backend, the slots to it, and one watcher per camera."""

    backend: VisionBackend
    limiter: FairLimiter
    health: BackendHealth
    watchers: dict[str, CameraWatcher] = field(default_factory=dict)
    # The settings everything was built from: a change to them means a reload, a rename does not.
    data: Mapping[str, Any] = field(default_factory=dict)
    subentries: Mapping[str, Any] = field(default_factory=dict)


type MilocoConfigEntry = ConfigEntry[MilocoRuntime]
