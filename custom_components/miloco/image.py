"""Image platform: a "Last detection" image per camera, the frame of the check that last fired something."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from homeassistant.components.image import ImageEntity, ImageEntityDescription
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entity import CAMERA_MODEL, MilocoEntity
from .keyframes import ATTR_KEY_FRAME_MEDIA_ID, ATTR_KEY_FRAME_PATH, ATTR_KEY_FRAME_URL, KeyFrames
from .runtime import MilocoConfigEntry, MilocoRuntime
from .watcher import CameraWatcher

PARALLEL_UPDATES = 0

LAST_DETECTION = ImageEntityDescription(key="last_detection", translation_key="last_detection")


async def async_setup_entry(
    hass: HomeAssistant, entry: MilocoConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """Add a Last detection image for every watched camera, now and later."""

    def entities_of(runtime: MilocoRuntime, subentry_id: str) -> list[Entity]:
        if (watcher := runtime.watchers.get(subentry_id)) is None:
            return []
        return [LastDetectionImage(hass, watcher, runtime.rule_titles)]

    entry.runtime_data.async_register_platform(Platform.IMAGE, async_add_entities, entities_of)


class LastDetectionImage(MilocoEntity, ImageEntity):
    """Shows the newest frame of the check that last fired a gesture or a rule; changes only then."""

    def __init__(
        self, hass: HomeAssistant, watcher: CameraWatcher, rule_titles: Callable[[], list[str]]
    ) -> None:
        """Tie the image to its camera's key frames and to the camera's device."""
        ImageEntity.__init__(self, hass)
        self._key_frames: KeyFrames = watcher.key_frames
        # The entry's rule names when the saved frame is restored (a file is named after a rule's slug).
        self._rule_titles = rule_titles
        MilocoEntity.__init__(
            self,
            watcher.subentry_id,
            watcher.title,
            CAMERA_MODEL,
            LAST_DETECTION,
            self._key_frames.async_add_listener,
        )

    async def async_added_to_hass(self) -> None:
        """Name this entity in the key frames' events, bring back the saved frame, and follow new ones."""
        self._key_frames.entity_id = self.entity_id
        self.async_on_remove(self._forget_entity_id)
        # Before following: this entity's first state already shows what the restore found.
        await self._key_frames.async_restore(self._rule_titles())
        await super().async_added_to_hass()
        self._show_current()

    @callback
    def _forget_entity_id(self) -> None:
        """Stop naming this entity in events once it is gone."""
        if self._key_frames.entity_id == self.entity_id:
            self._key_frames.entity_id = None

    @callback
    def _async_source_changed(self) -> None:
        """Show the new key frame."""
        self._show_current()
        self.async_write_ha_state()

    @callback
    def _show_current(self) -> None:
        """Take the current key frame's time and content type (the state is the time it was taken)."""
        if (frame := self._key_frames.current) is not None:
            self._attr_image_last_updated = frame.taken_at
            self._attr_content_type = frame.content_type

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return the camera, what the frame fired and, when saved, where the file is."""
        attributes: dict[str, Any] = {"camera_entity_id": self._key_frames.camera_entity_id}
        if (frame := self._key_frames.current) is not None:
            attributes["detection"] = frame.label
            reference = self._key_frames.reference()
            for key in (ATTR_KEY_FRAME_PATH, ATTR_KEY_FRAME_MEDIA_ID, ATTR_KEY_FRAME_URL):
                if key in reference:
                    attributes[key] = reference[key]
        return attributes

    async def async_image(self) -> bytes | None:
        """Return the key frame's bytes (None before the first detection), announcing their true type."""
        if (frame := self._key_frames.current) is None:
            return None
        # The view reads the content type after this call: it must be this frame's.
        self._attr_content_type = frame.content_type
        return frame.image
