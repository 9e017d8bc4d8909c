"""The typed runtime data of a Miloco entry, and how it is assembled from the entry's subentries."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
import os
import time
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.event import async_track_time_interval

from .camera_config import CameraConfig
from .const import CONF_ENABLED, LOGGER, SUBENTRY_CAMERA, SUBENTRY_RULE
from .engine.backends.base import VisionBackend
from .engine.prompt import Observation, RuleSpec
from .engine.scheduling import FairLimiter
from .health import BackendHealth
from .rule_runner import RuleConfig, RuleRunner
from .watcher import CameraWatcher

# How often state-mode rules look at their off-delay.
RULE_TICK = timedelta(seconds=1)


@dataclass(slots=True)
class MilocoRuntime:
    """What a loaded entry owns: its model backend, the slots to it, a watcher per camera, a runner per rule."""

    backend: VisionBackend
    limiter: FairLimiter
    health: BackendHealth
    # Image work of all cameras at once, capped at the machine's cores (see engine/check.py).
    cpu_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(os.cpu_count() or 1))
    watchers: dict[str, CameraWatcher] = field(default_factory=dict)
    rules: dict[str, RuleRunner] = field(default_factory=dict)
    # The settings everything was built from: a change to them means a reload, a rename does not.
    data: Mapping[str, Any] = field(default_factory=dict)
    subentries: Mapping[str, Any] = field(default_factory=dict)

    def watcher_for(self, camera_entity_id: str) -> CameraWatcher | None:
        """Return the watcher of a camera entity, if this entry watches it."""
        return next(
            (
                watcher
                for watcher in self.watchers.values()
                if watcher.config.camera_entity_id == camera_entity_id
            ),
            None,
        )


type MilocoConfigEntry = ConfigEntry[MilocoRuntime]


def settings_snapshot(entry: ConfigEntry[Any]) -> dict[str, Any]:
    """Return what the runtime is built from, leaving out what changes live (a rule's enabled switch)."""
    return {
        subentry_id: (
            subentry.subentry_type,
            {key: value for key, value in subentry.data.items() if key != CONF_ENABLED},
        )
        for subentry_id, subentry in entry.subentries.items()
    }


async def async_create_runtime(
    hass: HomeAssistant, entry: MilocoConfigEntry, backend: VisionBackend
) -> MilocoRuntime:
    """Build the watchers and rule runners of the entry's subentries, wired to each other.

    A subentry whose stored settings cannot be used is skipped and logged: one bad camera or rule never
    keeps the entry (and every other camera) from loading, and deleting it stays possible.
    """
    runtime = MilocoRuntime(
        backend=backend,
        limiter=FairLimiter(backend.max_concurrency),
        health=BackendHealth(
            hass, entry.entry_id, entry.title, start_reauth=lambda: entry.async_start_reauth(hass)
        ),
        data=dict(entry.data),
        subentries=settings_snapshot(entry),
    )
    cameras = [sid for sid, sub in entry.subentries.items() if sub.subentry_type == SUBENTRY_CAMERA]
    for subentry_id, subentry in entry.subentries.items():
        try:
            if subentry.subentry_type == SUBENTRY_CAMERA:
                runtime.watchers[subentry_id] = CameraWatcher(
                    hass,
                    entry,
                    subentry_id,
                    subentry.title,
                    CameraConfig.from_data(subentry.data),
                    backend=backend,
                    limiter=runtime.limiter,
                    health=runtime.health,
                    cpu_slots=runtime.cpu_slots,
                    phase=cameras.index(subentry_id) / len(cameras),
                )
            elif subentry.subentry_type == SUBENTRY_RULE:
                rule = RuleRunner(
                    hass, entry, subentry_id, subentry.title, RuleConfig.from_data(subentry.data)
                )
                await rule.async_prepare()
                runtime.rules[subentry_id] = rule
        except (ValueError, TypeError, KeyError) as err:
            LOGGER.error(
                "Miloco skips %s %r: its stored settings are not valid (%s); reconfigure or delete it",
                subentry.subentry_type,
                subentry.title,
                err,
            )
    _connect_rules(hass, entry, runtime)
    return runtime


def _connect_rules(hass: HomeAssistant, entry: MilocoConfigEntry, runtime: MilocoRuntime) -> None:
    """Make every camera ask about its enabled rules, and hand each rule its cameras' verdicts."""
    for watcher in runtime.watchers.values():
        _connect_watcher(runtime, watcher)

    @callback
    def tick(_now: datetime) -> None:
        now = time.monotonic()
        for rule in runtime.rules.values():
            rule.tick(now)

    if runtime.rules:
        entry.async_on_unload(async_track_time_interval(hass, tick, RULE_TICK))


def _connect_watcher(runtime: MilocoRuntime, watcher: CameraWatcher) -> None:
    """Wire one camera to the rules that look at it: their questions out, its verdicts in."""
    camera = watcher.config.camera_entity_id

    def camera_rules() -> list[RuleRunner]:
        return [rule for rule in runtime.rules.values() if camera in rule.config.cameras]

    if not camera_rules():
        return

    def enabled_rules() -> tuple[RuleSpec, ...]:
        return tuple(rule.spec for rule in camera_rules() if rule.enabled)

    @callback
    def judge(observation: Observation, now: float, moving: bool) -> None:
        for rule_id, holds in observation.rules.items():
            if (rule := runtime.rules.get(rule_id)) is not None:
                rule.handle_verdict(camera, holds, observation.reason, now, moving=moving)

    @callback
    def still(now: float) -> None:
        for rule in camera_rules():
            rule.handle_still(camera, now)

    @callback
    def availability(available: bool) -> None:
        if not available:
            now = time.monotonic()
            for rule in camera_rules():
                rule.handle_camera_lost(camera, now)

    watcher.set_rule_provider(enabled_rules)
    watcher.async_add_check_listener(judge)
    watcher.async_add_still_listener(still)
    watcher.async_add_availability_listener(availability)
