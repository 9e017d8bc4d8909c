"""One natural-language rule at run time: its cameras' verdicts in, state, events and its action out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
import itertools
import time
from typing import Any, Final, cast

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, Context, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import condition as ha_condition, config_validation as cv, script
from homeassistant.helpers.script import SCRIPT_MODE_PARALLEL, Script
from homeassistant.util import dt as dt_util
import voluptuous as vol

from .const import (
    CONF_ENABLED,
    DOMAIN,
    EVENT_MILOCO,
    LOGGER,
    MODE_EVENT,
)
from .devices import async_device_id
from .engine.prompt import RuleSpec
from .engine.rules import Debounce, EdgeTrigger, Transition
from .listeners import Listeners

# RuleConfig moved to rule_config.py; re-exported for the modules that import it from here.
from .rule_config import RuleConfig as RuleConfig  # noqa: PLC0414

# (camera, reason, P(yes) of the answer that fired: None when the server gave no log-probabilities).
type TriggerListener = Callable[[str, str | None, float | None], None]
type ConditionCheck = Callable[[Mapping[str, Any] | None], bool]
# Records a check's newest frame as the key frame of a trigger; returns where the event finds it.
type KeyFrameRecorder = Callable[[str], dict[str, str]]


@dataclass(frozen=True, slots=True)
class RuleWiring:
    """What a rule learns from the runtime: whether its cameras can report, and how to have them ask soon."""

    # True while at least one of the rule's cameras is watched and its checks work.
    cameras_available: Callable[[], bool] = lambda: True
    # Have the rule's cameras check at their next frame (the rule was turned on).
    ask_cameras: Callable[[], None] = lambda: None
    # Built when the entry was set up (a start, a restart, a reload): its entities bring back its state.
    # A rule rebuilt by an edit starts clean instead.
    restores: bool = False


# Every runner built gets the next revision: the question it asks differs from the one an edit replaced.
_REVISIONS: Final = itertools.count(1)


async def async_validate_action(hass: HomeAssistant, action: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the action sequence validated as an automation's would be; raise vol.Invalid or HA errors."""
    validated: list[dict[str, Any]] = await script.async_validate_actions_config(
        hass, cv.SCRIPT_SCHEMA(action)
    )
    return validated


async def async_compile_condition(hass: HomeAssistant, conditions: list[dict[str, Any]]) -> ConditionCheck:
    """Return a checker that ANDs the conditions; raise vol.Invalid or HA errors when they are not valid."""
    validated = await ha_condition.async_validate_conditions_config(hass, cv.CONDITIONS_SCHEMA(conditions))
    # Validated configs are plain dicts here (templates stay inside them); the stubs say "or Template".
    return await ha_condition.async_conditions_from_config(
        hass, cast(list[dict[str, Any]], validated), LOGGER, "Miloco rule condition"
    )


