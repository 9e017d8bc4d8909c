"""The typed runtime data of a Miloco entry, and how subentries are started, changed and stopped in it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
import os
import time
from typing import Any

from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.event import async_track_time_interval

from .camera_config import CameraConfig
from .camera_events import Verdicts
from .const import CONF_ENABLED, DOMAIN, LOGGER, SUBENTRY_CAMERA, SUBENTRY_RULE
from .detections import DetectionRecord
from .engine.backends.base import VisionBackend
from .engine.prompt import RuleSpec
from .engine.scheduling import FairLimiter
from .entry_link import EntryLink
from .health import BackendHealth
from .rule_runner import RuleConfig, RuleRunner, RuleWiring
from .watcher import CameraWatcher

# How often state-mode rules look at their off-delay.
RULE_TICK = timedelta(seconds=1)

type EntityBuilder = Callable[[MilocoRuntime, str], list[Entity]]


@dataclass(frozen=True, slots=True)
class PlatformHook:
    """How one platform adds entities after setup: its callback, and what it builds for a subentry."""

    add_entities: AddConfigEntryEntitiesCallback
    build: EntityBuilder


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
    # The backend settings everything was built from: a change to them means a reload.
    data: Mapping[str, Any] = field(default_factory=dict)
    # The subentry settings each watcher and rule was built from: a change restarts only that one.
    subentries: Mapping[str, Any] = field(default_factory=dict)
    platforms: dict[str, PlatformHook] = field(default_factory=dict)
    # The entities made for each subentry, so that a change or removal can take them away again.
    entities: dict[str, list[Entity]] = field(default_factory=dict)
    # Subentry changes are applied one at a time, in the order they came, and never beside an unload.
    update_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # The newest detections (the entry's miloco_event events), bounded, for Assist to read back.
    detections: DetectionRecord = field(default_factory=DetectionRecord)
    # Set by the unload (under update_lock): a subentry change that comes after it has nothing to change.
    closed: bool = False

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

    def rule_titles(self) -> list[str]:
        """Return the names of the entry's rules."""
        return [rule.title for rule in self.rules.values()]

    def rules_for(self, camera_entity_id: str) -> list[RuleRunner]:
        """Return the rules that look at a camera, in the entry's order (enabled or not)."""
        return [rule for rule in self.rules.values() if camera_entity_id in rule.config.cameras]

    def cameras_available(self, cameras: tuple[str, ...]) -> bool:
        """Return True when at least one of the cameras is watched and its checks work."""
        return any(
            (watcher := self.watcher_for(camera)) is not None and watcher.available for camera in cameras
        )

    @callback
    def ask_soon(self, cameras: tuple[str, ...]) -> None:
        """Have the watchers of the cameras check at their next frame, changed scene or not."""
        for watcher in self.watchers.values():
            if watcher.config.camera_entity_id in cameras:
                watcher.ask_soon()

    @callback
    def refresh_availability(self, rules: list[RuleRunner] | None = None) -> None:
        """Let rules whose cameras' availability changed tell their entities (all rules by default)."""
        for rule in self.rules.values() if rules is None else rules:
            rule.refresh_availability()

    @callback
    def async_register_platform(
        self, platform: str, add_entities: AddConfigEntryEntitiesCallback, build: EntityBuilder
    ) -> None:
        """Keep a platform's callback for subentries added later, and add its entities of today's."""
        hook = self.platforms[platform] = PlatformHook(add_entities, build)
        # Every subentry, not only cameras and rules: a platform may serve another kind (AI Task).
        for subentry_id in self.subentries:
            self.async_add_entities_of(subentry_id, hook)

    @callback
    def async_add_entities_of(self, subentry_id: str, hook: PlatformHook) -> None:
        """Add one platform's entities of one subentry, on the subentry's device."""
        if entities := hook.build(self, subentry_id):
            self.entities.setdefault(subentry_id, []).extend(entities)
            hook.add_entities(entities, config_subentry_id=subentry_id)


