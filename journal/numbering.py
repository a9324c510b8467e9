"""Request numbers: the ``counters`` row, updated in the transaction that uses the numbers, so
they are gap-free (a rolled-back transaction gives its numbers back) and never reused. The
only place a request number is assigned."""

from __future__ import annotations

from sqlalchemy import BigInteger, bindparam, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from journal.db import REQUEST_COUNTER
from journal.models import Counter

_MISSING = "the request counter row is missing; run `hotline db upgrade`"


# Row-locked until the commit: a concurrent writer waits, then takes the next ones.
_ADVANCE = (update(Counter).where(Counter.name == REQUEST_COUNTER)
            .values(value=Counter.value + bindparam("count", type_=BigInteger))
            .returning(Counter.value))


def take_numbers(conn: Connection, count: int) -> int:
    """Take ``count`` consecutive numbers inside the caller's transaction; the first of them."""
    top = conn.scalar(_ADVANCE, {"count": count})
    if top is None:
        raise RuntimeError(_MISSING)
    return int(top) - count + 1


async def next_request_number(session: AsyncSession) -> int:
    """Take the next request number inside the caller's transaction."""
    value = await session.scalar(_ADVANCE, {"count": 1})
    if value is None:
        raise RuntimeError(_MISSING)
    return int(value)
