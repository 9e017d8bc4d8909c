"""The cameras Assist may use: those exposed to it, with their areas and what Miloco watches on each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from homeassistant.components.homeassistant.exposed_entities import async_should_expose
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import area_registry as ar, device_registry as dr, entity_registry as er

from .const import DOMAIN
from .entries import loaded_entries

# Exposure is per assistant; Miloco's tools serve conversation agents, which read the "conversation" list.
ASSISTANT: Final = "conversation"


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferedCamera:
    """A camera exposed to Assist: its name, its area, and what Miloco watches on it (empty: not watched)."""

    entity_id: str
    name: str
    area: str | None
    watches: tuple[str, ...]

    def describe(self) -> str:
        """Return the camera's line in the API's prompt."""
        where = f", in the {self.area} area" if self.area else ""
        if self.watches:
            seen = "Miloco watches " + "; ".join(self.watches)
        else:
            seen = "not watched by Miloco (look takes a fresh snapshot; no recent detections)"
        return f"- {self.name} ({self.entity_id}){where}: {seen}"


def offered_cameras(hass: HomeAssistant) -> list[OfferedCamera]:
    """Return every camera exposed to Assist, in entity-id order."""
    return [
        _offered(hass, state.entity_id, state.name)
        for state in sorted(hass.states.async_all(Platform.CAMERA), key=lambda state: state.entity_id)
        if async_should_expose(hass, ASSISTANT, state.entity_id)
    ]


def resolve_cameras(
    hass: HomeAssistant, camera: str | None, area: str | None, *, all_when_unnamed: bool = True
) -> list[OfferedCamera]:
    """Return the offered cameras a tool call names: one camera, an area's, or (unnamed) all of them.

    A camera that exists but is not exposed is refused; so is an area without an exposed camera. Without
    `all_when_unnamed`, naming nothing is refused unless only one camera is offered.
    """
    offered = offered_cameras(hass)
    if camera:
        wanted = camera.strip().casefold()
        for candidate in offered:
            if wanted in (candidate.entity_id.casefold(), candidate.name.casefold()):
                return [candidate]
        if _existing_camera(hass, wanted) is not None:
            raise _error("camera_not_exposed", camera=camera)
        raise _error("camera_not_found", camera=camera)
    if area:
        wanted = area.strip().casefold()
        in_area = [
            candidate for candidate in offered if candidate.area and candidate.area.casefold() == wanted
        ]
        if not in_area:
            raise _error("no_camera_in_area", area=area)
        return in_area
    if not offered:
        raise _error("no_exposed_camera")
    if not all_when_unnamed and len(offered) > 1:
        raise _error("name_a_camera", cameras=", ".join(candidate.name for candidate in offered))
    return offered


def _existing_camera(hass: HomeAssistant, wanted: str) -> str | None:
    """Return the entity id of any camera the text names (exposed or not)."""
    for state in hass.states.async_all(Platform.CAMERA):
        if wanted in (state.entity_id.casefold(), state.name.casefold()):
            return state.entity_id
    return None


def _offered(hass: HomeAssistant, entity_id: str, name: str) -> OfferedCamera:
    """Return what Assist is told about one exposed camera."""
    return OfferedCamera(
        entity_id=entity_id, name=name, area=_area_name(hass, entity_id), watches=_watches(hass, entity_id)
    )


def _area_name(hass: HomeAssistant, entity_id: str) -> str | None:
    """Return the name of the camera's area (its own, else its device's)."""
    entity = er.async_get(hass).async_get(entity_id)
    if entity is None:
        return None
    area_id = entity.area_id
    if area_id is None and entity.device_id is not None:
        device = dr.async_get(hass).async_get(entity.device_id)
        area_id = device.area_id if device is not None else None
    area = ar.async_get(hass).async_get_area(area_id) if area_id is not None else None
    return area.name if area is not None else None


def _watches(hass: HomeAssistant, entity_id: str) -> tuple[str, ...]:
    """Return what the loaded entries watch on the camera: gestures, activities, presence and rules."""
    watches: list[str] = []
    for entry in loaded_entries(hass):
        runtime = entry.runtime_data
        if (watcher := runtime.watcher_for(entity_id)) is not None:
            config = watcher.config
            if config.gestures:
                watches.append("gestures (" + ", ".join(config.gestures) + ")")
            if config.activities:
                watches.append("activities (" + ", ".join(config.activities) + ")")
            if config.presence:
                watches.append("presence")
            if rules := [rule.title for rule in runtime.rules_for(entity_id) if rule.enabled]:
                watches.append("rules (" + ", ".join(rules) + ")")
    return tuple(watches)


def _error(key: str, **placeholders: str) -> HomeAssistantError:
    """Return a translated error for a tool call."""
    return HomeAssistantError(
        translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders
    )