type MilocoConfigEntry = ConfigEntry[MilocoRuntime]


def settings_snapshot(entry: MilocoConfigEntry) -> dict[str, Any]:
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
    """Build the watchers and rule runners of the entry's subentries, wired to each other."""
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
        phase = cameras.index(subentry_id) / len(cameras) if subentry_id in cameras else 0.0
        # Rules built with the entry bring back the state they had before a restart or reload.
        await _async_build(hass, entry, runtime, subentry_id, subentry, phase=phase, restores=True)
    runtime.refresh_availability()

    @callback
    def tick(_now: datetime) -> None:
        now = time.monotonic()
        for rule in list(runtime.rules.values()):
            rule.tick(now)

    # Always on (it is cheap): a rule added later needs it too.
    entry.async_on_unload(async_track_time_interval(hass, tick, RULE_TICK))
    return runtime


async def async_apply_subentry_changes(hass: HomeAssistant, entry: MilocoConfigEntry) -> None:
    """Start, restart or stop only the watchers and rules whose subentry was added, changed or removed.

    The backend and every other camera carry on: their windows, episodes and hold timers are untouched.
    """
    runtime = entry.runtime_data
    async with runtime.update_lock:
        if runtime.closed:
            # The entry unloaded while this change waited: its next setup builds from the settings of then.
            return
        current = settings_snapshot(entry)
        changed = [
            subentry_id
            for subentry_id in [
                *runtime.subentries,
                *(sid for sid in current if sid not in runtime.subentries),
            ]
            if runtime.subentries.get(subentry_id) != current.get(subentry_id)
        ]
        for subentry_id in changed:
            before = _unique_ids(runtime, subentry_id)
            await _async_stop(runtime, subentry_id)
            if (subentry := entry.subentries.get(subentry_id)) is not None:
                await _async_build(hass, entry, runtime, subentry_id, subentry)
                for hook in runtime.platforms.values():
                    runtime.async_add_entities_of(subentry_id, hook)
                if (watcher := runtime.watchers.get(subentry_id)) is not None:
                    watcher.async_start()
                if (rule := runtime.rules.get(subentry_id)) is not None:
                    # A new question about an unchanged scene is news: its cameras ask at their next frame
                    # instead of waiting for a change or the heartbeat, so the rule has a verdict at once.
                    runtime.ask_soon(rule.config.cameras)
            _forget_dropped_entities(hass, before - _unique_ids(runtime, subentry_id))
            LOGGER.debug("Applied the change of subentry %s without a reload", subentry_id)
        runtime.subentries = current
        # The Enabled box of a rule's form, saved alone, rebuilds nothing: it applies like the switch
        # (which stored it already, so this finds nothing to change).
        for subentry_id, rule in runtime.rules.items():
            rule.set_enabled(bool(entry.subentries[subentry_id].data.get(CONF_ENABLED, True)))
        # A camera added or removed changes whether its rules can know anything.
        runtime.refresh_availability()


async def _async_build(
    hass: HomeAssistant,
    entry: MilocoConfigEntry,
    runtime: MilocoRuntime,
    subentry_id: str,
    subentry: ConfigSubentry,
    *,
    phase: float = 0.0,
    restores: bool = False,
) -> None:
    """Build the watcher or rule of one subentry; one whose stored settings are unusable is skipped."""
    try:
        if subentry.subentry_type == SUBENTRY_CAMERA:
            watcher = CameraWatcher(
                hass,
                EntryLink.of(hass, entry),
                subentry_id,
                subentry.title,
                CameraConfig.from_data(subentry.data),
                backend=runtime.backend,
                limiter=runtime.limiter,
                health=runtime.health,
                cpu_slots=runtime.cpu_slots,
                phase=phase,
            )
            runtime.watchers[subentry_id] = watcher
            _connect_watcher(runtime, watcher)
        elif subentry.subentry_type == SUBENTRY_RULE:
            config = RuleConfig.from_data(subentry.data)
            wiring = RuleWiring(
                cameras_available=lambda: runtime.cameras_available(config.cameras),
                ask_cameras=lambda: runtime.ask_soon(config.cameras),
                restores=restores,
            )
            rule = RuleRunner(hass, entry, subentry_id, subentry.title, config, wiring=wiring)
            await rule.async_prepare()
            runtime.rules[subentry_id] = rule
    except (ValueError, TypeError, KeyError) as err:
        # One bad camera or rule never keeps the entry (and every other camera) from loading.
        LOGGER.error(
            "Miloco skips %s %r: its stored settings are not valid (%s); reconfigure or delete it",
            subentry.subentry_type,
            subentry.title,
            err,
        )


