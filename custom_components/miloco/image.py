"""Image platform: a "Last detection" image per camera, the frame of the check that last fired something."""

from __future__ import annotations

from typing import Any

from homeassistant.components.image import ImageEntity, ImageEntityDescription
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import DOMAIN
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
        return [LastDetectionImage(hass, watcher)]

    entry.runtime_data.async_register_platform(Platform.IMAGE, async_add_entities, entities_of)


class LastDetectionImage(ImageEntity):
    """Shows the newest frame of the check that last fired a gesture or a rule; changes only then."""

    _attr_has_entity_name = True
    _attr_should_poll = False
    _attr_content_type = "image/jpeg"

    def __init__(self, hass: HomeAssistant, watcher: CameraWatcher) -> None:
        """Tie the image to its camera's key frames and to the camera's device."""
        super().__init__(hass)
        self.entity_description = LAST_DETECTION
        self._key_frames: KeyFrames = watcher.key_frames
        self._attr_unique_id = f"{watcher.subentry_id}_{LAST_DETECTION.key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, watcher.subentry_id)},
            name=watcher.title,
            manufacturer="Miloco",
            model="Camera perception",
            entry_type=DeviceEntryType.SERVICE,
        )

    async def async_added_to_hass(self) -> None:
        """Tell the key frames which entity shows them, and follow them."""
        await super().async_added_to_hass()
        self._key_frames.entity_id = self.entity_id
        self.async_on_remove(self._key_frames.async_add_listener(self._handle_key_frame))
        self.async_on_remove(self._forget_entity_id)

    @callback
    def _forget_entity_id(self) -> None:
        """Stop naming this entity in events once it is gone."""
        if self._key_frames.entity_id == self.entity_id:
            self._key_frames.entity_id = None

    @callback
    def _handle_key_frame(self) -> None:
        """Show the new key frame."""
        if (frame := self._key_frames.current) is not None:
            self._attr_image_last_updated = frame.taken_at
        self.async_write_ha_state()

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
        """Return the key frame's JPEG bytes (None before the first detection)."""
        frame = self._key_frames.current
        return frame.jpeg if frame is not None else None
