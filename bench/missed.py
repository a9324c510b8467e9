"""Benchmark: the missed-calls list and the mid-call card's caller history on a journal of
1,000,000 requests (a year; 10 % abandoned, about five requests per caller).

    .venv/bin/python -m bench.missed                  # PostgreSQL, N = 1,000,000
    .venv/bin/python -m bench.missed --n 100000 --backend sqlite

Uses bench.reports' generator and loaders. Prints the time of ``GET /api/v1/missed``'s query
work as the administrator at the end of the generated year (last 7 and 31 days; open, all,
overdue; the first line compiles the statements, the second is warm), and of the caller
histories of 100 calls in progress (``/api/v1/calls/active``), warm.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from bench.reports import generate, load_postgresql, load_sqlite
from config import load_settings
from journal.db import Database
from journal.history import caller_histories
from journal.missed import missed_calls
from journal.users import Principal

END = datetime(2026, 12, 31, 12, tzinfo=UTC)
ADMIN = Principal(id=1, login="admin", role="admin", smo=None, extension=None)


async def measure(db: Database, n: int, label: str) -> None:
    settings = load_settings(missed_callback_hours=2)
    for days, state in ((7, "open"), (7, "open"), (7, "all"), (31, "overdue"), (31, "all")):
        async with db.session() as session:
            started = time.perf_counter()
            data = await missed_calls(session, ADMIN, settings, show=state, days=days,
                                      limit=100, now=END)
            elapsed = time.perf_counter() - started
        print(f"  {label:10} missed days={days:<3} state={state:<8} {elapsed * 1000:7.0f} ms "
              f"({data['total']} shown, {data['overdue']} overdue)")
    rnd = random.Random(3)
    wanted = []
    for request, _call in generate(n):
        if rnd.random() < 100 / n:
            wanted.append((request[6], request[0]))
    for _ in range(2):  # the first run compiles the statements
        async with db.session() as session:
            started = time.perf_counter()
            histories = await caller_histories(session, wanted)
            elapsed = time.perf_counter() - started
    print(f"  {label:10} caller histories of {len(wanted)} calls {elapsed * 1000:7.1f} ms "
          f"({sum(len(h) for h in histories.values())} rows)")


async def bench_postgresql(pg_url: str, n: int) -> None:
    import asyncpg  # type: ignore[import-untyped]

    dsn = pg_url.replace("postgresql+asyncpg", "postgresql")
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        db = Database(pg_url, schema=schema)
        await db.upgrade_schema()
        await load_postgresql(dsn, schema, n)
        await measure(db, n, "postgresql")
        await db.dispose()
    finally:
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


async def bench_sqlite(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.sqlite3"
        db = Database(f"sqlite+aiosqlite:///{path}")
        await db.upgrade_schema()
        await db.dispose()
        await asyncio.to_thread(load_sqlite, path, n)
        db = Database(f"sqlite+aiosqlite:///{path}")
        await measure(db, n, "sqlite")
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="requests to generate")
    parser.add_argument("--backend", choices=("postgresql", "sqlite", "both"),
                        default="postgresql")
    parser.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    if args.backend in ("postgresql", "both"):
        asyncio.run(bench_postgresql(args.pg_url, args.n))
    if args.backend in ("sqlite", "both"):
        asyncio.run(bench_sqlite(args.n))


if __name__ == "__main__":
    main()