async def _async_stop(runtime: MilocoRuntime, subentry_id: str) -> None:
    """Stop a subentry's watcher or rule and take its entities away (their registry entries stay)."""
    if (watcher := runtime.watchers.pop(subentry_id, None)) is not None:
        # Its rules forget its verdicts as it stops.
        await watcher.async_stop()
    # The cameras ask the rules they find in runtime.rules: a removed rule is asked about no more.
    if (rule := runtime.rules.pop(subentry_id, None)) is not None:
        # Its action (a delay, a wait) must not run on for a rule that is gone or now says something else.
        await rule.async_close()
    for entity in runtime.entities.pop(subentry_id, []):
        if entity.hass is not None and entity.platform is not None:
            await entity.async_remove()


def _unique_ids(runtime: MilocoRuntime, subentry_id: str) -> set[str]:
    """Return the unique ids of the entities a subentry has now."""
    return {entity.unique_id for entity in runtime.entities.get(subentry_id, []) if entity.unique_id}


def _forget_dropped_entities(hass: HomeAssistant, unique_ids: set[str]) -> None:
    """Remove the registry entries of entities a changed subentry no longer has (an unticked activity)."""
    registry = er.async_get(hass)
    for entry in list(registry.entities.values()):
        if entry.platform == DOMAIN and entry.unique_id in unique_ids:
            registry.async_remove(entry.entity_id)


def _connect_watcher(runtime: MilocoRuntime, watcher: CameraWatcher) -> None:
    """Wire one camera to the rules that look at it, found afresh each time: rules come and go live."""
    camera = watcher.config.camera_entity_id

    def enabled_rules() -> tuple[RuleSpec, ...]:
        return tuple(rule.spec for rule in runtime.rules_for(camera) if rule.enabled)

    @callback
    def judge(verdicts: Verdicts) -> None:
        for asked, holds in verdicts.holds.items():
            rule = runtime.rules.get(asked.rule_id)
            # A verdict belongs to the question it answers: a rule edited (or moved off this camera) since the
            # check started asked something else, and its state is built only from its cameras of now.
            if rule is None or rule.spec != asked or camera not in rule.config.cameras:
                continue
            rule.handle_verdict(
                camera,
                holds,
                verdicts.reason,
                verdicts.now,
                moving=verdicts.moving,
                key_frame=verdicts.key_frame,
                probability=verdicts.probabilities.get(asked),
            )

    @callback
    def still(now: float) -> None:
        for rule in runtime.rules_for(camera):
            rule.handle_still(camera, now)

    @callback
    def availability(available: bool) -> None:
        if not available:
            now = time.monotonic()
            for rule in runtime.rules_for(camera):
                rule.handle_camera_lost(camera, now)
        state()

    @callback
    def state() -> None:
        # Recovery is told only through the camera's state news (availability(True) is never fired); the
        # rules write their entities only when their availability changes, not at every counter change. A
        # watcher being stopped was taken out first: the change that stops it refreshes every rule at its end,
        # so that a camera's edit does not flash its rules unavailable.
        if runtime.watchers.get(watcher.subentry_id) is watcher:
            runtime.refresh_availability(runtime.rules_for(camera))

    watcher.set_rule_provider(enabled_rules)
    watcher.events.verdicts.add(judge)
    watcher.events.still.add(still)
    watcher.events.availability.add(availability)
    watcher.events.state.add(state)
