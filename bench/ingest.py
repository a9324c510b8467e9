"""Benchmark: AMI ingest end to end — TCP → framing → parse → tracker → buffer → intake → DB.

    .venv/bin/python -m bench.ingest                          # SQLite and PostgreSQL
    .venv/bin/python -m bench.ingest --calls 2000 --in-flight 400 --backend sqlite
    .venv/bin/python -m bench.ingest --profile                # cProfile of the service side

Synthetic load: the recorded scenarios (all but s11, whose reconnect and Asterisk restart would
end every call in flight) are copied with fresh ids per call (``refresh_ids``) and interleaved
event by event so that ``--in-flight`` calls are in progress at once. A ReplayPeer in a
separate process (the PBX is another process too) streams them at full speed (speed 0) over
loopback TCP into the service, which runs as in production (``build_services``, and since
2026-12-07 the process tuning of hotline/runtime.py: earlier figures ran without it).

Printed per backend: AMI events/s and calls/s from the first event to the last commit, p50/p99
of the delay from the Newchannel's arrival (CallStarted in the pipeline) to the committed
request, peak RSS; and the ceiling: how fast plain panoramisk 1.4 (its own Manager and
AMIProtocol, a callback counting events) reads the same stream. Targets: >= 20,000 events/s end
to end and >= 50 % of the ceiling. Each backend runs twice: saturated (the peer streams as fast
as the socket takes it: throughput; the delay then mostly measures the backlog) and paced at
``--rate`` events/s (default 20,000; the delay a call sees at a sustainable load).
Loopback only; each run stops by itself (``--max-seconds``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import os
import pstats
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.load import SECRET, pbx_process, synthetic_calls  # synthetic_calls: tests use it

PG_URL = os.environ.get("HOTLINE_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
# The recordings worker and web parts hang off the service but not off the ingest path;
# --with-parts includes them (the recordings worker then hunts for files that do not exist).
WITH_PARTS = False


# --------------------------------------------------------------------------- the PBX process
def _load(args: dict[str, Any], _conn: Any) -> tuple[list[Any], dict[str, Any]]:
    items, expected = synthetic_calls(args["calls"], args["in_flight"])
    return items, {"events": len(items), "expected": expected}


@contextlib.contextmanager
def pbx(calls: int, in_flight: int, rate: float = 0.0) -> Iterator[dict[str, Any]]:
    with pbx_process(_load, {"calls": calls, "in_flight": in_flight, "rate": rate}) as (info, _):
        yield info


# --------------------------------------------------------------------------- measurements
def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def ceiling(port: int, events: int, max_seconds: float) -> dict[str, float]:
    """Plain panoramisk 1.4: its Manager and AMIProtocol, a callback counting events."""
    from panoramisk import Manager

    count = 0
    first = last = 0.0
    done = asyncio.Event()

    def on_event(_manager: Any, _event: Any) -> None:
        nonlocal count, first, last
        count += 1
        last = time.perf_counter()
        if count == 1:
            first = last
        if count >= events:
            done.set()

    manager = Manager(host="127.0.0.1", port=port, username="journal", secret=SECRET,
                      ping_delay=10**6, reconnect_timeout=10**6, encoding="utf-8")
    manager.register_event("*", on_event)
    await manager.connect()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), max_seconds)
    manager.close()
    elapsed = max(last - first, 1e-9)
    # The FullyBooted of the login counts as an event for panoramisk as well.
    return {"events": count, "seconds": elapsed, "events_per_s": count / elapsed}


async def end_to_end(database_url: str, schema: str | None, port: int, events: int,
                     expected: int, max_seconds: float, profile: bool) -> dict[str, Any]:
    from sqlalchemy import func, select

    from config import load_settings
    from hotline.assembly import build_services
    from hotline.service import Services
    from journal.models import Request
    from telephony.callevents import CallStarted

    spill = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
    settings = load_settings(
        database_url=database_url, ami_host="127.0.0.1", ami_port=port, ami_secret=SECRET,
        ami_ping_interval_s=5, ami_ping_timeout_s=30, ami_idle_timeout_s=60,
        hotline_numbers="88007070561", l2_targets="7001,201,202",
        smo_lines="88001002030=SMO1,88005553535=SMO2", spill_dir=spill,
        recordings_dir=spill / "recordings", event_buffer_size=200_000)
    services = (build_services if WITH_PARTS else Services.build)(settings, db_schema=schema)
    arrived: dict[str, float] = {}
    delays: list[float] = []
    first_event = 0.0

    def observe(event: Any) -> None:
        if type(event) is CallStarted:
            arrived[event.linkedid] = time.perf_counter()

    def committed(batch: Any) -> None:
        now = time.perf_counter()
        for event in batch:
            if type(event) is CallStarted:
                started = arrived.pop(event.linkedid, None)
                if started is not None:
                    delays.append(now - started)

    services.pipeline.listeners.append(observe)
    services.intake.commit_observer = committed
    feed = services.pipeline.feed

    def first_feed(headers: Any) -> None:
        nonlocal first_event
        if not first_event:
            first_event = time.perf_counter()
        feed(headers)

    services.pipeline.feed = first_feed  # type: ignore[method-assign]
    profiler = cProfile.Profile() if profile else None
    await services.db.upgrade_schema()
    await services.start(connect_ami=False)
    from hotline.runtime import settle_heap, shorten_gil_switch
    from telephony.ami import AmiClient

    settle_heap()  # the process tuning `hotline serve` applies once it listens
    shorten_gil_switch()

    # As Services.start wires it, with the timing shim as the sink.
    services.ami = AmiClient(host="127.0.0.1", port=port, username="journal", secret=SECRET,
                             event_sink=first_feed, on_login=services.pipeline.begin_snapshot,
                             ping_interval_s=5, ping_timeout_s=30, idle_timeout_s=60)
    if profiler is not None:
        profiler.enable()
    services.ami.start()
    deadline = time.perf_counter() + max_seconds
    stats = services.pipeline.stats
    # All events in (messages counts the login FullyBooted and the CoreShowChannels listing).
    while time.perf_counter() < deadline:
        if stats.messages >= events and not len(services.buffer) \
                and services.intake.committed_events >= stats.call_events:
            break
        await asyncio.sleep(0.005)
    end = time.perf_counter()
    if profiler is not None:
        profiler.disable()
    async with services.db.session() as session:
        requests = await session.scalar(select(func.count()).select_from(Request))
        numbers = list(await session.scalars(select(Request.number).order_by(Request.number)))
    await services.stop()
    elapsed = max(end - first_event, 1e-9)
    delays.sort()
    result = {
        "events": stats.messages, "seconds": elapsed, "events_per_s": stats.messages / elapsed,
        "requests": requests, "expected": expected,
        "gap_free": numbers == list(range(1, len(numbers) + 1)),
        "calls_per_s": (requests or 0) / elapsed,
        "p50_ms": 1000 * statistics.median(delays) if delays else float("nan"),
        "p99_ms": 1000 * delays[min(len(delays) - 1, int(len(delays) * 0.99))]
        if delays else float("nan"),
        "batches": services.intake.committed_batches,
        "spilled": services.buffer.total_spilled,
        "peak_rss_mib": peak_rss_mib(),
        "timed_out": end >= deadline,
    }
    if profiler is not None:
        out = pstats.Stats(profiler, stream=sys.stdout)
        out.sort_stats("tottime").print_stats(25)
    return result


async def pg_schema() -> tuple[str, Any]:
    import asyncpg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    dsn = PG_URL.replace("postgresql+asyncpg", "postgresql")
    conn = await asyncpg.connect(dsn)
    await conn.execute(f'CREATE SCHEMA "{schema}"')
    await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(dsn)
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.close()

    return schema, drop


def run_backend(backend: str, args: argparse.Namespace, rate: float = 0.0) -> dict[str, Any]:
    with pbx(args.calls, args.in_flight, rate) as info:
        async def main() -> dict[str, Any]:
            if backend == "postgresql":
                schema, drop = await pg_schema()
                try:
                    return await end_to_end(PG_URL, schema, info["port"], info["events"],
                                            info["expected"], args.max_seconds, args.profile)
                finally:
                    await drop()
            with tempfile.TemporaryDirectory() as tmp:
                url = f"sqlite+aiosqlite:///{tmp}/bench.sqlite3"
                return await end_to_end(url, None, info["port"], info["events"],
                                        info["expected"], args.max_seconds, args.profile)

        return asyncio.run(main())


def run_ceiling(args: argparse.Namespace) -> dict[str, float]:
    with pbx(args.calls, args.in_flight) as info:
        return asyncio.run(ceiling(info["port"], info["events"] + 1, args.max_seconds))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.ingest", description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--in-flight", type=int, default=300)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--rate", type=float, default=20000.0,
                        help="offered events/s of the second, paced run (0: skip it)")
    parser.add_argument("--with-parts", action="store_true",
                        help="build the full service (recordings worker too)")
    args = parser.parse_args(argv)
    global WITH_PARTS
    WITH_PARTS = args.with_parts

    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    top = run_ceiling(args)
    print(f"ceiling  panoramisk 1.4: {top['events']} events in {top['seconds']:.2f} s = "
          f"{top['events_per_s']:,.0f} events/s")
    runs = [(backend, rate) for backend in backends
            for rate in ([0.0, args.rate] if args.rate > 0 else [0.0])]
    for backend, rate in runs:
        r = run_backend(backend, args, rate)
        share = 100 * r["events_per_s"] / top["events_per_s"]
        mode = "saturated" if not rate else f"at {rate:,.0f}/s"
        print(f"{backend:10s} {mode:>13s}: {r['events']} events in {r['seconds']:.2f} s = "
              f"{r['events_per_s']:,.0f} events/s ({share:.0f} % of ceiling), "
              f"{r['calls_per_s']:,.0f} calls/s; requests {r['requests']}/{r['expected']} "
              f"gap-free={r['gap_free']}; Newchannel→commit p50 {r['p50_ms']:.1f} ms "
              f"p99 {r['p99_ms']:.1f} ms; {r['batches']} batches, spilled {r['spilled']}; "
              f"peak RSS {r['peak_rss_mib']:.0f} MiB"
              + ("; TIMED OUT" if r["timed_out"] else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
