"""Event platform: a Gesture entity per camera (once per gesture episode), a Triggered entity per rule."""

from __future__ import annotations

from homeassistant.components.event import EventEntity, EventEntityDescription
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import dt as dt_util

from .entity import MilocoCameraEntity, MilocoRuleResultEntity
from .rule_runner import RuleRunner
from .runtime import MilocoConfigEntry, MilocoRuntime
from .watcher import CameraWatcher

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant, entry: MilocoConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """Add a Gesture entity per camera that looks for gestures and a Triggered entity per rule, now and later."""
    entry.runtime_data.async_register_platform(Platform.EVENT, async_add_entities, _entities_of)


def _entities_of(runtime: MilocoRuntime, subentry_id: str) -> list[Entity]:
    """Return the event entities of one camera or rule subentry."""
    if (watcher := runtime.watchers.get(subentry_id)) is not None:
        return [GestureEventEntity(watcher)] if watcher.config.gestures else []
    if (rule := runtime.rules.get(subentry_id)) is not None:
        return [RuleTriggeredEventEntity(rule)]
    return []


class GestureEventEntity(MilocoCameraEntity, EventEntity):
    """Fires the gesture someone shows the camera; event types are the gestures enabled on it."""

    def __init__(self, watcher: CameraWatcher) -> None:
        """Offer exactly the camera's enabled gestures as event types."""
        super().__init__(
            watcher,
            EventEntityDescription(
                key="gesture", translation_key="gesture", event_types=list(watcher.config.gestures)
            ),
        )

    async def async_added_to_hass(self) -> None:
        """Listen for gesture episodes as well as state changes."""
        await super().async_added_to_hass()
        self.async_on_remove(self._watcher.events.gestures.add(self._handle_gesture))

    @callback
    def _handle_gesture(self, gesture: str) -> None:
        """Record one gesture episode."""
        self._trigger_event(gesture, {"camera_entity_id": self._watcher.config.camera_entity_id})
        self.async_write_ha_state()


class RuleTriggeredEventEntity(MilocoRuleResultEntity, EventEntity):
    """Fires each time the rule triggers, with the camera and the model's short reason."""

    def __init__(self, rule: RuleRunner) -> None:
        """Offer one event type: triggered."""
        super().__init__(
            rule,
            EventEntityDescription(
                key="triggered", translation_key="rule_triggered", event_types=["triggered"]
            ),
        )

    async def async_added_to_hass(self) -> None:
        """Listen for triggers as well as state changes; the rule's cooldown counts from its restored last one."""
        await super().async_added_to_hass()
        self.async_on_remove(self._rule.async_add_trigger_listener(self._handle_trigger))
        # The event entity restored its last event's time as its state before this runs.
        if isinstance(self.state, str) and (last := dt_util.parse_datetime(self.state)) is not None:
            self._rule.restore_last_trigger(last)

    @callback
    def _handle_trigger(self, camera_entity_id: str, reason: str | None, probability: float | None) -> None:
        """Record one trigger, with how sure the model was (None when the server gave no log-probabilities)."""
        self._trigger_event(
            "triggered", {"camera_entity_id": camera_entity_id, "reason": reason, "probability": probability}
        )
        self.async_write_ha_state()
