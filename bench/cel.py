"""Benchmark: CEL backfill and the completeness proof over a synthetic day of blind-window calls.

    .venv/bin/python -m bench.cel                       # SQLite and PostgreSQL, 2000 calls
    .venv/bin/python -m bench.cel --calls 5000 --backend sqlite

The CEL rows of the recorded scenarios (../shared/ami-traces) are copied with fresh Uniqueids
and Linkedids per call and spread over one day, written to a ``cel`` table, then one backfill
run makes every request into an empty journal (no AMI at all). Printed: CEL rows, calls, the
run's wall time (rows/s, calls/s) and the completeness proof's time for that day; then a second
run over the same rows (nothing to create: the steady-state cost of a periodic run).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

PG_URL = os.environ.get("HOTLINE_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
TRACES = Path(os.environ.get("HOTLINE_TRACES",
                             Path(__file__).resolve().parent.parent.parent / "shared"
                             / "ami-traces"))
DAY = datetime(2026, 11, 25, tzinfo=UTC)


def synthetic_rows(calls: int) -> tuple[list[dict[str, Any]], int]:
    """(rows, inbound 8-800 calls among them): scenarios repeated with fresh ids."""
    import json

    from tests.cel_fixtures import cel_rows

    scenarios = [d for d in sorted(TRACES.glob("s*")) if (d / "meta.json").exists()]
    templates = [(cel_rows(d), json.loads((d / "meta.json").read_text())
                  ["expected_journal_requests"]) for d in scenarios]
    rows: list[dict[str, Any]] = []
    expected = 0
    step = 86_000 / max(calls, 1)
    for n in range(calls):
        template, count = templates[n % len(templates)]
        expected += count
        base = datetime.fromisoformat(template[0]["eventtime"])
        start = DAY.replace(tzinfo=None) + timedelta(seconds=n * step)
        ids: dict[str, str] = {}
        for row in template:
            row = dict(row)
            for key in ("uniqueid", "linkedid"):
                ids.setdefault(row[key], f"{1800000000 + n}.{len(ids)}")
                row[key] = ids[row[key]]
            for old, new in ids.items():
                row["extra"] = row["extra"].replace(old, new)
            at = datetime.fromisoformat(row["eventtime"]) - base + start
            row["eventtime"] = at.isoformat(sep=" ")
            rows.append(row)
    return rows, expected


async def run(backend: str, calls: int) -> None:
    from config import load_settings
    from hotline.assembly import build_services
    from journal.completeness import check_day
    from tests.cel_fixtures import build_cel_db

    rows, expected = synthetic_rows(calls)
    with tempfile.TemporaryDirectory() as tmp:
        schema = None
        if backend == "sqlite":
            journal = f"sqlite+aiosqlite:///{tmp}/journal.sqlite3"
            cel_url, table = f"sqlite+aiosqlite:///{tmp}/cel.sqlite3", "cel"
        else:
            import asyncpg  # type: ignore[import-untyped]

            schema = f"bench_{uuid.uuid4().hex[:10]}"
            conn = await asyncpg.connect(PG_URL.replace("postgresql+asyncpg", "postgresql"))
            await conn.execute(f'CREATE SCHEMA "{schema}"')
            await conn.close()
            journal, cel_url, table = PG_URL, PG_URL, f"{schema}.cel"
        try:
            await build_cel_db(cel_url, rows, schema=schema, table="cel")
            settings = load_settings(database_url=journal, ami_host=None, cel_url=cel_url,
                                     cel_table=table, cel_interval_s=3600,
                                     cel_lookback_h=24 * 365 * 10, recordings_dir=Path(tmp),
                                     spill_dir=Path(tmp) / "spill")
            services = build_services(settings, db_schema=schema)
            await services.db.upgrade_schema()
            backfill = services.build_backfill()
            try:
                started = time.perf_counter()
                report = await backfill.run(since=DAY - timedelta(days=1))
                took = time.perf_counter() - started
                assert len(report.created) == expected, (len(report.created), expected)
                started = time.perf_counter()
                again = await backfill.run(since=DAY - timedelta(days=1))
                steady = time.perf_counter() - started
                assert again.created == []
                started = time.perf_counter()
                proof = await check_day(backfill.source, services.db, backfill.routing,
                                        pbx_id=settings.pbx_id, day=DAY.date())
                proof_s = time.perf_counter() - started
            finally:
                await backfill.source.close()
                await services.db.dispose()
            print(f"{backend:10s} rows {len(rows):7d}  calls {expected:5d}  "
                  f"backfill {took:6.2f} s ({len(rows) / took:8.0f} rows/s, "
                  f"{expected / took:6.0f} calls/s)  second run {steady:5.2f} s  "
                  f"proof {proof_s:5.2f} s (cel_calls {proof.cel_calls}, "
                  f"missing {proof.missing})")
        finally:
            if schema is not None:
                import asyncpg  # type: ignore[import-untyped]

                conn = await asyncpg.connect(PG_URL.replace("postgresql+asyncpg", "postgresql"))
                await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
                await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    for backend in backends:
        asyncio.run(run(backend, args.calls))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
