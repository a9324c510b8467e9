"""Issue 10 item 4: the hub's scope cache stays flat over a day of traffic — it keeps the
requests of the last minutes, not every request of the day up to its cap."""

from __future__ import annotations

from typing import Any

import pytest

from journal import notify
from journal.notes import Note
from journal.notes import RequestScope as Scope
from journal.notify import ScopeCache

AT = "2026-01-01T00:00:00+00:00"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(notify.time, "monotonic", fake)
    return fake


def created(number: int) -> Note:
    return Note("request.created", AT, number, {"level": "1"}, id=number)


def note(note_type: str, note_id: int, number: int, scope: Scope | None = None,
         **data: Any) -> Note:
    return Note(note_type, AT, number, data, id=note_id, scope=scope)


async def test_scope_cache_holds_the_last_minutes_of_requests_over_a_day(clock: Clock) -> None:
    cache = ScopeCache(db=None, idle_s=600.0)  # type: ignore[arg-type]  # no read needed
    sizes = []
    # A day at 10 new requests a minute: 14,400 requests, 600 s hold 100 of them.
    for number in range(1, 14_401):
        clock.now += 6.0
        await cache.judge(created(number))
        sizes.append(len(cache))
    assert max(sizes) <= 101
    assert sizes[-1] == sizes[len(sizes) // 2]


async def test_a_request_in_use_is_kept_and_judged_as_before(clock: Clock) -> None:
    cache = ScopeCache(db=None, idle_s=600.0)  # type: ignore[arg-type]
    await cache.judge(created(1))
    for number in range(2, 200):
        clock.now += 4.0
        # Request 1 keeps getting notes that carry its scope (the intake's), so it is fresh.
        await cache.judge(note("call.held", 1000 + number, 1, Scope("1", None)))
        await cache.judge(created(number))
    assert 1 in cache._entries
    assert 2 not in cache._entries  # created 790 s ago and not used since
    assert await cache.judge(note("call.ended", 5000, 1, Scope("1", None))) == \
        (Scope("1", None), Scope("1", None))
