"""Group commit of read audit records: all written, together, before the reader goes on."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event, func, select

from journal.audit import AuditWriter
from journal.models import AuditEntry
from journal.users import Principal

ADMIN = Principal(1, "admin", "admin", None, None)


class FlakyEngine:
    """The engine, whose first ``fail`` connections are refused."""

    def __init__(self, real: Any, fail: int) -> None:
        self.real = real
        self.fail = fail
        self.connects = 0

    async def connect(self) -> Any:
        self.connects += 1
        if self.connects <= self.fail:
            raise RuntimeError("database refused")
        return await self.real.connect()


async def _count(sessions: Any, number: int) -> int:
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(AuditEntry)
                                    .where(AuditEntry.request_number == number)) or 0


async def test_concurrent_readers_share_commits_and_each_waits_for_its_record(
        make_settings: Any, start_service: Any) -> None:
    harness = await start_service(make_settings(ami_host=None))
    sessions = harness.services.db.sessions
    engine = harness.services.db.engine
    commits: list[object] = []
    event.listen(engine.sync_engine, "commit", commits.append)
    writer = AuditWriter(engine)

    async def reader(number: int) -> int:
        await writer.record(ADMIN, "play_recording", number, "127.0.0.1", recording_id=number)
        return await _count(sessions, number)  # once record() returns, the row is there

    assert await asyncio.gather(*(reader(n) for n in range(1, 101))) == [1] * 100
    assert len(commits) < 20  # 100 records, a handful of transactions
    await writer.close()


async def test_a_refused_write_fails_its_readers_and_the_next_batch_works(
        make_settings: Any, start_service: Any) -> None:
    harness = await start_service(make_settings(ami_host=None))
    sessions = harness.services.db.sessions
    writer = AuditWriter(FlakyEngine(harness.services.db.engine, fail=1))  # type: ignore[arg-type]
    results = await asyncio.gather(*(writer.record(ADMIN, "play_recording", 1)
                                     for _ in range(5)), return_exceptions=True)
    # Served nothing unaudited: every reader of the refused batch gets the error.
    assert all(isinstance(r, RuntimeError) for r in results)
    await writer.record(ADMIN, "play_recording", 2)
    await writer.close()
    assert await _count(sessions, 2) == 1


async def test_a_reader_that_goes_away_still_gets_its_record(
        make_settings: Any, start_service: Any) -> None:
    harness = await start_service(make_settings(ami_host=None))
    writer = AuditWriter(harness.services.db.engine)
    pending = asyncio.ensure_future(writer.record(ADMIN, "play_recording", 3))
    await asyncio.sleep(0)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    await writer.close()
    assert await _count(harness.services.db.sessions, 3) == 1
