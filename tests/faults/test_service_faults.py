"""Service actions fed `nan`, `inf`, negative, huge, NUL and wrong-type values: translated refusals only."""

from __future__ import annotations

from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import translation
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.miloco.const import DOMAIN, SUBENTRY_RULE

from ..helpers import find_device
from ..model_server import FakeModelServer
from ..perception_helpers import answer, watch
from ..scenes import SceneCamera, static_room
from ..test_rules import add_rule, rule_form

NAN, INF = float("nan"), float("inf")
GOOD_ANALYZE: dict[str, Any] = {"cameras": ["camera.living_room"], "question": "Anyone there?"}


def _nested(depth: int) -> dict[str, Any]:
    """Return an object schema nested `depth` levels deep."""
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"x": schema}}
    return schema


@pytest.fixture
async def entry(hass: HomeAssistant, model_server: FakeModelServer) -> MockConfigEntry:
    """A backend watching the living room; every model call would succeed."""
    model_server.default_reply = answer()
    return await watch(hass, model_server, SceneCamera("Living room", static_room()))


async def _refused(hass: HomeAssistant, service: str, data: dict[str, Any]) -> ServiceValidationError:
    """Call the service; return its ServiceValidationError after checking that it is translated."""
    with pytest.raises(ServiceValidationError) as caught:
        await hass.services.async_call(DOMAIN, service, data, blocking=True, return_response=True)
    error = caught.value
    assert error.translation_domain == DOMAIN
    strings = await translation.async_get_translations(hass, "en", "exceptions", [DOMAIN])
    assert f"component.{DOMAIN}.exceptions.{error.translation_key}.message" in strings
    # The English message, its placeholders filled in.
    assert error.translation_key not in str(error)
    assert "{" not in str(error)
    return error


@pytest.mark.parametrize(
    ("field", "value", "key"),
    [
        ("max_wait", NAN, "invalid_number"),
        ("max_wait", INF, "invalid_number"),
        ("max_wait", -INF, "invalid_number"),
        ("max_wait", -1, "invalid_number"),
        ("max_wait", 1e308, "invalid_number"),
        ("max_wait", 10**400, "invalid_number"),
        ("max_wait", "soon", "invalid_number"),
        ("max_wait", "nan", "invalid_number"),
        ("max_wait", True, "invalid_number"),
        ("max_wait", [1], "invalid_number"),
        ("question", "", "invalid_text"),
        ("question", "Anyone\x00there?", "invalid_text"),
        ("question", "x" * 5000, "invalid_text"),
        ("question", ["Anyone?"], "invalid_text"),
        ("question", {"text": "Anyone?"}, "invalid_text"),
        ("question", None, "invalid_text"),
        ("cameras", [], "invalid_cameras"),
        ("cameras", "camera.living_room\x00", "invalid_cameras"),
        ("cameras", ["camera." + "x" * 5000 + " y"], "invalid_cameras"),
        ("cameras", 5, "invalid_cameras"),
        ("cameras", {"camera": "camera.living_room"}, "invalid_cameras"),
        ("cameras", [None], "invalid_cameras"),
        ("config_entry_id", "entry\x00", "invalid_text"),
        ("config_entry_id", "x" * 5000, "invalid_text"),
        ("config_entry_id", ["an entry"], "invalid_text"),
        ("structure", "people", "invalid_structure"),
        ("structure", [{"type": "object"}], "invalid_structure"),
        (
            "structure",
            {"type": "object", "properties": {"n": {"type": "number", "minimum": NAN}}},
            "invalid_structure",
        ),
        (
            "structure",
            {"type": "object", "properties": {"n": {"type": "number", "maximum": INF}}},
            "invalid_structure",
        ),
        (
            "structure",
            {"type": "object", "properties": {"s": {"type": "string", "maxLength": -1}}},
            "invalid_structure",
        ),
        (
            "structure",
            {"type": "object", "properties": {"s": {"type": "string", "maxLength": 0.5}}},
            "invalid_structure",
        ),
        # Deeper than any answer structure needs (HA's own debug log of the call recurses on far deeper ones).
        ("structure", _nested(40), "invalid_structure"),
        (
            "structure",
            {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(5000)}},
            "invalid_structure",
        ),
        ("bogus", 1, "invalid_field"),
    ],
)
@pytest.mark.usefixtures("entry")
async def test_analyze_refuses_bad_values(
    hass: HomeAssistant,
    model_server: FakeModelServer,
    field: str,
    value: Any,
    key: str,
) -> None:
    error = await _refused(hass, "analyze", {**GOOD_ANALYZE, field: value})
    assert error.translation_key == key
    # Refused before any model time was spent.
    assert not [
        body
        for body in model_server.chat_requests
        if "Answer the user's question" in body["messages"][0]["content"]
    ]


@pytest.mark.parametrize("missing", ["cameras", "question"])
async def test_analyze_needs_its_required_fields(
    hass: HomeAssistant, entry: MockConfigEntry, missing: str
) -> None:
    data = {key: value for key, value in GOOD_ANALYZE.items() if key != missing}
    assert (await _refused(hass, "analyze", data)).translation_key == "invalid_field"


@pytest.mark.parametrize(
    ("field", "value", "key"),
    [
        ("max_wait", NAN, "invalid_number"),
        ("max_wait", INF, "invalid_number"),
        ("max_wait", -0.5, "invalid_number"),
        ("max_wait", 1e12, "invalid_number"),
        ("rule", "\x00", "invalid_text"),
        ("rule", "x" * 5000, "invalid_text"),
        ("rule", ["a device"], "invalid_text"),
        ("rule", None, "invalid_text"),
        ("rule", NAN, "rule_not_found"),
    ],
)
async def test_evaluate_rule_refuses_bad_values(
    hass: HomeAssistant, entry: MockConfigEntry, field: str, value: Any, key: str
) -> None:
    await add_rule(hass, entry, rule_form(enabled=False))
    rule_id = next(sid for sid, sub in entry.subentries.items() if sub.subentry_type == SUBENTRY_RULE)
    device = find_device(hass, entry, rule_id)
    assert device is not None
    error = await _refused(hass, "evaluate_rule", {"rule": device.id, field: value})
    assert error.translation_key == key
