"""Benchmark: reports and lookups on a journal of 1,000,000 requests (and as many calls).

    .venv/bin/python -m bench.reports                 # PostgreSQL and SQLite, N = 1,000,000
    .venv/bin/python -m bench.reports --n 100000 --backend postgresql

PostgreSQL: a dedicated schema in database ``test`` at 127.0.0.1:5432 (``--pg-url``), filled
with COPY and dropped afterwards. SQLite: a temporary file, filled with executemany. Prints the
time of the monthly and quarterly summary (with and without the comparison period), of every
analytical report of journal.analytics for the quarter (each with its previous period and the
same period a year earlier, as the API computes them; as the auditor and as an SMO), the
register export streamed as CSV and XLSX (time and the peak growth of the process's resident
memory: it must not grow with the rows), and the p99 of a request lookup by number and of a
caller's history (the screen pop query).
Targets: every quarterly report < 2 s on PostgreSQL; lookups p99 <= 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from journal import register
from journal.analytics import REPORTS, Scope, run
from journal.db import Database
from journal.models import Request
from journal.queries import RequestFilter
from journal.report_files import csv_line
from journal.reports import parse_period, summary
from journal.users import Principal

TZ = "Europe/Moscow"
YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)
KINDS = ("консультация", "жалоба", "заявление", "предложение", "не по ОМС", None)
TOPICS = ("smo_choice", "policy", "mo_choice", "care_organisation", "care_quality",
          "care_refusal", "drugs", "money_charged", "checkups", "out_of_region", "other", None)
STATUSES = ("new", "in_progress", "transferred", "deferred", "answered", "closed")
LEVELS = ("1", "1", "1", "2", "smo")
SMOS = ("SMO1", "SMO2", "SMO3")
OPERATORS = tuple(str(101 + i) for i in range(20))
REQUEST_COLUMNS = ("number", "pbx_id", "linkedid", "created_at", "line", "caller_number",
                   "caller_normalized", "status", "level", "smo", "version", "kind", "topic",
                   "typical", "urgent", "written_appeal_advised", "corruption",
                   "recording_missing", "operator", "outcome", "deferred_due_at",
                   "deferred_done_at", "updated_at", "deferred_by", "complaint_justified",
                   "closed_at", "urgent_action")
CALL_COLUMNS = ("request_id", "pbx_id", "linkedid", "direction", "caller_number", "line",
                "started_at", "queued_at", "answered_at", "ended_at", "outcome", "operator",
                "queue")

USER_COLUMNS = ("login", "password_hash", "role", "extension", "full_name", "failed_logins",
                "locked", "created_at")
USERS = [(f"op{ext}", "-", "operator", ext, f"Оператор {ext}", 0, False, YEAR_START)
         for ext in OPERATORS]
AUDITOR = Principal(id=0, login="bench", role="auditor", smo=None, extension=None)
SMO_USER = Principal(id=0, login="bench-smo", role="smo", smo="SMO1", extension=None)


def phone(i: int) -> str:
    return f"+79{i:09d}"


def generate(n: int, seed: int = 7) -> Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
    """(request row, its call rows) pairs, request ids 1..n in number order: the inbound
    call, and for some missed calls an outbound call-back."""
    rnd = random.Random(seed)
    span = 365 * 86400
    callers = max(1, n // 5)  # about five requests per caller
    step = span / n
    for i in range(1, n + 1):
        created = YEAR_START + timedelta(seconds=i * step + rnd.random() * step * 0.5)
        caller = phone(rnd.randrange(callers))
        level = rnd.choice(LEVELS)
        answered = rnd.random() < 0.9
        wait = rnd.expovariate(1 / 15)
        queued = created + timedelta(seconds=1)
        answered_at = queued + timedelta(seconds=wait) if answered else None
        ended = (answered_at + timedelta(seconds=rnd.expovariate(1 / 180))) if answered_at \
            else queued + timedelta(seconds=wait)
        operator = rnd.choice(OPERATORS) if answered else None
        outcome = "answered" if answered else "abandoned"
        deferred = rnd.random() < 0.05
        due = created + timedelta(hours=4) if deferred else None
        done = created + timedelta(hours=rnd.choice((2, 3, 6))) if deferred and \
            rnd.random() < 0.9 else None
        status = rnd.choice(STATUSES)
        kind = rnd.choice(KINDS)
        urgent = rnd.random() < 0.01
        request = (i, "pbx1", f"{1700000000 + i}.0", created, "88007070561", caller, caller,
                   status, level, rnd.choice(SMOS) if level == "smo" else None,
                   1, kind, rnd.choice(TOPICS), rnd.random() < 0.6,
                   urgent, rnd.random() < 0.05, rnd.random() < 0.002, False,
                   operator, outcome, due, done, ended,
                   f"op{rnd.choice(OPERATORS)}" if deferred else None,
                   rnd.random() < 0.4 if kind == "жалоба" and rnd.random() < 0.8 else None,
                   created + timedelta(days=rnd.uniform(0.1, 20)) if status == "closed"
                   else None, "Связались с МО" if urgent else None)
        call = (i, "pbx1", f"{1700000000 + i}.0", "inbound", caller, "88007070561", created,
                queued, answered_at, ended, outcome, operator, "l1-operators")
        calls = [call]
        if not answered and rnd.random() < 0.6:  # a missed call called back (click-to-call)
            back = ended + timedelta(minutes=rnd.uniform(5, 120))
            reached = rnd.random() < 0.7
            calls.append((i, "pbx1", f"cb{1700000000 + i}.0", "outbound", caller, "",
                          back, None, back + timedelta(seconds=9) if reached else None,
                          back + timedelta(seconds=rnd.uniform(30, 200)),
                          "answered" if reached else "abandoned", rnd.choice(OPERATORS), None))
        yield request, calls


# ------------------------------------------------------------------ loading
async def load_postgresql(dsn: str, schema: str, n: int, batch: int = 100_000) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        rows = generate(n)
        while True:
            chunk = [pair for _, pair in zip(range(batch), rows, strict=False)]
            if not chunk:
                break
            await conn.copy_records_to_table("requests", records=[r for r, _ in chunk],
                                             columns=REQUEST_COLUMNS)
            await conn.copy_records_to_table("calls", records=[c for _, cs in chunk for c in cs],
                                             columns=CALL_COLUMNS)
        await conn.copy_records_to_table("users", records=USERS, columns=USER_COLUMNS)
        await conn.execute("UPDATE counters SET value = $1 WHERE name = 'request'", n)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def _sqlite_value(value: Any) -> Any:
    # SQLAlchemy's SQLite DateTime storage format (UTC wall time).
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def load_sqlite(path: Path, n: int, batch: int = 100_000) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    requests_sql = (f"INSERT INTO requests ({', '.join(REQUEST_COLUMNS)}) VALUES "
                    f"({', '.join('?' * len(REQUEST_COLUMNS))})")
    calls_sql = (f"INSERT INTO calls ({', '.join(CALL_COLUMNS)}) VALUES "
                 f"({', '.join('?' * len(CALL_COLUMNS))})")
    rows = generate(n)
    while True:
        chunk = [pair for _, pair in zip(range(batch), rows, strict=False)]
        if not chunk:
            break
        conn.executemany(requests_sql, ([_sqlite_value(v) for v in r] for r, _ in chunk))
        conn.executemany(calls_sql, ([_sqlite_value(v) for v in c] for _, cs in chunk
                                     for c in cs))
        conn.commit()
    conn.executemany(f"INSERT INTO users ({', '.join(USER_COLUMNS)}) VALUES "
                     f"({', '.join('?' * len(USER_COLUMNS))})",
                     ([_sqlite_value(v) for v in u] for u in USERS))
    conn.execute("UPDATE counters SET value = ? WHERE name = 'request'", (n,))
    conn.execute("ANALYZE")
    conn.commit()
    conn.close()


# ------------------------------------------------------------------ measuring
async def measure(db: Database, n: int, label: str, lookups: int = 2000) -> dict[str, float]:
    figures: dict[str, float] = {}
    for period in ("2026-11", "2026-Q4"):
        for compare in (False, True):
            async with db.session() as session:
                started = time.perf_counter()
                data = await summary(session, parse_period(period, TZ), tz=TZ, compare=compare)
                elapsed = time.perf_counter() - started
            name = f"report {period}{' +compare' if compare else ''}"
            figures[name] = elapsed
            print(f"  {label:10} {name:24} {elapsed * 1000:8.0f} ms  "
                  f"({data['requests']['total']} requests, "
                  f"{data['calls']['total']['offered']} calls)")
    figures.update(await measure_analytics(db, label))
    rnd = random.Random(1)
    by_number: list[float] = []
    history: list[float] = []
    async with db.session() as session:
        for _ in range(lookups):
            number = rnd.randint(1, n)
            started = time.perf_counter()
            found = await session.scalar(select(Request).where(Request.number == number))
            by_number.append(time.perf_counter() - started)
            assert found is not None
            caller = found.caller_normalized
            started = time.perf_counter()
            await session.execute(
                select(Request.number, Request.created_at, Request.status, Request.topic)
                .where(Request.caller_normalized == caller, Request.number != number)
                .order_by(Request.number.desc()).limit(10))
            history.append(time.perf_counter() - started)
            session.expunge_all()
    for name, samples in (("lookup by number", by_number), ("caller history", history)):
        p99 = statistics.quantiles(samples, n=100)[98]
        figures[f"{name} p99"] = p99
        print(f"  {label:10} {name + ' p99':24} {p99 * 1000:8.2f} ms  "
              f"(median {statistics.median(samples) * 1000:.2f} ms)")
    return figures


async def measure_analytics(db: Database, label: str,
                            quarter: str = "2026-Q4") -> dict[str, float]:
    """Every analytical report for the quarter as the API runs it (its previous period and the
    same period a year earlier included); then the register streamed to files."""
    figures: dict[str, float] = {}
    period = parse_period(quarter, TZ)
    now = datetime(2027, 1, 15, tzinfo=UTC)
    dialect = db.engine.dialect.name
    for who in (AUDITOR, SMO_USER):
        scope = Scope(period, TZ, who, now, dialect)
        for key in REPORTS:
            async with db.session() as session:
                started = time.perf_counter()
                data = await run(session, key, scope)
                elapsed = time.perf_counter() - started
            name = f"{key} {quarter}" + (" smo" if who.role == "smo" else "")
            figures[name] = elapsed
            mark = "" if elapsed < 2 else "  OVER 2 s"
            print(f"  {label:10} {name:32} {elapsed * 1000:8.0f} ms  {data['headline']}{mark}")
    # Memory (tracemalloc, which slows the run) for a month and a quarter: flat means the same
    # peak for three times the rows; then the quarter's time alone. openpyxl writes ~10k
    # rows/s, so XLSX for the month only.
    for text, fmt, traced in (("2026-11", "csv", True), (quarter, "csv", True),
                              (quarter, "csv", False), ("2026-11", "xlsx", True)):
        rows, elapsed, peak = await export_register(db, parse_period(text, TZ), fmt, traced)
        name = f"register {text} {fmt}"
        if traced:
            print(f"  {label:10} {name + ' memory':32} peak allocated {peak / 2**20:.1f} MiB "
                  f"({rows} rows)")
        else:
            figures[name] = elapsed
            print(f"  {label:10} {name:32} {elapsed * 1000:8.0f} ms  ({rows} rows)")
    return figures


async def export_register(db: Database, period: Any, fmt: str,
                          traced: bool) -> tuple[int, float, int]:
    """The register streamed as the routes do (CSV lines to a sink, XLSX in openpyxl's
    write-only mode to a temporary file): rows, seconds, peak of the memory Python allocated
    meanwhile (tracemalloc: flat means it does not grow with the rows)."""
    import os
    import tracemalloc

    from openpyxl import Workbook

    if traced:
        tracemalloc.start()
    rows = 0
    flt = RequestFilter(date_from=period.start, date_to=period.end)
    keys = [key for key, _, _ in register.COLUMNS]
    book = Workbook(write_only=True) if fmt == "xlsx" else None
    sheet = book.create_sheet("Реестр") if book is not None else None
    started = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        async with db.session() as session:
            async for batch in register.stream(session, AUDITOR, flt, TZ):
                for row in batch:
                    if sheet is not None:
                        sheet.append([row[k] for k in keys])
                    else:
                        sink.write(csv_line(row[k] for k in keys))
                rows += len(batch)
    if book is not None:
        with tempfile.TemporaryDirectory() as tmp:
            book.save(Path(tmp) / "register.xlsx")
    elapsed = time.perf_counter() - started
    peak = 0
    if traced:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return rows, elapsed, peak


async def bench_postgresql(pg_url: str, n: int, schema: str | None = None,
                           keep: bool = False) -> None:
    """``schema``: reuse that schema if it exists (filled by an earlier ``--keep`` run)."""
    import asyncpg

    dsn = pg_url.replace("postgresql+asyncpg", "postgresql")
    schema = schema or f"bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(dsn)
    exists = await admin.fetchval(
        "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1", schema)
    if not exists:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        db = Database(pg_url, schema=schema)
        if not exists:
            await db.upgrade_schema()
            started = time.perf_counter()
            await load_postgresql(dsn, schema, n)
            print(f"  postgresql load {n} requests + calls: "
                  f"{time.perf_counter() - started:.1f} s")
        await measure(db, n, "postgresql")
        await db.dispose()
    finally:
        if keep:
            print(f"  postgresql schema kept: {schema}")
        else:
            await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


async def bench_sqlite(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.sqlite3"
        db = Database(f"sqlite+aiosqlite:///{path}")
        await db.upgrade_schema()
        await db.dispose()
        started = time.perf_counter()
        await asyncio.to_thread(load_sqlite, path, n)
        print(f"  sqlite     load {n} requests + calls: {time.perf_counter() - started:.1f} s")
        db = Database(f"sqlite+aiosqlite:///{path}")
        await measure(db, n, "sqlite")
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="requests to generate")
    parser.add_argument("--backend", choices=("postgresql", "sqlite", "both"), default="both")
    parser.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--schema", help="PostgreSQL: reuse this schema if it exists")
    parser.add_argument("--keep", action="store_true", help="PostgreSQL: keep the schema")
    args = parser.parse_args()
    if args.backend in ("postgresql", "both"):
        asyncio.run(bench_postgresql(args.pg_url, args.n, args.schema, args.keep))
    if args.backend in ("sqlite", "both"):
        asyncio.run(bench_sqlite(args.n))


if __name__ == "__main__":
    main()
