"""The camera schedule's decisions, step by step on a fake clock: start now, wait until a time, or skip and why."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from custom_components.miloco.engine.backends.errors import BackendError, InvalidAuth, ServerError
from custom_components.miloco.engine.camera_schedule import (
    AUTH_RETRY_S,
    CameraSchedule,
    Occasion,
    Skip,
    SkipReason,
    Start,
    Wait,
    WaitReason,
)
from custom_components.miloco.engine.gate import ChangeGate, Thumb
from custom_components.miloco.engine.scheduling import FairLimiter

W, H = 64, 16
# Two pictures of a room: the same one again is no change, the other one is (most cells move).
ROOM = Thumb(W, H, bytes((x * 4) % 256 for _ in range(H) for x in range(W)))
MOVED = Thumb(W, H, bytes(255 - (x * 4) % 256 for _ in range(H) for x in range(W)))
INTERVAL = 0.5
OTHER = "other camera"


@dataclass
class Rig:
    """One camera's schedule on a fake clock, sharing a one-slot limiter with another camera."""

    heartbeat_s: float = 0.0
    slots: int = 1
    spare_slots: bool = False
    now: float = 0.0
    offers: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Build the schedule and start its clock at 0."""
        self.limiter = FairLimiter(self.slots, clock=lambda: self.now)
        self.schedule = CameraSchedule(
            "camera",
            check_interval_s=INTERVAL,
            heartbeat_s=self.heartbeat_s,
            gate=ChangeGate(),
            limiter=self.limiter,
            spare_slots=self.spare_slots,
            clock=lambda: self.now,
        )
        self.schedule.begin(0.0, on_offer=lambda: self.offers.append(self.now))


# Steps: each moves the fake clock to `at` and returns what the schedule answered (or None).
@dataclass(frozen=True)
class Frame:
    """A frame of the room (or of the room after a move) is judged, then the schedule decides."""

    at: float
    thumb: Thumb = ROOM
    motion: bool = False
    asks: bool = True

    def run(self, rig: Rig) -> object:
        # Each frame is a picture of its own, even when it shows the same room.
        thumb = Thumb(self.thumb.width, self.thumb.height, self.thumb.pixels)
        rig.schedule.observe(thumb, self.at, motion=self.motion)
        return rig.schedule.decide(self.at, Occasion.FRAME, asks=lambda: self.asks)


@dataclass(frozen=True)
class NoFrame:
    """The source gave no new frame (a failed capture, a stream between frames)."""

    at: float

    def run(self, rig: Rig) -> object:
        rig.schedule.no_frame()
        return rig.schedule.decide(self.at, Occasion.FRAME)


@dataclass(frozen=True)
class Answer:
    """The check in flight answers; the schedule is asked again at once (work-conserving)."""

    at: float

    def run(self, rig: Rig) -> object:
        rig.schedule.release()
        rig.schedule.answered()
        return rig.schedule.decide(self.at, Occasion.WAKE)


@dataclass(frozen=True)
class AnswerOf:
    """One of two checks in flight answers; returns whether its answer applies, and what is decided then."""

    at: float
    check: int

    def run(self, rig: Rig) -> object:
        rig.schedule.release(self.check)
        applied = rig.schedule.answered(self.check)
        return applied, rig.schedule.decide(self.at, Occasion.WAKE)


@dataclass(frozen=True)
class Fail:
    """The check in flight fails; returns how long the next one waits."""

    at: float
    error: BackendError

    def run(self, rig: Rig) -> object:
        rig.schedule.release()
        return rig.schedule.failed(self.at, self.error)


@dataclass(frozen=True)
class OtherTakes:
    """The other camera takes the only slot."""

    at: float

    def run(self, rig: Rig) -> object:
        return rig.limiter.try_acquire(OTHER, self.at)


@dataclass(frozen=True)
class OtherReleases:
    """The other camera's check answers; returns whether this camera took the slot offered."""

    at: float

    def run(self, rig: Rig) -> object:
        offers = len(rig.offers)
        rig.limiter.release(OTHER)
        return len(rig.offers) > offers


