"""The in-process bus: bounded queues per subscriber, overflow marks the subscriber."""

from __future__ import annotations

import asyncio

import pytest

from journal.bus import LocalBus as Bus
from journal.bus import NoteQueue
from journal.notes import Note


def _n(n: int) -> Note:
    return Note("x", "2026-01-01T00:00:00+00:00", None, {"n": n})


async def test_a_queue_is_fifo_and_bounded() -> None:
    queue = NoteQueue(2)
    assert queue.empty() and queue.qsize() == 0
    queue.put_nowait(_n(1))
    queue.put_nowait(_n(2))
    with pytest.raises(asyncio.QueueFull):
        queue.put_nowait(_n(3))
    first = queue.get_nowait()
    second = await queue.get()
    assert second is not None
    assert [first.data["n"], second.data["n"]] == [1, 2]
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
    queue.put_nowait(_n(7))
    got = await asyncio.wait_for(reader, 1)
    assert got is not None and got.data["n"] == 7


async def test_a_wake_up_without_a_note_returns_none() -> None:
    queue = NoteQueue(10)
    reader = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.wake()
    assert await asyncio.wait_for(reader, 1) is None


async def test_a_subscriber_that_falls_behind_is_marked_not_blocking_others() -> None:
    bus = Bus(queue_size=2)
    slow, fast = bus.subscribe(), bus.subscribe()
    for n in range(3):
        bus.publish(_n(n))
        fast.queue.get_nowait()
    assert slow.overflowed and not fast.overflowed
    # What it holds stays; a reader waiting on it would be woken to notice the overflow.
    items = [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]
    assert [note.data["n"] for note in items] == [0, 1]
    bus.unsubscribe(slow)
    assert bus.subscribers == 1
