"""Our integration as the benchmark runs it: a real config entry, with meters around its watchers."""

from __future__ import annotations

from collections.abc import Callable
import contextlib
from dataclasses import dataclass
import importlib
import time
from types import ModuleType
from typing import Any, Final

from homeassistant.core import Event, HomeAssistant, callback
from pytest_homeassistant_custom_component.common import MockConfigEntry

from benchmarks.conditions import RULE_CONDITIONS
from benchmarks.meter import Meter, MeteredBackend, OpenCheck
from custom_components.miloco import frame_intake as frame_intake_module, watcher as watcher_module
from custom_components.miloco.camera_flow import DEFAULTS as CAMERA_DEFAULTS
from custom_components.miloco.const import (
    BACKEND_REMOTE,
    CONF_BACKEND,
    CONF_CAMERA,
    CONF_CAMERAS,
    CONF_CHECK_INTERVAL,
    CONF_CONDITION,
    CONF_COOLDOWN,
    CONF_ENABLED,
    CONF_MAX_CONCURRENT,
    CONF_MODE,
    CONF_MODEL,
    CONF_OFF_DELAY,
    CONF_ON_CHECKS,
    CONF_RULE_NAME,
    CONF_SPARE_SLOTS,
    CONF_TIMEOUT,
    CONF_URL,
    CONF_VERIFY_SSL,
    DOMAIN,
    EVENT_MILOCO,
    MODE_EVENT,
    SUBENTRY_CAMERA,
    SUBENTRY_RULE,
)
from custom_components.miloco.settings import COOLDOWN, OFF_DELAY, ON_CHECKS, REMOTE_TIMEOUT
from custom_components.miloco.watcher import CameraWatcher

# What an event of rule number n reports (for the latency: which episode it answers).
RULE_KINDS: Final = {1: "gesture", 2: "walker"}
# The fixed tick of the versions before work-conserving checks: a check at most every 2 s. Since then the
# camera setting is the minimum time between the starts of two checks, and "ours-tick" sets it to this.
FIXED_TICK_S: Final = 2.0
# The integration's policies: the camera flow's defaults, and the same entry with the fixed 2 s tick.
OURS_CHECK_INTERVAL_S: Final[dict[str, float | None]] = {"ours": None, "ours-tick": FIXED_TICK_S}


def _stage_modules() -> list[ModuleType]:
    """Return the integration's modules that may call prepare_window, pick_window, prepare_capture and parse_reply."""
    modules = [watcher_module, frame_intake_module]
    with contextlib.suppress(ImportError):
        modules.append(importlib.import_module("custom_components.miloco.engine.check"))
    return modules


def camera_data(
    entity_id: str, check_interval_s: float | None = None, spare_slots: bool | None = None
) -> dict[str, Any]:
    """Return a camera subentry with the camera flow's defaults, or another time between checks if given."""
    data = {**CAMERA_DEFAULTS, CONF_CAMERA: entity_id}
    if check_interval_s is not None:
        data[CONF_CHECK_INTERVAL] = check_interval_s
    if spare_slots is not None:
        data[CONF_SPARE_SLOTS] = spare_slots
    return data


def rule_data(index: int, entity_id: str) -> dict[str, Any]:
    """Return rule number `index` (1-based) on one camera, in event mode with the default cooldown."""
    return {
        CONF_RULE_NAME: f"Rule {index}",
        CONF_CONDITION: RULE_CONDITIONS[index - 1],
        CONF_CAMERAS: [entity_id],
        CONF_MODE: MODE_EVENT,
        CONF_COOLDOWN: COOLDOWN.default,
        CONF_ON_CHECKS: ON_CHECKS.default,
        CONF_OFF_DELAY: OFF_DELAY.default,
        CONF_ENABLED: True,
    }


def _camera_id(entity_id: str) -> str:
    return f"bench_{entity_id.split('.', 1)[1]}"


def build_entry(
    server_url: str,
    cameras: list[tuple[str, int]],
    max_concurrent: int,
    check_interval_s: float | None = None,
    spare_slots: bool | None = None,
) -> MockConfigEntry:
    """Return a remote-backend entry watching the cameras, each with its number of rules."""
    subentries: list[dict[str, Any]] = []
    for entity_id, rules in cameras:
        camera_id = _camera_id(entity_id)
        subentries.append(
            {
                "subentry_id": camera_id,
                "subentry_type": SUBENTRY_CAMERA,
                "title": entity_id,
                "unique_id": None,
                "data": camera_data(entity_id, check_interval_s, spare_slots),
            }
        )
        subentries.extend(
            {
                "subentry_id": f"{camera_id}_r{index}",
                "subentry_type": SUBENTRY_RULE,
                "title": f"{entity_id} rule {index}",
                "unique_id": None,
                "data": rule_data(index, entity_id),
            }
            for index in range(1, rules + 1)
        )
    return MockConfigEntry(
        domain=DOMAIN,
        title="bench",
        unique_id=f"bench-{time.monotonic_ns()}",
        data={
            CONF_BACKEND: BACKEND_REMOTE,
            CONF_URL: f"{server_url}/v1",
            CONF_MODEL: "bench-ours",
            CONF_VERIFY_SSL: True,
            CONF_TIMEOUT: REMOTE_TIMEOUT.default,
            CONF_MAX_CONCURRENT: max_concurrent,
        },
        subentries_data=subentries,  # type: ignore[arg-type]
    )


@dataclass(slots=True)
class WatcherCounters:
    """A watcher's counters at one moment."""

    checks: int
    skipped_by_gate: int
    skipped_busy: int
    failures: int