@dataclass(frozen=True)
class Wake:
    """The schedule is asked without a new frame (what an offer taken leads to)."""

    at: float

    def run(self, rig: Rig) -> object:
        return rig.schedule.decide(self.at, Occasion.WAKE)


@dataclass(frozen=True)
class AskSoon:
    """A rule about the camera was added or changed."""

    at: float

    def run(self, rig: Rig) -> object:
        rig.schedule.ask_soon()
        return None


@dataclass(frozen=True)
class Stop:
    """The camera stops."""

    at: float

    def run(self, rig: Rig) -> object:
        rig.schedule.stop()
        return None


@dataclass(frozen=True)
class InFlight:
    """How many requests the limiter has in flight, and whether any caller but this camera waits."""

    at: float

    def run(self, rig: Rig) -> object:
        return rig.limiter.in_flight, rig.limiter.has_waiting("camera", self.at)


type Step = (
    Frame | NoFrame | Answer | AnswerOf | Fail | OtherTakes | OtherReleases | Wake | AskSoon | Stop | InFlight
)

STILL = Skip(SkipReason.STILL)
STILL_REPORTED = Skip(SkipReason.STILL, report=True)
IN_FLIGHT = Skip(SkipReason.IN_FLIGHT)
MOVING = Start(moving=True)


def waits(until: float, reason: WaitReason = WaitReason.INTERVAL) -> Wait:
    """Return the decision to wait until `until`."""
    return Wait(until, reason)


