"""Tests of the change gate on generated scenes: noise and flicker are not change, motion is."""

from __future__ import annotations

import io
import itertools
import math
import random
from typing import Any

from hypothesis import given, settings, strategies as st
from PIL import Image, ImageChops, ImageDraw
import pytest

from custom_components.miloco.engine import gate

GateReason = gate.GateReason

W, H = 640, 360


def _room(seed: int = 1, dark: bool = False) -> Image.Image:
    """Return a cluttered synthetic room: furniture-like rectangles on a wall."""
    rng = random.Random(seed)
    low, high = (5, 60) if dark else (30, 230)
    image = Image.new("RGB", (W, H), (25, 22, 20) if dark else (120, 110, 100))
    draw = ImageDraw.Draw(image)
    for _ in range(30):
        x, y = rng.randrange(W), rng.randrange(H)
        draw.rectangle(
            (x, y, x + rng.randrange(10, 150), y + rng.randrange(10, 150)),
            fill=tuple(rng.randrange(low, high) for _ in range(3)),
        )
    return image


ROOM = _room()


def _blob_radius(area_fraction: float) -> int:
    return round(math.sqrt(area_fraction * W * H / math.pi))


def _frame(
    *,
    blob: tuple[int, int] | None = None,
    radius: int = 0,
    gain: float = 1.0,
    offset: int = 0,
    noise: float = 6.0,
    quality: int = 70,
    room: Image.Image = ROOM,
) -> bytes:
    """Return one camera frame as JPEG: the room, an optional skin-coloured blob, sensor noise, exposure."""
    image = room.copy()
    if blob is not None:
        x, y = blob
        ImageDraw.Draw(image).ellipse((x - radius, y - radius, x + radius, y + radius), fill=(220, 180, 150))
    if noise:
        image = ImageChops.add(image, Image.effect_noise((W, H), noise).convert("RGB"), 1.0, -128)
    if gain != 1.0 or offset:
        image = image.point(lambda v: max(0, min(255, round(v * gain + offset))))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _thumb(**kwargs: Any) -> Any:
    return gate.thumbnail(_frame(**kwargs))


@pytest.fixture(scope="module")
def still() -> Any:
    return _thumb()


# --- thumbnails and scores ----------------------------------------------------------------------------


def test_thumbnail_keeps_the_aspect_ratio() -> None:
    assert gate.thumb_size(1920, 1080) == (64, 36)
    assert gate.thumb_size(640, 480) == (64, 48)
    assert gate.thumb_size(360, 640) == (64, 114)
    assert gate.thumb_size(4000, 100) == (64, 16)
    thumb = gate.thumbnail(_frame())
    assert (thumb.width, thumb.height) == (64, 36)
    assert len(thumb.pixels) == 64 * 36


