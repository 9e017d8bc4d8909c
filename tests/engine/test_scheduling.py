"""The fair limiter: skip instead of queueing, and take turns between cameras."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
import contextlib
import time

from hypothesis import given, strategies as st
import pytest

from custom_components.miloco.engine.scheduling import FairLimiter


def test_refuses_when_full_and_never_queues() -> None:
    limiter = FairLimiter(1)
    assert limiter.try_acquire("a", 0)
    assert not limiter.try_acquire("b", 0)
    assert not limiter.try_acquire("b", 0.5)
    assert limiter.in_flight == 1
    limiter.release("a")
    assert limiter.in_flight == 0


def test_a_served_camera_lets_a_waiting_one_go_first() -> None:
    limiter = FairLimiter(1)
    assert limiter.try_acquire("a", 0)
    assert not limiter.try_acquire("b", 1)
    limiter.release("a")
    # "a" asks again at once, but "b" is waiting for its turn.
    assert not limiter.try_acquire("a", 2)
    assert limiter.try_acquire("b", 2.1)
    limiter.release("b")
    assert limiter.try_acquire("a", 3)


def accepting(offers: list[str], name: str) -> Callable[[], bool]:
    """Return a waker that notes each offer under `name` and takes it."""

    def waker() -> bool:
        offers.append(name)
        return True

    return waker


def test_a_freed_slot_is_offered_to_the_camera_whose_turn_is_next() -> None:
    limiter = FairLimiter(1)
    offers: list[str] = []
    for key in ("b", "c"):
        limiter.set_waker(key, accepting(offers, key))
    assert limiter.try_acquire("a", 0)
    assert not limiter.try_acquire("c", 1)
    assert not limiter.try_acquire("b", 2)
    limiter.release("a")
    # One slot freed: one offer, to the camera refused first.
    assert offers == ["c"]
    assert limiter.try_acquire("c", 3)
    limiter.release("c")
    assert offers == ["c", "b"]


def test_a_declined_offer_goes_to_the_next_waiting_camera() -> None:
    limiter = FairLimiter(1)
    offers: list[str] = []

    def declines() -> bool:
        offers.append("b")
        return False

    limiter.set_waker("b", declines)
    limiter.set_waker("c", accepting(offers, "c"))
    assert limiter.try_acquire("a", 0)
    assert not limiter.try_acquire("b", 1)
    assert not limiter.try_acquire("c", 2)
    limiter.release("a")
    assert offers == ["b", "c"]


def test_no_offer_while_every_slot_is_still_taken() -> None:
    limiter = FairLimiter(2)
    offers: list[str] = []
    limiter.set_waker("c", accepting(offers, "c"))
    assert limiter.try_acquire("a", 0)
    assert limiter.try_acquire("b", 0)
    assert not limiter.try_acquire("c", 1)
    # Lowered to one: the first release leaves the limiter still full.
    limiter.limit = 1
    limiter.release("a")
    assert offers == []
    limiter.release("b")
    assert offers == ["c"]


def test_a_removed_waker_is_not_asked() -> None:
    limiter = FairLimiter(1)
    offers: list[str] = []
    remove_first = limiter.set_waker("b", accepting(offers, "first"))
    remove_first()
    assert limiter.try_acquire("a", 0)
    assert not limiter.try_acquire("b", 1)
    limiter.release("a")
    assert offers == []


def test_an_old_remover_keeps_the_waker_that_replaced_it() -> None:
    limiter = FairLimiter(1)
    offers: list[str] = []
    # A camera restarted under the same key: the old watcher's remover must not drop the new waker.
    remove_old = limiter.set_waker("b", accepting(offers, "old"))
    limiter.set_waker("b", accepting(offers, "new"))
    remove_old()
    assert limiter.try_acquire("a", 0)
    assert not limiter.try_acquire("b", 1)
    limiter.release("a")
    assert offers == ["new"]


def test_a_camera_alone_is_never_held_back() -> None:
    limiter = FairLimiter(1)
    for second in range(10):
        assert limiter.try_acquire("a", second)
        limiter.release("a")


def test_a_served_camera_that_went_quiet_blocks_no_one() -> None:
    limiter = FairLimiter(2)
    assert limiter.try_acquire("quiet", 0)
    limiter.release("quiet")
    # "busy" was served in this round too; "quiet" is not asking, so it is not waiting for a turn.
    for second in range(1, 6):
        assert limiter.try_acquire("busy", second)
        limiter.release("busy")


def test_a_caller_that_stopped_asking_blocks_no_one() -> None:
    limiter = FairLimiter(1, contender_ttl_s=5)
    assert limiter.try_acquire("a", 0)
    assert not limiter.try_acquire("gone", 1)
    limiter.release("a")
    assert not limiter.try_acquire("a", 2)
    # "gone" never came back: after the TTL it no longer counts as waiting.
    assert limiter.try_acquire("a", 7)


def test_forget_drops_a_waiting_caller() -> None:
    limiter = FairLimiter(1)
    assert limiter.try_acquire("a", 0)
    assert not limiter.try_acquire("removed", 0)
    limiter.release("a")
    limiter.forget("removed")
    assert limiter.try_acquire("a", 1)


def test_release_without_acquire_is_a_bug() -> None:
    limiter = FairLimiter(2)
    with pytest.raises(RuntimeError):
        limiter.release("a")


@pytest.mark.parametrize(("limit", "ttl"), [(0, 1.0), (1, 0.0), (1, float("nan"))])
def test_bad_settings(limit: int, ttl: float) -> None:
    with pytest.raises(ValueError):
        FairLimiter(limit, ttl)


@given(
    limit=st.integers(min_value=1, max_value=3),
    cameras=st.integers(min_value=2, max_value=6),
    duration=st.integers(min_value=1, max_value=4),
)
def test_cameras_asking_in_lockstep_share_the_slots(limit: int, cameras: int, duration: int) -> None:
    """Every camera asks at every tick in the same order; requests last `duration` ticks."""
    limiter = FairLimiter(limit, contender_ttl_s=duration + 1)
    served: Counter[str] = Counter()
    running: list[tuple[int, str]] = []
    for tick in range(300):
        for job in [job for job in running if job[0] <= tick]:
            running.remove(job)
            limiter.release(job[1])
        busy = {name for _, name in running}
        for camera in (f"cam{i}" for i in range(cameras)):
            if camera not in busy and limiter.try_acquire(camera, tick):
                served[camera] += 1
                running.append((tick + duration, camera))
        assert limiter.in_flight <= limit
    counts = [served[f"cam{i}"] for i in range(cameras)]
    assert min(counts) > 0
    assert max(counts) - min(counts) <= 2
    # Fairness costs some capacity: a slot a served camera leaves to a waiting one idles until the
    # waiting one asks (here, up to a tick; in the integration, until its next frame). The worst case,
    # one-tick requests in lockstep, keeps two thirds of the slots busy.
    assert sum(counts) * duration >= 0.66 * 300 * min(limit, cameras)


# --- patient callers (service actions): they wait in line, after live cameras ---------------------------


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        """Start at zero."""
        self.now = 0.0

    def __call__(self) -> float:
        """Return the current time."""
        return self.now


def test_a_patient_caller_takes_a_free_slot_and_counts_against_the_limit() -> None:
    limiter = FairLimiter(1)
    assert limiter.try_acquire_patient("service", 0)
    assert limiter.in_flight == 1
    assert not limiter.try_acquire("camera", 0)
    limiter.release("service")
    assert limiter.try_acquire("camera", 1)


def test_a_person_goes_ahead_of_a_waiting_camera_once_then_the_camera_has_its_turn() -> None:
    limiter = FairLimiter(1, contender_ttl_s=5)
    assert limiter.try_acquire_patient("service", 0)
    assert not limiter.try_acquire("camera", 0.5)
    limiter.release("service")
    # The slot is free and the camera waits, but a person's question goes first (issue 18, case 8)...
    assert limiter.try_acquire_patient("service", 0.6)
    limiter.release("service")
    # ...once: the next free slot is the waiting camera's.
    assert not limiter.try_acquire_patient("service", 0.7)
    assert limiter.try_acquire("camera", 0.8)
    limiter.release("camera")
    # The camera was served: a person may go first again.
    assert limiter.try_acquire_patient("service", 0.9)


def test_a_camera_owed_a_turn_that_stopped_asking_holds_no_patient_caller_back() -> None:
    limiter = FairLimiter(1, contender_ttl_s=5)
    assert limiter.try_acquire("camera", 0)
    assert not limiter.try_acquire("other", 1)
    limiter.release("camera")
    assert limiter.try_acquire_patient("service", 1.1)
    limiter.release("service")
    # "other" is owed the slot while it may still ask; once its turn lapses, nobody is owed anything.
    assert not limiter.try_acquire_patient("service", 5.9)
    assert limiter.try_acquire_patient("service", 6.1)


def test_patient_callers_leave_a_slot_to_live_checks() -> None:
    limiter = FairLimiter(3)
    assert limiter.patient_share == 2
    assert limiter.try_acquire_patient("service", 0)
    assert limiter.try_acquire_patient("service", 0)
    assert not limiter.try_acquire_patient("service", 0)
    assert limiter.try_acquire("camera", 0)
    assert limiter.in_flight == 3


async def test_a_waiting_caller_is_woken_by_a_release() -> None:
    clock = FakeClock()
    limiter = FairLimiter(1, clock=clock)
    assert limiter.try_acquire("camera", clock.now)
    waiter = asyncio.create_task(limiter.async_acquire_patient("service", 30))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    limiter.release("camera")
    assert await asyncio.wait_for(waiter, 1) is True
    assert limiter.in_flight == 1


async def test_waiting_callers_enter_in_arrival_order() -> None:
    clock = FakeClock()
    limiter = FairLimiter(1, clock=clock)
    assert limiter.try_acquire("camera", clock.now)
    first = asyncio.create_task(limiter.async_acquire_patient("first", 30))
    await asyncio.sleep(0)
    second = asyncio.create_task(limiter.async_acquire_patient("second", 30))
    await asyncio.sleep(0.01)
    limiter.release("camera")
    assert await asyncio.wait_for(first, 1) is True
    await asyncio.sleep(0.01)
    assert not second.done()
    limiter.release("first")
    assert await asyncio.wait_for(second, 1) is True


async def test_a_waiting_caller_gives_up_after_its_timeout() -> None:
    limiter = FairLimiter(1)
    assert limiter.try_acquire("camera", 0)
    started = time.monotonic()
    assert await limiter.async_acquire_patient("service", 0.05) is False
    assert 0.04 < time.monotonic() - started < 1
    # Nothing was taken and nobody is left in line: the next caller enters as soon as the slot frees.
    limiter.release("camera")
    assert limiter.in_flight == 0
    assert limiter.try_acquire_patient("service", 1)


async def test_a_cancelled_waiter_leaves_the_line() -> None:
    limiter = FairLimiter(1)
    assert limiter.try_acquire("camera", 0)
    waiter = asyncio.create_task(limiter.async_acquire_patient("gone", 30))
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    limiter.release("camera")
    assert limiter.try_acquire_patient("next", 1)


async def test_a_waiting_caller_enters_once_a_camera_owed_a_turn_goes_stale() -> None:
    clock = FakeClock()
    limiter = FairLimiter(1, contender_ttl_s=0.2, clock=clock)
    assert limiter.try_acquire("a", 0)
    assert not limiter.try_acquire("b", 0)
    limiter.release("a")
    # A person went ahead of "b": the next free slot is b's.
    assert limiter.try_acquire_patient("first", 0)
    limiter.release("first")
    waiter = asyncio.create_task(limiter.async_acquire_patient("service", 30))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    # "b" never asks again; once its turn has lapsed on the clock, the waiter looks again and enters.
    clock.now = 1.0
    assert await asyncio.wait_for(waiter, 1) is True


async def test_a_freed_slot_goes_to_the_waiting_person_not_to_the_waiting_camera() -> None:
    clock = FakeClock()
    limiter = FairLimiter(1, clock=clock)
    offers: list[str] = []
    limiter.set_waker("b", lambda: offers.append("b") is None)
    assert limiter.try_acquire("a", 0)
    assert not limiter.try_acquire("b", 0)
    waiter = asyncio.create_task(limiter.async_acquire_patient("person", 30))
    await asyncio.sleep(0.01)
    limiter.release("a")
    # Handed over in the release itself: no race with the camera's waker, which is not even asked.
    assert limiter.in_flight == 1
    assert offers == []
    assert not limiter.try_acquire("b", 0.1)
    assert await asyncio.wait_for(waiter, 1) is True
    # The person's question ends: the camera it went ahead of is offered the slot at once.
    limiter.release("person")
    assert offers == ["b"]
    assert limiter.try_acquire("b", 0.2)


async def test_a_second_person_waits_for_the_camera_the_first_went_ahead_of() -> None:
    clock = FakeClock()
    limiter = FairLimiter(1, clock=clock)
    assert limiter.try_acquire("a", 0)
    assert not limiter.try_acquire("b", 0)
    first = asyncio.create_task(limiter.async_acquire_patient("person", 30))
    second = asyncio.create_task(limiter.async_acquire_patient("person", 30))
    await asyncio.sleep(0.01)
    limiter.release("a")
    assert await asyncio.wait_for(first, 1) is True
    limiter.release("person")
    await asyncio.sleep(0.01)
    assert not second.done()
    assert limiter.try_acquire("b", 0.1)
    limiter.release("b")
    # The camera had its turn: the next free slot is the person's again.
    assert await asyncio.wait_for(second, 1) is True


async def test_a_person_admitted_as_it_is_cancelled_gives_the_slot_back() -> None:
    limiter = FairLimiter(1)
    assert limiter.try_acquire("a", 0)
    waiter = asyncio.create_task(limiter.async_acquire_patient("person", 30))
    await asyncio.sleep(0.01)
    limiter.release("a")
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limiter.in_flight == 0


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), -1.0])
async def test_a_wait_must_be_finite(seconds: float) -> None:
    with pytest.raises(ValueError):
        await FairLimiter(1).async_acquire_patient("service", seconds)


@given(
    limit=st.integers(min_value=1, max_value=3),
    duration=st.integers(min_value=1, max_value=4),
    services=st.integers(min_value=1, max_value=8),
)
def test_a_live_camera_keeps_its_turns_while_services_hammer(
    limit: int, duration: int, services: int
) -> None:
    """A camera's check is due every 2 × `duration` ticks and retries every tick until it gets a slot;
    `services` patient callers want a slot all the time. Requests last `duration` ticks."""
    limiter = FairLimiter(limit, contender_ttl_s=duration + 1)
    served: Counter[str] = Counter()
    running: list[tuple[int, str]] = []
    camera_due = 0
    for tick in range(300):
        for job in [job for job in running if job[0] <= tick]:
            running.remove(job)
            limiter.release(job[1])
        if tick >= camera_due and limiter.try_acquire("camera", tick):
            served["camera"] += 1
            running.append((tick + duration, "camera"))
            camera_due = tick + 2 * duration
        for index in range(services):
            name = f"service{index}"
            if name not in {n for _, n in running} and limiter.try_acquire_patient(name, tick):
                served["service"] += 1
                running.append((tick + duration, name))
        assert limiter.in_flight <= limit
    # With one slot a due check waits at most for the one service request ahead of it; with more
    # slots, the services never hold the last one, so the camera is never held back at all.
    cycle = 3 * duration if limit == 1 else 2 * duration
    assert served["camera"] >= 300 // cycle - 1
    assert served["service"] > 0


def test_a_lowered_limit_lets_the_checks_in_flight_finish_and_admits_none_meanwhile() -> None:
    limiter = FairLimiter(2)
    assert limiter.try_acquire("a", 0.0)
    assert limiter.try_acquire("b", 0.0)
    # The backend moved to a server that takes one request at once.
    limiter.limit = 1
    limiter.release("a")
    assert not limiter.try_acquire("c", 0.1)
    limiter.release("b")
    assert limiter.try_acquire("c", 0.2)
    assert not limiter.try_acquire("a", 0.2)
    # Back on the bigger server, two at once again.
    limiter.limit = 2
    assert limiter.try_acquire("a", 0.3)
    with pytest.raises(ValueError, match="at least 1"):
        limiter.limit = 0


async def test_has_waiting_sees_other_cameras_refused_lately_and_people_in_line() -> None:
    limiter = FairLimiter(2, contender_ttl_s=5.0)
    assert limiter.try_acquire("a", 0)
    assert not limiter.has_waiting("a", 0)
    assert limiter.try_acquire("b", 0)
    # b is refused a second slot: it waits, for a (not for itself), until it stops asking for the TTL.
    assert not limiter.try_acquire("b", 1)
    assert limiter.has_waiting("a", 1)
    assert not limiter.has_waiting("b", 1)
    assert not limiter.has_waiting("a", 1 + 5.1)
    limiter.release("a")
    limiter.release("b")
    # A person's question in line (patient callers hold at most one of two slots) waits too.
    assert limiter.try_acquire_patient("person", 7)
    queued = asyncio.create_task(limiter.async_acquire_patient("second person", 10))
    await asyncio.sleep(0)
    assert limiter.has_waiting("a", 7 + 100)
    queued.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await queued
    assert not limiter.has_waiting("a", 7 + 100)