class _StageTimers:
    """The integration's stage functions, wrapped once while any Ours runs, timing into every running meter.

    The integration calls them through a module's globals (the watcher's, or the engine's check module's,
    depending on the version), so replacing those for the phase times every call without touching the
    integration's code. One shared set of wrappers, not one per Ours: entries running at the same time (the
    quick plan's concurrent phases) would otherwise stack wrappers and, stopping in another order than they
    started, leave one in place for good.
    """

    def __init__(self) -> None:
        """Start with nothing wrapped."""
        self.meters: list[Meter] = []
        self._originals: list[tuple[ModuleType, str, Callable[..., Any]]] = []

    def add(self, meter: Meter) -> None:
        """Time the stages into `meter` too (wrapping them if nothing did yet)."""
        if not self.meters:
            self._wrap()
        self.meters.append(meter)

    def remove(self, meter: Meter) -> None:
        """Stop timing into `meter`; put the originals back once no meter is left."""
        if meter in self.meters:
            self.meters.remove(meter)
        if not self.meters:
            for module, name, function in reversed(self._originals):
                setattr(module, name, function)
            self._originals.clear()

    def _wrap(self) -> None:
        meters = self.meters

        def timed(stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
            def run(*args: Any, **kwargs: Any) -> Any:
                started = time.monotonic()
                try:
                    return function(*args, **kwargs)
                finally:
                    elapsed = time.monotonic() - started
                    for meter in meters:
                        meter.record_stage(stage, elapsed)

            return run

        for module in _stage_modules():
            for name, stage in (
                ("prepare_window", "prepare"),
                ("pick_window", "prepare"),
                ("prepare_capture", "capture"),
                ("parse_reply", "parse"),
            ):
                if hasattr(module, name):
                    original = getattr(module, name)
                    self._originals.append((module, name, original))
                    setattr(module, name, timed(stage, original))


_STAGE_TIMERS: Final = _StageTimers()


class Ours:
    """Runs the integration on a set of cameras for one phase, metering every check and event."""

    def __init__(
        self,
        hass: HomeAssistant,
        server_url: str,
        meter: Meter,
        max_concurrent: int,
        *,
        check_interval_s: float | None = None,
        spare_slots: bool | None = None,
    ) -> None:
        """Prepare; nothing runs until async_start(). Given settings override the camera flow's defaults."""
        self.hass = hass
        self.server_url = server_url
        self.meter = meter
        self.max_concurrent = max_concurrent
        self.check_interval_s = check_interval_s
        self.spare_slots = spare_slots
        self.entry: MockConfigEntry | None = None
        self._unlisten: Callable[[], None] | None = None

    async def async_start(self, cameras: list[tuple[str, int]]) -> None:
        """Set up an entry watching the cameras (entity id, number of rules) and meter it."""
        _STAGE_TIMERS.add(self.meter)
        entry = build_entry(
            self.server_url, cameras, self.max_concurrent, self.check_interval_s, self.spare_slots
        )
        entry.add_to_hass(self.hass)
        self.entry = entry
        self._unlisten = self.hass.bus.async_listen(EVENT_MILOCO, self._on_event)
        if not await self.hass.config_entries.async_setup(entry.entry_id):
            raise RuntimeError("the Miloco entry did not set up")
        await self.hass.async_block_till_done()
        for watcher in self.watchers:
            self._meter_watcher(watcher)

    @property
    def watchers(self) -> list[CameraWatcher]:
        """Return the entry's watchers."""
        if self.entry is None:
            return []
        return list(self.entry.runtime_data.watchers.values())

    def counters(self) -> dict[str, WatcherCounters]:
        """Return every watcher's counters, by camera."""
        return {
            watcher.config.camera_entity_id: WatcherCounters(
                watcher.stats.checks,
                watcher.stats.skipped_by_gate,
                watcher.stats.skipped_busy,
                watcher.stats.failures,
            )
            for watcher in self.watchers
        }

    async def async_stop(self) -> None:
        """Unload and remove the entry."""
        _STAGE_TIMERS.remove(self.meter)
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        if self.entry is not None:
            await self.hass.config_entries.async_remove(self.entry.entry_id)
            await self.hass.async_block_till_done()
            self.entry = None

    def _meter_watcher(self, watcher: CameraWatcher) -> None:
        """Put a meter between the watcher and the backend, and time each of its checks through its hooks."""
        camera = watcher.config.camera_entity_id
        meter = self.meter
        # A private attribute on purpose: the benchmark observes the integration's requests from outside.
        watcher._check.backend = MeteredBackend(watcher._check.backend, meter, camera)  # type: ignore[assignment]
        # Two checks of a camera may overlap (spare slots) and end in either order: each is known by its start.
        opened: dict[float, OpenCheck] = {}

        def started(started_at: float) -> None:
            # Called from the check's own task: the requests it makes from here on belong to it.
            opened[started_at] = meter.begin_check(camera)

        def ended(started_at: float, _ended: float) -> None:
            if (check := opened.pop(started_at, None)) is not None:
                meter.end_check(check)

        watcher.check_hooks.started.add(started)
        watcher.check_hooks.ended.add(ended)

    @callback
    def _on_event(self, event: Event) -> None:
        if event.data.get("type") != "rule_triggered":
            return
        rule_id = str(event.data.get("rule_id", ""))
        index = int(rule_id.rsplit("_r", 1)[1]) if "_r" in rule_id else 0
        self.meter.record_event(str(event.data.get("camera_entity_id")), RULE_KINDS.get(index, "other"))
