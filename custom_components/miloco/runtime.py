"""The typed runtime data of a Miloco entry."""

from __future__ import annotations

from dataclasses import dataclass

from homeassistant.config_entries import ConfigEntry

from .engine.backends.base import VisionBackend


@dataclass(slots=True)
class MilocoRuntime:
    """What a loaded entry owns: its model backend (cameras and rules join it later)."""

    backend: VisionBackend


type MilocoConfigEntry = ConfigEntry[MilocoRuntime]
