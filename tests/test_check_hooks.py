"""The watcher's public check hooks: told when each check starts (from the check's own task) and ends."""

from __future__ import annotations

import asyncio
from contextvars import ContextVar

from homeassistant.core import HomeAssistant

from .model_server import FakeModelServer, Reply
from .perception_helpers import answer, wait_for, watch
from .scenes import SceneCamera, waving_hand

# Set by the start hook: whatever the check's task does afterwards sees it (the benchmarks' meter relies on it).
CURRENT: ContextVar[int | None] = ContextVar("test_current_check", default=None)


async def test_hooks_see_each_check_from_its_own_task(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model_server.default_reply = Reply(content=answer().content, delay_s=0.3)
    entry = await watch(hass, model_server, SceneCamera("Living room", waving_hand()))
    (watcher,) = entry.runtime_data.watchers.values()
    started: list[float] = []
    ended: list[tuple[float, float]] = []
    seen_at_end: list[int | None] = []
    tasks: list[str] = []

    def on_start(at: float) -> None:
        started.append(at)
        CURRENT.set(len(started))
        task = asyncio.current_task()
        tasks.append(task.get_name() if task is not None else "")

    def on_end(began: float, finished: float) -> None:
        if began not in started:
            # A check that started before the hooks were added.
            return
        ended.append((began, finished))
        # The end hook runs in the same task as the start hook: the context it set is still there.
        seen_at_end.append(CURRENT.get())

    watcher.check_hooks.started.add(on_start)
    watcher.check_hooks.ended.add(on_end)
    await wait_for(lambda: len(ended) >= 3, within=20)
    assert watcher.stats.checks >= 3
    # Each check is reported once it starts and once it ends, with the time the model took between.
    assert [began for began, _ in ended] == started[: len(ended)]
    assert all(finished - began >= 0.3 for began, finished in ended)
    assert seen_at_end == list(range(1, len(ended) + 1))
    assert all(name == "miloco check camera.living_room" for name in tasks)
    # What a start hook sets stays with its check: nothing leaks into other tasks' contexts.
    assert CURRENT.get() is None