class RuleRunner:
    """Judges one rule from its cameras' checks: an edge with cooldown, or a debounced state."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry[Any],
        subentry_id: str,
        title: str,
        config: RuleConfig,
        *,
        wiring: RuleWiring | None = None,
    ) -> None:
        """Prepare the rule's state machine and its action."""
        self.hass = hass
        self.entry = entry
        self.subentry_id = subentry_id
        self.title = title
        self.config = config
        self.wiring = wiring or RuleWiring()
        self.revision = next(_REVISIONS)
        self.enabled = bool(entry.subentries[subentry_id].data.get(CONF_ENABLED, True))
        self.last_reason: str | None = None
        self.last_camera: str | None = None
        # P(yes) of the last answer from any camera (None when it had none): how sure the model was, either way.
        self.last_probability: float | None = None
        self._verdicts: dict[str, bool] = {}
        self._edge = EdgeTrigger(config.cooldown_s)
        self._debounce = Debounce(config.on_checks, config.off_delay_s)
        self._listeners: Listeners[()] = Listeners()
        self._trigger_listeners: Listeners[str, str | None, float | None] = Listeners()
        self._script: Script | None = None
        self._condition: ConditionCheck | None = None
        self._available = True
        self._closed = False

    async def async_prepare(self) -> None:
        """Compile the HA condition and the action once (templates and all); a broken one is logged."""
        try:
            if self.config.ha_condition:
                self._condition = await async_compile_condition(self.hass, self.config.ha_condition)
            if self.config.action:
                self._script = Script(
                    self.hass,
                    await async_validate_action(self.hass, self.config.action),
                    f"Miloco rule {self.title}",
                    DOMAIN,
                    running_description=f"the action of Miloco rule {self.title}",
                    script_mode=SCRIPT_MODE_PARALLEL,
                    logger=LOGGER,
                )
        except (vol.Invalid, HomeAssistantError) as err:
            # Valid when saved, but something it names has gone since: the rule still reports, it cannot act.
            LOGGER.warning("Miloco rule %s cannot run its condition or action: %s", self.title, err)

    @property
    def spec(self) -> RuleSpec:
        """Return what the cameras ask the model about this rule."""
        return RuleSpec(self.subentry_id, self.config.condition, self.revision, self.config.threshold)

    @property
    def is_on(self) -> bool:
        """Return whether the rule's condition currently holds (debounced in state mode)."""
        if self.config.mode == MODE_EVENT:
            return self._edge.value
        return self._debounce.is_on

    @callback
    def async_add_listener(self, listener: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call `listener` when the rule's state or enabled flag changes; return the remover."""
        return self._listeners.add(listener)

    @callback
    def async_add_trigger_listener(self, listener: TriggerListener) -> CALLBACK_TYPE:
        """Call `listener(camera, reason, probability)` each time the rule triggers; return the remover."""
        return self._trigger_listeners.add(listener)

    @property
    def available(self) -> bool:
        """Return False when none of the rule's cameras can report: its state is not known then."""
        return self.wiring.cameras_available()

    @callback
    def refresh_availability(self) -> None:
        """Tell the rule's entities when its cameras' availability changed (and only then)."""
        available = self.available
        if available != self._available:
            self._available = available
            self._notify()

    @callback
    def async_set_enabled(self, enabled: bool) -> None:
        """Turn the rule on or off now (the switch), and remember it across restarts."""
        self.set_enabled(enabled)
        subentry = self.entry.subentries[self.subentry_id]
        if subentry.data.get(CONF_ENABLED, True) != enabled:
            self.hass.config_entries.async_update_subentry(
                self.entry, subentry, data={**subentry.data, CONF_ENABLED: enabled}
            )

    @callback
    def set_enabled(self, enabled: bool) -> None:
        """Turn the rule on or off now, without storing it (the form stored it already).

        Off, the rule forgets its verdicts, edge and debounce and stops its running action; on, its cameras
        ask it at their next frame instead of waiting for a change.
        """
        if enabled == self.enabled or self._closed:
            return
        self.enabled = enabled
        if enabled:
            self.wiring.ask_cameras()
        else:
            self._verdicts.clear()
            self._edge.reset()
            self._debounce.reset()
            if self._script is not None and self._script.is_running:
                self.entry.async_create_background_task(
                    self.hass, self._script.async_stop(), f"miloco stop rule action {self.title}"
                )
        self._notify()

    async def async_close(self) -> None:
        """Stop for good (the rule was removed or rebuilt by an edit): no more verdicts, no running action."""
        self._closed = True
        if self._script is not None and self._script.is_running:
            await self._script.async_stop()

    @callback
    def restore_state(self, on: bool) -> None:
        """Take back the state the rule's sensor had before a restart or reload.

        A state rule that was on stays on without running its action again; its next "yes" is no news.
        """
        if not (on and self.wiring.restores and self.enabled) or self._closed:
            return
        if self.config.mode == MODE_EVENT:
            self._edge.restore(value=True)
        else:
            self._debounce.restore_on()

    @callback
    def restore_last_trigger(self, at: datetime) -> None:
        """Take back when the rule last fired before a restart or reload, so that its cooldown still holds."""
        if not self.wiring.restores or self._closed:
            return
        # The state machines count on the monotonic clock: the same age, counted back from its now.
        age_s = max(0.0, (dt_util.utcnow() - at).total_seconds())
        self._edge.restore(last_fired=time.monotonic() - age_s)

    @callback
    def handle_verdict(
        self,
        camera_entity_id: str,
        holds: bool,
        reason: str | None,
        now: float,
        *,
        moving: bool = True,
        key_frame: KeyFrameRecorder | None = None,
        probability: float | None = None,
    ) -> None:
        """Take one camera's answer from a check that ran; any camera seeing it makes the rule hold.

        In event mode a check of a still scene (a heartbeat) cannot start an event: events need motion.
        `key_frame` records the check's newest frame when the answer triggers the rule; `probability` is the
        answer's P(yes) (None without log-probabilities), already weighed against the rule's threshold.
        """
        if self._closed or not self.enabled or camera_entity_id not in self.config.cameras:
            return
        if self.config.mode == MODE_EVENT and not moving:
            holds = False
        self._verdicts[camera_entity_id] = holds
        changed = probability != self.last_probability
        self.last_probability = probability
        if holds:
            self.last_reason, self.last_camera = reason, camera_entity_id
        if not self._judge(camera_entity_id, reason, now, key_frame, probability) and changed:
            # The state is the same, but the sensor's attribute shows the new P.
            self._notify()

    @callback
    def handle_still(self, camera_entity_id: str, now: float) -> None:
        """Re-arm an event-mode rule: the camera's scene has been still for a whole window since its "yes"."""
        if self.config.mode != MODE_EVENT or not self._verdicts.get(camera_entity_id):
            # State-mode rules keep their verdict in a still room: no change, no news.
            return
        self._verdicts[camera_entity_id] = False
        self._judge(camera_entity_id, None, now)

    @callback
    def handle_camera_lost(self, camera_entity_id: str, now: float) -> None:
        """Forget the verdict of a camera that stopped checking (unavailable, stopped or removed)."""
        if self._verdicts.pop(camera_entity_id, None) is None:
            return
        if any(self._verdicts.values()):
            # Another camera still sees it; a lost camera is no new check to count.
            return
        self._judge(camera_entity_id, None, now)

    @callback
    def _judge(
        self,
        camera_entity_id: str,
        reason: str | None,
        now: float,
        key_frame: KeyFrameRecorder | None = None,
        probability: float | None = None,
    ) -> bool:
        """Combine the cameras' verdicts and run the rule's state machine; return whether its entities were told."""
        value = any(self._verdicts.values())
        if self.config.mode == MODE_EVENT:
            was = self._edge.value
            if self._edge.update(value, now):
                self._trigger(camera_entity_id, reason, key_frame, probability)
            elif was != value:
                self._notify()
            else:
                return False
            return True
        transition = self._debounce.update(value, now)
        if transition is Transition.STARTED:
            self._trigger(camera_entity_id, reason, key_frame, probability)
        elif transition is Transition.ENDED:
            self._notify()
        else:
            return False
        return True

    @callback
    def tick(self, now: float) -> None:
        """Let a state-mode rule's off-delay run out."""
        if self._debounce.tick(now) is Transition.ENDED:
            self._notify()

    @callback
    def _trigger(
        self,
        camera_entity_id: str,
        reason: str | None,
        key_frame: KeyFrameRecorder | None,
        probability: float | None,
    ) -> None:
        """Publish the trigger, then run the action when the HA condition allows it."""
        LOGGER.debug("Rule %s triggered on %s", self.title, camera_entity_id)
        self._trigger_listeners(camera_entity_id, reason, probability)
        event_data = {
            "device_id": async_device_id(self.hass, self.entry.entry_id, self.subentry_id),
            "type": "rule_triggered",
            "rule": self.title,
            "rule_id": self.subentry_id,
            "camera_entity_id": camera_entity_id,
            "reason": reason,
            # How sure the model was (P(yes)); None when the server gave no log-probabilities.
            "probability": probability,
        }
        # ecosystem hook (issue 14): the event says where the frame that fired the rule is.
        if key_frame is not None:
            event_data.update(key_frame(self.title))
        context = Context()
        self.hass.bus.async_fire(EVENT_MILOCO, event_data, context=context)
        self._notify()
        variables = {"trigger": {"platform": DOMAIN, **event_data, "time": dt_util.utcnow()}}
        if self._script is None:
            return
        if self._condition is not None and not self._condition(variables):
            LOGGER.debug("Rule %s: its condition blocks the action", self.title)
            return
        self.entry.async_create_background_task(
            self.hass, self._async_run_action(variables, context), f"miloco rule action {self.title}"
        )

    async def _async_run_action(self, variables: dict[str, Any], context: Context) -> None:
        """Run the action; a failure is logged and never stops the rule."""
        if self._script is None or self._closed or not self.enabled:
            # Stopped between the trigger and this task's start: the action must not start after its stop.
            return
        try:
            await self._script.async_run(variables, context)
        except (vol.Invalid, HomeAssistantError) as err:
            LOGGER.warning("The action of Miloco rule %s failed: %s", self.title, err)

    @callback
    def _notify(self) -> None:
        """Tell the rule's entities to write their state."""
        self._listeners()