# Each case: the heartbeat (0: none), then its steps and what each must answer.
CASES: dict[str, tuple[float, list[tuple[Step, object]]]] = {
    "a still room asks once, then skips, reported every 2 s": (
        0,
        [
            (Frame(0.0), MOVING),
            (Frame(0.1), IN_FLIGHT),
            (Answer(0.2), waits(0.5)),
            (Frame(0.3), waits(0.5)),
            (Frame(0.5), STILL),
            (Frame(1.0), STILL),
            (Frame(2.0), STILL_REPORTED),
            (Frame(2.5), STILL),
            (Frame(3.9), STILL),
            (Frame(4.0), STILL_REPORTED),
        ],
    ),
    "a still room's skip is reported after a frame, never after an answer": (
        0,
        [
            (Frame(0.0), MOVING),
            (Answer(2.5), STILL),
            (Frame(2.6), STILL_REPORTED),
            (Frame(2.7), STILL),
        ],
    ),
    "a busy room is checked again at the answer once the interval has passed": (
        0,
        [
            (Frame(0.0), MOVING),
            (Frame(0.2, MOVED), IN_FLIGHT),
            (Answer(0.3), waits(0.5)),
            (Frame(0.4, ROOM), waits(0.5)),
            (Frame(0.5, MOVED), MOVING),
            (Frame(0.6, ROOM), IN_FLIGHT),
            (Answer(1.2), MOVING),
        ],
    ),
    "a change seen in one frame stays wanted until checked": (
        0,
        [
            (Frame(0.0), MOVING),
            (Answer(0.1), waits(0.5)),
            (Frame(0.2, MOVED), waits(0.5)),
            (Frame(0.3, ROOM), waits(0.5)),
            (Frame(0.5, ROOM), MOVING),
        ],
    ),
    "a wave over before the answer asks for the next check": (
        0,
        [
            (Frame(0.0), MOVING),
            (Frame(0.6, MOVED), IN_FLIGHT),
            (Frame(0.7, ROOM), IN_FLIGHT),
            (Answer(1.5), MOVING),
            (Answer(2.0), STILL),
        ],
    ),
    "no new frame starts no check on frames already judged": (
        0,
        [
            (Frame(0.0), MOVING),
            (Answer(0.1), waits(0.5)),
            (Frame(0.2, MOVED), waits(0.5)),
            (NoFrame(0.5), Skip(SkipReason.NO_FRAME)),
            (Frame(0.6, MOVED), MOVING),
        ],
    ),
    "failures back off from the interval, doubling, until an answer": (
        0,
        [
            (Frame(0.0, MOVED), MOVING),
            (Fail(0.1, ServerError("500")), 0.5),
            (Frame(0.2, ROOM), waits(0.6, WaitReason.BACKOFF)),
            (Frame(0.6, MOVED), MOVING),
            (Fail(0.7, ServerError("500")), 1.0),
            (Frame(0.8, ROOM), waits(1.7, WaitReason.BACKOFF)),
            (Frame(1.7, MOVED), MOVING),
            (Fail(1.8, ServerError("500")), 2.0),
            (Frame(3.8, ROOM), MOVING),
            (Answer(4.0), waits(4.3)),
            (Frame(4.3, MOVED), MOVING),
            (Fail(4.4, ServerError("500")), 0.5),
        ],
    ),
    "the back-off is capped at 60 s": (
        0,
        [
            (Frame(0.0, MOVED), MOVING),
            *[
                step
                for index, wait in enumerate((0.5, 1, 2, 4, 8, 16, 32, 60, 60))
                for step in (
                    (Fail(index * 100 + 0.5, ServerError("500")), wait),
                    (Frame(index * 100 + 99, MOVED), MOVING),
                )
            ],
        ],
    ),
    "a server's Retry-After is honoured": (
        0,
        [
            (Frame(0.0, MOVED), MOVING),
            (Fail(0.1, ServerError("429", retry_after=30)), 30.0),
            (Frame(0.2, MOVED), waits(30.1, WaitReason.BACKOFF)),
            (Frame(29.0, MOVED), waits(30.1, WaitReason.BACKOFF)),
            (Frame(30.1, MOVED), MOVING),
        ],
    ),
    "a refused key waits 300 s": (
        0,
        [
            (Frame(0.0, MOVED), MOVING),
            (Fail(1.0, InvalidAuth("401")), AUTH_RETRY_S),
            (Frame(2.0, MOVED), waits(1.0 + AUTH_RETRY_S, WaitReason.KEY_REFUSED)),
            (Frame(1.0 + AUTH_RETRY_S, MOVED), MOVING),
        ],
    ),
    "the heartbeat re-checks a still room": (
        2,
        [
            (Frame(0.0), MOVING),
            (Answer(0.2), waits(0.5)),
            (Frame(1.5), STILL),
            (Frame(2.0), Start(moving=False)),
            (Answer(2.2), waits(2.5)),
            (Frame(3.0), STILL),
            (Frame(4.0), Start(moving=False)),
        ],
    ),
    "a rule change forces a check of a still room": (
        0,
        [
            (Frame(0.0), MOVING),
            (Answer(0.2), waits(0.5)),
            (Frame(1.0), STILL),
            (AskSoon(1.1), None),
            (Frame(1.2), MOVING),
            (Answer(1.5), waits(1.7)),
            (Frame(1.7), STILL),
        ],
    ),
    "a rule changed during a check asks again after its answer": (
        0,
        [
            (Frame(0.0), MOVING),
            (AskSoon(0.1), None),
            (Answer(0.6), MOVING),
            (Answer(0.8), waits(1.1)),
            (Frame(1.1), STILL),
        ],
    ),
    "a motion sensor that is on forces a check": (
        0,
        [
            (Frame(0.0), MOVING),
            (Answer(0.2), waits(0.5)),
            (Frame(1.0), STILL),
            (Frame(1.1, motion=True), MOVING),
        ],
    ),
    "a camera with nothing to ask waits an interval": (
        0,
        [
            (Frame(0.0, asks=False), Skip(SkipReason.NOTHING_TO_ASK)),
            (Frame(0.1, MOVED, asks=False), waits(0.5)),
            (Frame(0.5, MOVED), MOVING),
        ],
    ),
    "a refused check is counted once per due check": (
        0,
        [
            (OtherTakes(0.0), True),
            (Frame(0.0), Skip(SkipReason.BUSY, report=True)),
            (Frame(0.1, MOVED), Skip(SkipReason.BUSY)),
            (Frame(0.2, ROOM), Skip(SkipReason.BUSY)),
            (OtherReleases(0.3), True),
            (Wake(0.3), MOVING),
            (Answer(0.4), waits(0.8)),
            (OtherTakes(0.5), True),
            (Frame(0.8, MOVED), Skip(SkipReason.BUSY, report=True)),
        ],
    ),
    "an offered slot is taken by a camera whose changed scene waits": (
        0,
        [
            (OtherTakes(0.0), True),
            (Frame(0.0, MOVED), Skip(SkipReason.BUSY, report=True)),
            (OtherReleases(0.4), True),
            (Wake(0.4), MOVING),
        ],
    ),
    "an offered slot is taken for a heartbeat": (
        2,
        [
            (Frame(0.0), MOVING),
            (Answer(0.1), waits(0.5)),
            (OtherTakes(1.9), True),
            (Frame(2.0), Skip(SkipReason.BUSY, report=True)),
            (OtherReleases(2.1), True),
            (Wake(2.1), Start(moving=False)),
        ],
    ),
    "an offered slot is declined by a camera that stopped": (
        0,
        [
            (OtherTakes(0.0), True),
            (Frame(0.0, MOVED), Skip(SkipReason.BUSY, report=True)),
            (Stop(0.1), None),
            (OtherReleases(0.2), False),
            (Frame(0.3, ROOM), Skip(SkipReason.STOPPED)),
        ],
    ),
}


