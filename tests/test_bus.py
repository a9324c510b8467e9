"""The in-process bus: bounded queues per subscriber, overflow marks the subscriber."""

from __future__ import annotations

import asyncio

import pytest

from journal.bus import LocalBus as Bus
from journal.bus import NoteQueue


async def test_a_queue_is_fifo_and_bounded() -> None:
    queue = NoteQueue(2)
    assert queue.empty() and queue.qsize() == 0
    queue.put_nowait({"n": 1})
    queue.put_nowait({"n": 2})
    with pytest.raises(asyncio.QueueFull):
        queue.put_nowait({"n": 3})
    assert [queue.get_nowait()["n"], (await queue.get())["n"]] == [1, 2]
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()


async def test_get_waits_for_the_next_item_and_survives_cancellation() -> None:
    queue = NoteQueue(10)
    waiting = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    reader = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait({"n": 7})
    assert (await asyncio.wait_for(reader, 1))["n"] == 7


async def test_a_subscriber_that_falls_behind_is_marked_not_blocking_others() -> None:
    bus = Bus(queue_size=2)
    slow, fast = bus.subscribe(), bus.subscribe()
    for n in range(3):
        bus.publish({"type": "x", "n": n})
        fast.queue.get_nowait()
    assert slow.overflowed and not fast.overflowed
    # The overflow marker replaces the oldest item so that a waiting reader wakes up.
    items = [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]
    assert items[-1] == {"type": "_overflow"}
    bus.unsubscribe(slow)
    assert bus.subscribers == 1