def test_thumbnail_from_image_matches_thumbnail_from_bytes() -> None:
    data = _frame(noise=0)
    from_bytes = gate.thumbnail(data)
    from_image = gate.thumbnail(Image.open(io.BytesIO(data)).convert("RGB"))
    assert gate.change_score(from_bytes, from_image) == 0.0


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_thumbnail_from_a_draft_matches_thumbnail_from_bytes(scale: int) -> None:
    # The frame's one decode is at the model's scale (a JPEG draft); its thumb must be the gate's usual one.
    data = _frame(noise=0)
    drafted = Image.open(io.BytesIO(data))
    drafted.draft("RGB", (W // scale, H // scale))
    image = drafted.convert("RGB")
    assert image.size == (W // scale, H // scale)
    from_draft = gate.thumbnail(image, full_size=(W, H))
    from_bytes = gate.thumbnail(data)
    assert (from_draft.width, from_draft.height) == (from_bytes.width, from_bytes.height)
    assert gate.change_score(from_bytes, from_draft) == 0.0
    mean_difference = sum(
        abs(a - b) for a, b in zip(from_draft.pixels, from_bytes.pixels, strict=True)
    ) / len(from_bytes.pixels)
    assert mean_difference < 1.5


@pytest.mark.parametrize("size", [(1, 1), (20, 20), (63, 35), (4000, 16), (1, 8000)])
def test_thumbnail_of_any_image_size(size: tuple[int, int]) -> None:
    # An image smaller than the thumb used to end the image route in StopIteration.
    image = Image.new("RGB", size, (200, 40, 40))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    for thumb in (gate.thumbnail(image), gate.thumbnail(buffer.getvalue())):
        assert (thumb.width, thumb.height) == gate.thumb_size(*size)
        assert len(thumb.pixels) == thumb.width * thumb.height


def _normalised_by_definition(thumb: gate.Thumb) -> list[int]:
    """Return the thumb's normalised levels computed plainly: zero mean, unit spread (floored), 8-bit levels."""
    mean = sum(thumb.pixels) / len(thumb.pixels)
    spread = math.sqrt(sum((value - mean) ** 2 for value in thumb.pixels) / len(thumb.pixels))
    scale = gate._LEVELS_PER_SPREAD / max(gate._MIN_SPREAD, spread)
    return [min(255, max(0, round(128 + (value - mean) * scale))) for value in thumb.pixels]


@pytest.mark.parametrize(
    "pixels",
    [
        bytes([0, 255] * 32 * 36),  # the most contrast there is: clipped at both ends
        bytes([7] * 64 * 36),  # flat: the spread's floor keeps it at mid-grey
        bytes(range(256)) * 9,  # a ramp
        bytes(random.Random(3).randrange(100, 111) for _ in range(64 * 36)),  # dim noise under the floor
        bytes(random.Random(4).randrange(256) for _ in range(64 * 36)),
    ],
    ids=["black-and-white", "flat", "ramp", "dim-noise", "noise"],
)
def test_normalised_thumb_follows_its_definition(pixels: bytes) -> None:
    """The normalisation is done by Pillow on floats: it must give the plain definition's levels, clipped."""
    thumb = gate.Thumb(64, 36, pixels)
    expected = _normalised_by_definition(thumb)
    ours = list(thumb.normalised.tobytes())
    # Rounding halves may go either way: one level at most, and only there.
    assert max(abs(a - b) for a, b in zip(ours, expected, strict=True)) <= 1
    assert sum(a != b for a, b in zip(ours, expected, strict=True)) <= len(pixels) // 100


def test_identical_and_mismatched_thumbs(still: Any) -> None:
    assert gate.change_score(still, still) == 0.0
    other = gate.Thumb(64, 48, bytes(64 * 48))
    assert gate.change_score(still, other) == 1.0


@pytest.mark.parametrize(
    ("gain", "offset"),
    [(1.05, 0), (0.95, 0), (1.0, 13), (1.0, -13), (1.1, 5)],
)
def test_noise_jpeg_and_flicker_are_not_change(still: Any, gain: float, offset: int) -> None:
    for quality in (40, 85):
        flickered = _thumb(gain=gain, offset=offset, quality=quality)
        assert gate.change_score(still, flickered) == 0.0


def test_dark_noisy_scene_is_not_change() -> None:
    dark = _room(seed=2, dark=True)
    first = _thumb(room=dark, noise=15, quality=50)
    second = _thumb(room=dark, noise=15, quality=50, gain=1.05)
    assert gate.change_score(first, second) < gate.DEFAULT_THRESHOLD


def test_score_is_symmetric(still: Any) -> None:
    moved = _thumb(blob=(300, 200), radius=_blob_radius(0.02))
    assert gate.change_score(still, moved) == gate.change_score(moved, still) > 0


def test_moving_hand_sized_blob_is_change() -> None:
    radius = _blob_radius(0.08)
    before = _thumb(blob=(200, 180), radius=radius)
    after = _thumb(blob=(200 + radius, 180), radius=radius)
    assert gate.change_score(before, after) > 10 * gate.DEFAULT_THRESHOLD


def test_small_object_appearing_is_change(still: Any) -> None:
    # Half a percent of the frame: a forearm a few metres from the camera.
    appeared = _thumb(blob=(420, 120), radius=_blob_radius(0.005))
    assert gate.change_score(still, appeared) >= gate.DEFAULT_THRESHOLD


# --- the gate ------------------------------------------------------------------------------------------


def test_static_scene_keeps_the_gate_shut(still: Any) -> None:
    change_gate = gate.ChangeGate()
    first = change_gate.observe(still, 0.0)
    assert (first.changed, first.reason) == (True, GateReason.FIRST)
    change_gate.mark_checked(still)
    for step in range(1, 8):
        flicker = 1.0 + (0.05 if step % 2 else -0.05)
        decision = change_gate.observe(_thumb(gain=flicker), step * 0.5)
        assert (decision.changed, decision.reason, decision.score) == (False, GateReason.STATIC, 0.0)


def test_motion_opens_the_gate(still: Any) -> None:
    change_gate = gate.ChangeGate()
    change_gate.observe(still, 0.0)
    change_gate.mark_checked(still)
    radius = _blob_radius(0.08)
    decision = change_gate.observe(_thumb(blob=(200, 180), radius=radius), 0.5)
    assert decision.changed
    assert decision.reason is GateReason.CHANGED
    assert decision.score > gate.DEFAULT_THRESHOLD


def test_slow_drift_accumulates_until_caught() -> None:
    radius = _blob_radius(0.08)
    thumbs = [_thumb(blob=(200 + 2 * step, 180), radius=radius, noise=0) for step in range(20)]
    # Frame to frame, the drift is below the threshold ...
    assert all(gate.change_score(a, b) < gate.DEFAULT_THRESHOLD for a, b in itertools.pairwise(thumbs))
    change_gate = gate.ChangeGate()
    change_gate.observe(thumbs[0], 0.0)
    change_gate.mark_checked(thumbs[0])
    decisions = [change_gate.observe(thumb, step * 0.5) for step, thumb in enumerate(thumbs[1:], 1)]
    # ... but against the last check it adds up and opens the gate.
    assert not decisions[0].changed
    assert decisions[-1].changed
    caught = next(i for i, d in enumerate(decisions) if d.changed)
    # Once open it stays open until a check runs.
    assert all(d.changed for d in decisions[caught:])
    change_gate.mark_checked(thumbs[-1])
    assert not change_gate.observe(thumbs[-1], 11.0).changed


def test_motion_that_returns_is_latched_until_checked(still: Any) -> None:
    change_gate = gate.ChangeGate()
    change_gate.observe(still, 0.0)
    change_gate.mark_checked(still)
    hand = _thumb(blob=(420, 120), radius=_blob_radius(0.02))
    assert change_gate.observe(hand, 0.5).changed
    # The hand is gone again: the scene equals the reference, but the check has not run yet.
    back = change_gate.observe(still, 1.0)
    assert back.changed
    assert back.score > gate.DEFAULT_THRESHOLD
    change_gate.mark_checked(still)
    assert not change_gate.observe(still, 1.5).changed


def test_a_wave_during_a_check_asks_for_the_next_one(still: Any) -> None:
    change_gate = gate.ChangeGate()
    change_gate.observe(still, 0.0)
    change_gate.check_started(still)
    hand = _thumb(blob=(420, 120), radius=_blob_radius(0.02))
    change_gate.observe(hand, 0.5)
    # The hand is down again before the answer: the scene equals the checked frame, yet it moved since.
    change_gate.observe(still, 1.0)
    change_gate.mark_checked(still)
    assert change_gate.changed_since_check
    assert change_gate.observe(still, 1.5).changed


def test_a_scene_still_during_a_check_asks_nothing_more(still: Any) -> None:
    change_gate = gate.ChangeGate()
    change_gate.observe(still, 0.0)
    change_gate.mark_checked(still)
    # Someone walked in: the check's window shows it ...
    arrived = _thumb(blob=(200, 180), radius=_blob_radius(0.08))
    assert change_gate.observe(arrived, 0.5).changed
    change_gate.check_started(arrived)
    # ... and nothing moved while it ran: its answer covers the scene, so the gate shuts.
    change_gate.observe(arrived, 1.0)
    change_gate.mark_checked(arrived)
    assert not change_gate.changed_since_check
    assert not change_gate.observe(arrived, 1.5).changed


def test_a_failed_check_keeps_its_change_latched(still: Any) -> None:
    change_gate = gate.ChangeGate()
    change_gate.observe(still, 0.0)
    change_gate.mark_checked(still)
    arrived = _thumb(blob=(200, 180), radius=_blob_radius(0.08))
    change_gate.observe(arrived, 0.5)
    change_gate.check_started(arrived)
    # No answer (the check failed): the change it was asked about still opens the gate.
    assert change_gate.observe(arrived, 1.0).changed
    assert change_gate.changed_since_check


def test_a_check_forced_while_another_runs_outlives_its_answer(still: Any) -> None:
    change_gate = gate.ChangeGate()
    change_gate.observe(still, 0.0)
    change_gate.check_started(still)
    # A rule changed while the check ran: that check asked the old rules.
    change_gate.force()
    change_gate.mark_checked(still)
    assert change_gate.changed_since_check
    assert change_gate.observe(still, 0.5).reason is GateReason.FORCED
    # The check that follows asks the new rules: its answer settles it.
    change_gate.check_started(still)
    change_gate.mark_checked(still)
    assert not change_gate.changed_since_check
    assert not change_gate.observe(still, 1.0).changed


def test_force_until_next_check(still: Any) -> None:
    change_gate = gate.ChangeGate()
    change_gate.observe(still, 0.0)
    change_gate.mark_checked(still)
    change_gate.force()
    assert change_gate.observe(still, 1.0).reason is GateReason.FORCED
    # A busy backend skipped the check: the force still holds.
    assert change_gate.observe(still, 1.5).reason is GateReason.FORCED
    change_gate.mark_checked(still)
    assert not change_gate.observe(still, 2.0).changed


def test_force_for_a_while(still: Any) -> None:
    change_gate = gate.ChangeGate()
    change_gate.observe(still, 0.0)
    change_gate.mark_checked(still)
    change_gate.force(until=5.0)
    for now in (1.0, 3.0, 5.0):
        assert change_gate.observe(still, now).reason is GateReason.FORCED
        change_gate.mark_checked(still)
    assert not change_gate.observe(still, 5.5).changed


def test_reset_reopens(still: Any) -> None:
    change_gate = gate.ChangeGate()
    change_gate.observe(still, 0.0)
    change_gate.mark_checked(still)
    change_gate.reset()
    assert change_gate.observe(still, 1.0).reason is GateReason.FIRST


def test_threshold_bounds() -> None:
    assert gate.ChangeGate().threshold == gate.DEFAULT_THRESHOLD
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="threshold"):
            gate.ChangeGate(bad)


def test_threshold_zero_opens_for_every_frame(still: Any) -> None:
    change_gate = gate.ChangeGate(0.0)
    change_gate.observe(still, 0.0)
    change_gate.mark_checked(still)
    assert change_gate.observe(still, 0.5).changed


@pytest.fixture(scope="module")
def sequence() -> list[Any]:
    radius = _blob_radius(0.01)
    return [_thumb(blob=(100 + 15 * step, 200), radius=radius, noise=0) for step in range(8)]


@settings(max_examples=40, deadline=None)
@given(
    thresholds=st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)),
    checks=st.lists(st.booleans(), min_size=8, max_size=8),
)
def test_threshold_is_monotonic(
    sequence: list[Any], thresholds: tuple[float, float], checks: list[bool]
) -> None:
    low, high = sorted(thresholds)
    gates = gate.ChangeGate(low), gate.ChangeGate(high)
    for step, (thumb, check) in enumerate(zip(sequence, checks, strict=True)):
        loose, strict = (g.observe(thumb, step * 0.5) for g in gates)
        # Same frames, same checks: a stricter gate never opens where a looser one stays shut.
        assert loose.changed or not strict.changed
        assert loose.score == strict.score
        if check:
            for g in gates:
                g.mark_checked(thumb)