# Spare slots: a two-slot limiter shared with another camera, this camera's spare-slot setting on or off.
SPARE_CASES: dict[str, tuple[bool, list[tuple[Step, object]]]] = {
    "a move during a check starts a second one an interval after the first, never a third": (
        True,
        [
            (Frame(0.0), MOVING),
            (Frame(0.2, MOVED), waits(0.5)),
            (Frame(0.5, MOVED), MOVING),
            (InFlight(0.5), (2, False)),
            (Frame(1.0, ROOM), IN_FLIGHT),
            (Frame(1.5, MOVED), IN_FLIGHT),
        ],
    ),
    "no second check while nothing moved since the running check began": (
        True,
        [
            (Frame(0.0, MOVED), MOVING),
            (Frame(0.5, MOVED), IN_FLIGHT),
            (Frame(1.0, MOVED), IN_FLIGHT),
            (InFlight(1.0), (1, False)),
        ],
    ),
    "a move before the check began is its own, not a reason for a second": (
        True,
        [
            (Frame(0.0), MOVING),
            (Answer(0.1), waits(0.5)),
            (Frame(0.3, MOVED), waits(0.5)),
            (Frame(0.5, MOVED), MOVING),
            (Frame(1.0, MOVED), IN_FLIGHT),
        ],
    ),
    "no second check when the setting is off": (
        False,
        [
            (Frame(0.0), MOVING),
            (Frame(0.5, MOVED), IN_FLIGHT),
            (Frame(1.0, ROOM), IN_FLIGHT),
            (InFlight(1.0), (1, False)),
        ],
    ),
    "no second check without an idle slot, and no queueing for one": (
        True,
        [
            (OtherTakes(0.0), True),
            (Frame(0.0), MOVING),
            (Frame(0.5, MOVED), IN_FLIGHT),
            # Not refused, so not waiting: the other camera's next turn is not taken from it.
            (InFlight(0.5), (2, False)),
            (OtherReleases(0.6), False),
        ],
    ),
    "no second check on a slot another camera waits for": (
        True,
        [
            (Frame(0.0), MOVING),
            (OtherTakes(0.1), True),
            # The other camera is refused a second slot: it waits for the next one freed.
            (OtherTakes(0.2), False),
            (OtherReleases(0.3), False),
            (InFlight(0.5), (1, True)),
            (Frame(0.5, MOVED), IN_FLIGHT),
            (Frame(1.0, MOVED), IN_FLIGHT),
        ],
    ),
    "the newer answer first: the older one is stale and undoes nothing": (
        True,
        [
            (Frame(0.0), MOVING),
            (Frame(0.5, MOVED), MOVING),
            (AnswerOf(0.9, 2), (True, IN_FLIGHT)),
            (Frame(1.0, MOVED), IN_FLIGHT),
            # Applied, the older answer would take the room back as the gate's reference, and ask again.
            (AnswerOf(1.2, 1), (False, STILL)),
            (InFlight(1.2), (0, False)),
        ],
    ),
    "after a newer answer, a move starts a check beside the older one still in flight": (
        True,
        [
            (Frame(0.0), MOVING),
            (Frame(0.5, MOVED), MOVING),
            (AnswerOf(0.7, 2), (True, IN_FLIGHT)),
            (Frame(1.0, ROOM), MOVING),
            (InFlight(1.0), (2, False)),
            (AnswerOf(1.2, 1), (False, IN_FLIGHT)),
        ],
    ),
    "the older answer first, then the newer: both apply in order": (
        True,
        [
            (Frame(0.0), MOVING),
            (Frame(0.5, MOVED), MOVING),
            (AnswerOf(0.7, 1), (True, IN_FLIGHT)),
            (AnswerOf(0.9, 2), (True, waits(1.0))),
            (Frame(1.0, MOVED), STILL),
            (Frame(1.5, ROOM), MOVING),
        ],
    ),
    "a move during the second check asks again when it answers": (
        True,
        [
            (Frame(0.0), MOVING),
            (Frame(0.5, MOVED), MOVING),
            (Frame(0.6, ROOM), IN_FLIGHT),
            # One slot is free again, but the interval since the second check's start has not passed.
            (AnswerOf(0.8, 1), (True, waits(1.0))),
            (AnswerOf(1.1, 2), (True, MOVING)),
        ],
    ),
}


