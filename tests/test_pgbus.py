"""The PostgreSQL bus (HOTLINE_BUS=postgresql): notes and control messages between instances."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from config import ConfigError, load_settings
from journal.db import Database
from journal.models import Notification as StoredNotification
from journal.models import Request
from journal.notes import Note, RequestScope
from journal.pgbus import PostgresBus
from tests.helpers import wait_for


@pytest.fixture
async def pg(db_url: tuple[str, str | None], db_backend: str) -> Any:
    if db_backend != "postgresql":
        pytest.skip("PostgreSQL only")
    db = Database(db_url[0], schema=db_url[1])
    await db.upgrade_schema()
    buses: list[PostgresBus] = []

    def make() -> PostgresBus:
        bus = PostgresBus(db_url[0], schema=db_url[1])
        buses.append(bus)
        return bus

    yield db, make
    for bus in buses:
        await bus.stop()
    await db.dispose()


async def store(db: Database, number: int, note_type: str = "request.created",
                **data: Any) -> Note:
    """Commit a notification as a writer does; the note as it would be published."""
    at = datetime.now(UTC)
    data = data or {"level": "1"}
    async with db.sessions.begin() as session:
        row = StoredNotification(at=at, type=note_type, request_number=number,
                                 payload={"at": at.isoformat(), "type": note_type,
                                          "request_number": number, **data})
        session.add(row)
        await session.flush()
        note_id = row.id
    return Note(note_type, at.isoformat(), number, data, id=note_id)


async def started(*buses: PostgresBus) -> tuple[PostgresBus, ...]:
    for bus in buses:
        await bus.start()
    return buses


async def published_on(a: PostgresBus, note: Note, sub_b: Any) -> Note:
    """Publish ``note`` on A as its writer would (after its commit); what B's subscriber
    gets."""
    a.publish(note)
    await wait_for(lambda: not sub_b.queue.empty())
    got: Note = sub_b.queue.get_nowait()
    return got


def drain(subscription: Any) -> list[dict[str, Any]]:
    out = []
    while not subscription.queue.empty():
        out.append(subscription.queue.get_nowait().frame())
    return out


async def test_a_note_reaches_every_instance_once(pg: Any) -> None:
    db, make = pg
    a, b = await started(make(), make())
    sub_a, sub_b = a.subscribe(), b.subscribe()
    note = await store(db, 1)
    a.publish(note)  # the writer's instance publishes after its commit
    await wait_for(lambda: not sub_b.queue.empty())
    await asyncio.sleep(0.2)  # A's own NOTIFY arrives too and is not handed out twice
    assert [n["id"] for n in drain(sub_a)] == [note.id]
    (got,) = drain(sub_b)
    assert got == note.frame() and got["level"] == "1"
    assert b.remote_notes == 1


async def test_the_note_rides_its_notify_with_its_request_scope(pg: Any) -> None:
    """Another instance gets the row and the request's routing scope in the NOTIFY itself: its
    hub judges the pop without reading the outbox or the request."""
    db, make = pg
    a, b = await started(make(), make())
    sub_b = b.subscribe()
    async with db.sessions.begin() as session:
        session.add(Request(number=7, created_at=datetime.now(UTC), level="smo", smo="SMO2",
                            corruption=True))
    note = await store(db, 7, "call.ringing", extension="101", history=[])
    got = await published_on(a, note, sub_b)
    assert got.frame() == note.frame()
    assert got.scope == RequestScope("smo", "SMO2", True)
    assert b.remote_notes == 1


async def test_a_note_too_large_for_a_notify_is_read_from_the_outbox(pg: Any) -> None:
    db, make = pg
    a, b = await started(make(), make())
    sub_b = b.subscribe()
    big = [{"number": n, "topic": "т" * 40} for n in range(200)]  # well over 8,000 bytes
    note = await store(db, 8, "call.ringing", extension="101", history=big)
    got = await published_on(a, note, sub_b)
    assert got.frame() == note.frame() and got.scope is None


async def test_a_dropped_listener_loses_nothing(pg: Any) -> None:
    db, make = pg
    a, b = await started(make(), make())
    sub_b = b.subscribe()
    connects = b.connects
    b.drop_connection()
    # Committed while B is not listening: their NOTIFYs never reach it.
    notes = [await store(db, n) for n in (1, 2, 3)]
    for note in notes:
        a.publish(note)
    await wait_for(lambda: b.connects > connects and sub_b.queue.qsize() >= 3)
    await asyncio.sleep(0.2)
    assert [n["id"] for n in drain(sub_b)] == [n.id for n in notes]
    assert b.caught_up + b.remote_notes >= 3


async def test_control_messages_reach_every_instance_once(pg: Any) -> None:
    _db, make = pg
    a, b = make(), make()
    got_a: list[dict[str, Any]] = []
    got_b: list[dict[str, Any]] = []
    a.on_control(got_a.append)
    b.on_control(got_b.append)
    await a.start()
    await b.start()
    a.control({"kind": "session.ended", "digest": "abc"})
    await wait_for(lambda: got_b)
    await asyncio.sleep(0.2)
    assert got_a == got_b == [{"kind": "session.ended", "digest": "abc"}]


def test_the_postgresql_bus_needs_a_postgresql_database() -> None:
    with pytest.raises(ConfigError, match="HOTLINE_BUS: postgresql needs a PostgreSQL"):
        load_settings(bus="postgresql", database_url="sqlite+aiosqlite:///x.sqlite3")
    assert load_settings().bus == "local"
