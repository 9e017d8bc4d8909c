"""What a camera needs of its config entry: the entry's id, and a way to start tasks the entry owns."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant

# Starts a coroutine as a background task that ends when the entry unloads; (coroutine, task name).
type StartTask = Callable[[Coroutine[Any, Any, Any], str], asyncio.Task[Any]]


@dataclass(frozen=True, slots=True)
class EntryLink:
    """The parts of a config entry a camera uses, so that it never holds (nor imports the type of) the entry."""

    entry_id: str
    start_task: StartTask

    @classmethod
    def of(cls, hass: HomeAssistant, entry: ConfigEntry[Any]) -> EntryLink:
        """Return the link to `entry`: its id, and its background tasks."""

        def start_task(target: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
            return entry.async_create_background_task(hass, target, name)

        return cls(entry.entry_id, start_task)