@pytest.mark.parametrize(("spare_slots", "steps"), list(SPARE_CASES.values()), ids=list(SPARE_CASES))
def test_spare_slot_decisions(spare_slots: bool, steps: list[tuple[Step, object]]) -> None:
    rig = Rig(slots=2, spare_slots=spare_slots)
    for number, (step, expected) in enumerate(steps):
        rig.now = step.at
        assert step.run(rig) == expected, f"step {number}: {step}"


@pytest.mark.parametrize(("heartbeat_s", "steps"), list(CASES.values()), ids=list(CASES))
def test_decisions(heartbeat_s: float, steps: list[tuple[Step, object]]) -> None:
    rig = Rig(heartbeat_s)
    for number, (step, expected) in enumerate(steps):
        rig.now = step.at
        assert step.run(rig) == expected, f"step {number}: {step}"


def test_an_offer_is_declined_when_nothing_moved_since_the_last_answer() -> None:
    rig = Rig()
    assert Frame(0.0).run(rig) == MOVING
    # Another camera asks while this one's check runs, and is refused: the slot is this camera's.
    assert not rig.limiter.try_acquire(OTHER, 0.1)
    rig.now = 0.6
    assert Answer(0.6).run(rig) == STILL
    # The other camera's check starts and ends; this one is offered the slot but has nothing to ask about.
    assert rig.limiter.try_acquire(OTHER, 0.7)
    assert not rig.limiter.try_acquire("camera", 0.7)
    rig.now = 0.8
    assert OtherReleases(0.8).run(rig) is False
    assert rig.offers == []


def test_the_first_check_waits_for_the_camera_s_phase() -> None:
    rig = Rig()
    rig.schedule.begin(10.0, phase=0.5)
    rig.schedule.observe(MOVED, 10.0)
    assert rig.schedule.decide(10.0) == Wait(10.25, WaitReason.INTERVAL)
    assert rig.schedule.decide(10.25) == MOVING


def test_a_released_slot_is_given_back_once() -> None:
    rig = Rig()
    assert Frame(0.0).run(rig) == MOVING
    assert rig.limiter.in_flight == 1
    rig.schedule.release()
    # A cancelled check's task and its stop may both release: the limiter sees one release.
    rig.schedule.release()
    assert rig.limiter.in_flight == 0
    assert not rig.schedule.checking


@pytest.mark.parametrize("interval", [0.0, -1.0, float("inf"), float("nan")])
def test_an_interval_must_be_positive(interval: float) -> None:
    with pytest.raises(ValueError, match="check_interval_s"):
        CameraSchedule(
            "camera", check_interval_s=interval, heartbeat_s=0, gate=ChangeGate(), limiter=FairLimiter(1)
        )
