"""``Database.transact``: the intake's transactions, in a thread of their own, on both backends
(committed when the work returns, rolled back when it raises, exceptions carried back)."""

from __future__ import annotations

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

