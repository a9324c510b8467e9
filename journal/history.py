"""A caller's earlier requests, as the current-call card shows them (DESIGN §5 ``history``).

One definition for every place that shows it: the live screen pop (built by intake in its
batch, journal/intake.py) and a page (re)opened mid-call or the missed-calls list
(``caller_histories``) all read with ``histories_select`` and choose and shape with ``pick``,
so the card says the same thing whichever way it was filled.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Executable,
    Integer,
    String,
    bindparam,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from journal.models import Request

HISTORY_LIMIT = 10
# Callers per statement: statements are padded to a power of two up to this (few shapes to
# build and keep; a UNION of hundreds costs SQLAlchemy most of a second to compile).
HISTORY_CHUNK = 32
# Pages ask in UNIONs of this many: SQLAlchemy compiles a UNION of n subqueries in time growing
# fast with n (~0.7 s for 100 on the shared machine, once per n); 8 keeps that first compile
# small and the round trips few (100 histories, warm: ~20 ms; SQLite, 100,000 requests).
PAGE_CHUNK = 8


def histories_select(wanted: Sequence[tuple[str, int, int | None]]
                     ) -> tuple[Executable, dict[str, Any]]:
    """For each (caller, limit, before) of ``wanted`` (at most HISTORY_CHUNK): that caller's
    newest ``limit`` requests numbered below ``before`` (all when None), each walking the
    (caller_normalized, created_at) index, in one statement (a UNION ALL) and its parameters.
    Rows: (index in ``wanted``, number, created_at, status, topic)."""
    bounded = any(before is not None for _caller, _limit, before in wanted)
    size = 1 << max(0, len(wanted) - 1).bit_length()
    padded = [*wanted, *[("", 0, None)] * (size - len(wanted))]  # LIMIT 0: no rows
    params: dict[str, Any] = {}
    for index, (caller, limit, before) in enumerate(padded):
        params[f"c{index}"] = caller
        params[f"l{index}"] = limit
        if bounded:
            params[f"b{index}"] = _NO_BOUND if before is None else before
    return _template(size, bounded), params


# Building a UNION of many subqueries costs SQLAlchemy ~1 ms a part (and compiling it more):
# the statement is built once per size, its values are parameters.
_NO_BOUND = 2**62


@lru_cache(maxsize=128)
def _template(size: int, bounded: bool) -> Executable:
    parts: list[Any] = []
    for index in range(size):
        key = literal_column(str(index), Integer).label("k")  # inlined: no bind
        part = (select(key, Request.number, Request.created_at, Request.status, Request.topic)
                .where(Request.caller_normalized == bindparam(f"c{index}", type_=String)))
        if bounded:
            part = part.where(Request.number < bindparam(f"b{index}", type_=BigInteger))
        parts.append(part.order_by(Request.created_at.desc())
                     .limit(bindparam(f"l{index}", type_=Integer)))
    if size == 1:
        return parts[0]  # type: ignore[no-any-return]
    # Each part in a subquery: SQLite takes no ORDER BY / LIMIT in a compound SELECT's member.
    return select(union_all(*[select(part.subquery()) for part in parts]).subquery())


def grouped(rows: Iterable[Sequence[Any]]) -> dict[int, list[Sequence[Any]]]:
    """Rows of ``histories_select`` by their index, newest first."""
    found: dict[int, list[Sequence[Any]]] = defaultdict(list)
    for row in rows:
        found[int(row[0])].append(row)
    for items in found.values():
        items.sort(key=lambda row: row[2], reverse=True)
    return found


def pick(rows: Iterable[Sequence[Any]], skip: Callable[[int], bool] = lambda _n: False,
         statuses: Mapping[int, str] | None = None) -> list[dict[str, Any]]:
    """The history from a caller's rows (newest first): at most HISTORY_LIMIT requests not
    skipped, highest number first; ``statuses`` overrides what the rows say (intake: the
    status at ring time within a batch)."""
    chosen = []
    for row in rows:
        if skip(row[1]):
            continue
        chosen.append(row)
        if len(chosen) == HISTORY_LIMIT:
            break
    chosen.sort(key=lambda row: row[1], reverse=True)
    statuses = statuses or {}
    return [{"number": row[1], "created_at": _iso(row[2]),
             "status": statuses.get(row[1], row[3]), "topic": row[4]} for row in chosen]


async def caller_histories(session: AsyncSession, wanted: Iterable[tuple[str, int]]
                           ) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """The history of each (caller_normalized, request number): that caller's requests before
    it, as the screen pop showed them when its phone rang. A withheld number has none."""
    keys = list(dict.fromkeys(wanted))
    asked = [key for key in keys if key[0]]
    result: dict[tuple[str, int], list[dict[str, Any]]] = {key: [] for key in keys}
    for start in range(0, len(asked), PAGE_CHUNK):
        chunk = asked[start:start + PAGE_CHUNK]
        statement, params = histories_select(
            [(caller, HISTORY_LIMIT, number) for caller, number in chunk])
        rows = grouped(await session.execute(statement, params))
        for index, key in enumerate(chunk):
            result[key] = pick(rows.get(index, ()))
    return result


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
