"""The camera form filled in from the settings table, so that a new camera setting needs no test edited."""

from __future__ import annotations

from typing import Any

from custom_components.miloco.settings import CAMERA_SETTINGS, SECTION_CAPTURE, defaults


def table_form(camera: str = "camera.living_room", **values: Any) -> dict[str, Any]:
    """Return the camera form with the table's defaults, `values` instead where given, each in its section."""
    data = {**defaults(CAMERA_SETTINGS), **values}
    form: dict[str, Any] = {"camera_entity_id": camera}
    known = {setting.key for setting in CAMERA_SETTINGS}
    for setting in CAMERA_SETTINGS:
        if setting.key in data:
            place = form.setdefault(setting.section, {}) if setting.section else form
            place[setting.key] = data[setting.key]
    # Fields of the form that are not table settings (the motion sensor) go with the capture settings.
    extra = {key: value for key, value in values.items() if key not in known}
    if extra:
        form.setdefault(SECTION_CAPTURE, {}).update(extra)
    return form
