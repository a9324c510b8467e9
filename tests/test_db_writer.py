"""``Database.transact``: the intake's transactions, in a thread of their own, on both backends
(committed when the work returns, rolled back when it raises, exceptions carried back)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from journal.db import REQUEST_COUNTER, Database
from journal.models import Counter


def _counter(conn: Connection) -> int:
    return int(conn.scalar(select(Counter.value).where(Counter.name == REQUEST_COUNTER)) or 0)


async def test_transact_commits_rolls_back_and_runs_off_the_loop(
        db_url: tuple[str, str | None]) -> None:
    db = Database(db_url[0], schema=db_url[1])
    await db.upgrade_schema()
    loop_thread = threading.get_ident()
    try:
        def bump(conn: Connection) -> tuple[int, int]:
            conn.execute(update(Counter).where(Counter.name == REQUEST_COUNTER)
                         .values(value=Counter.value + 5))
            return _counter(conn), threading.get_ident()

        value, thread = await db.transact(bump)
        assert value == 5 and thread != loop_thread

        def bump_and_fail(conn: Connection) -> Any:
            bump(conn)
            raise ValueError("refused")

        with pytest.raises(ValueError, match="refused"):
            await db.transact(bump_and_fail)
        assert await db.transact(_counter) == 5
        # Seen by the service's own engine too (another connection).
        async with db.session() as session:
            assert await session.scalar(select(Counter.value)) == 5
        # Disposed, it still works (reconnects), as the service's restart tests expect.
        await db.dispose()
        assert await db.transact(_counter) == 5
    finally:
        await db.dispose()


async def test_a_write_soon_does_not_wait_for_a_transaction_busy_in_its_thread(
        db_url: tuple[str, str | None]) -> None:
    """On PostgreSQL an early pop's note is stored beside the batch in progress, on a thread
    of its own: a batch busy between two statements (CPU, not I/O) does not hold it up. On
    SQLite (one writer) it is stored right after the batch."""
    db = Database(db_url[0], schema=db_url[1])
    await db.upgrade_schema()
    try:
        release = threading.Event()
        order: list[str] = []

        def busy_batch(conn: Connection) -> None:
            _counter(conn)
            release.wait(10)  # a long stretch of work inside the transaction
            order.append("batch")

        batch = asyncio.ensure_future(db.transact(busy_batch))
        await asyncio.sleep(0.2)
        stored = asyncio.get_running_loop().create_future()
        db.write_soon(lambda conn: order.append("soon") and None,
                      lambda error: stored.set_result(error))
        if db.engine.dialect.name == "postgresql":
            assert await asyncio.wait_for(stored, 5) is None
            assert order == ["soon"]
            release.set()
        else:
            release.set()
            assert await asyncio.wait_for(stored, 5) is None
        await batch
        assert sorted(order) == ["batch", "soon"]
    finally:
        await db.dispose()
