"""AMI reconnects and service restarts in the middle of calls (DESIGN §2-3).

Every recorded scenario is replayed over real TCP with extra connection drops at several points
(with a few events happening while the service is blind), and with the service itself stopped
and a new one started on the same database mid-call. The journal must end up with exactly the
expected requests, numbered 1..N without gaps, each call closed out with the right outcome.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from journal.db import Database
from journal.models import Call, Request
from telephony.trace import TraceItem, streamed_messages
from tests.conftest import REPO, load_meta, scenario_dirs, service_env, trace_items
from tests.helpers import wait_for
from tests.kill_support import KILL_ITEMS, KILL_TRUTHS, check_journal, first_answer, journal_of

SCENARIOS = scenario_dirs()
DROP_POINTS = (0.1, 0.4, 0.7)
GAP = 3
# Quick reconnects in tests: the back-off ceiling, not the default 30 s.
FAST_AMI = {"ami_backoff_max_s": 0.05}


def streamed_events(items: list[TraceItem]) -> int:
    """How many messages the replay peer streams (login responses and blocks are not)."""
    return len(streamed_messages(items))


def hotline_calls(meta: dict[str, Any]) -> list[dict[str, Any]]:
    return [call for call in meta["calls"] if call.get("is_hotline")]


async def journal_rows(services: Any) -> list[dict[str, Any]]:
    """Requests with their (only) call, by number."""
    async with services.db.session() as session:
        rows = await session.execute(
            select(Request.number, Request.linkedid, Request.caller_number, Call.outcome,
                   Call.ended_at, Call.operator)
            .outerjoin(Call, Call.request_id == Request.id)
            .order_by(Request.number))
        return [dict(number=n, linkedid=lid, caller=c, outcome=o, ended_at=e, operator=op)
                for n, lid, c, o, e, op in rows]


def assert_journal_matches(rows: list[dict[str, Any]], meta: dict[str, Any],
                           check_caller: bool = True) -> None:
    """Exactly the expected requests, gap-free numbers, one per Linkedid, calls closed out."""
    expected = hotline_calls(meta)
    assert len(rows) == meta["expected_journal_requests"], rows
    assert [r["number"] for r in rows] == list(range(1, len(rows) + 1))
    assert len({r["linkedid"] for r in rows}) == len(rows), "a call was doubled"
    for row, call in zip(rows, expected, strict=True):
        assert row["ended_at"] is not None, row
        assert row["outcome"] == call["outcome"], (row, call)
        if check_caller:
            assert row["caller"] == call["caller"]


async def run_with_drop(scenario: Path, make_settings: Any, start_service: Any,
                        replay_peer: Any, drop_at: int, gap: int) -> Any:
    meta = load_meta(scenario)
    peer = await replay_peer(trace_items(scenario), drops=[drop_at], gap=gap)
    settings = make_settings(ami_port=peer.port, **service_env(meta), **FAST_AMI)
    harness = await start_service(settings)
    await peer.done.wait()
    await harness.wait_calls_done()
    return meta, harness, peer


CASES = [(s, f) for s in SCENARIOS for f in DROP_POINTS]


@pytest.mark.parametrize(("scenario", "fraction"), CASES,
                         ids=[f"{s.name}-{int(f * 100)}pct" for s, f in CASES])
async def test_reconnect_mid_trace_keeps_the_journal_exact(
        scenario: Path, fraction: float, make_settings: Any, start_service: Any,
        replay_peer: Any) -> None:
    items = trace_items(scenario)
    drop_at = max(1, int(streamed_events(items) * fraction))
    meta, harness, peer = await run_with_drop(scenario, make_settings, start_service,
                                              replay_peer, drop_at, GAP)
    services = harness.services
    assert services.ami is not None and services.ami.logins >= 2
    assert peer.stats.sessions >= 2
    assert_journal_matches(await journal_rows(services), meta)
    assert services.pipeline.stats.errors == 0
    assert not services.tracker.active_calls


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_reconnect_with_a_long_blind_gap(scenario: Path, make_settings: Any,
                                               start_service: Any, replay_peer: Any) -> None:
    """A third of the call happens while the service is away: reconciliation fills in."""
    items = trace_items(scenario)
    total = streamed_events(items)
    meta, harness, _peer = await run_with_drop(scenario, make_settings, start_service,
                                               replay_peer, total // 3, total // 3)
    # The caller number cannot be known if the Newchannel was in the gap; the rest must hold.
    assert_journal_matches(await journal_rows(harness.services), meta, check_caller=False)


S11 = [s for s in SCENARIOS if s.name.startswith("s11")]


@pytest.mark.parametrize("scenario", S11, ids=[s.name for s in S11])
async def test_recorded_reconnect_and_asterisk_restart(scenario: Path, make_settings: Any,
                                                        start_service: Any,
                                                        replay_peer: Any) -> None:
    """s11 as recorded: a reconnect, then `core restart now` (Shutdown, EOF, Uptime 0)."""
    meta = load_meta(scenario)
    peer = await replay_peer(trace_items(scenario))
    settings = make_settings(ami_port=peer.port, **service_env(meta), **FAST_AMI)
    harness = await start_service(settings)
    await peer.done.wait()
    await harness.wait_calls_done()
    services = harness.services
    assert services.ami is not None and services.ami.logins == 3
    assert_journal_matches(await journal_rows(services), meta)


RESTART_POINTS = (0.3, 0.6)
RESTART_CASES = [(s, f) for s in SCENARIOS for f in RESTART_POINTS]


@pytest.mark.parametrize(("scenario", "fraction"), RESTART_CASES,
                         ids=[f"{s.name}-{int(f * 100)}pct" for s, f in RESTART_CASES])
async def test_service_restart_mid_call(scenario: Path, fraction: float, make_settings: Any,
                                        start_service: Any, replay_peer: Any) -> None:
    """Stop the service mid-call, start a new one on the same database, let the PBX go on."""
    meta = load_meta(scenario)
    items = trace_items(scenario)
    drop_at = max(1, int(streamed_events(items) * fraction))
    peer = await replay_peer(items, drops=[drop_at], gap=GAP, hold_on_drop=True)
    settings = make_settings(ami_port=peer.port, **service_env(meta), **FAST_AMI)
    first = await start_service(settings)
    await wait_for(lambda: not peer.accepting and peer.stats.events_sent >= drop_at)
    await first.services.drain()
    await first.services.stop()

    second = await start_service(settings)
    peer.resume()
    await peer.done.wait()
    await second.wait_calls_done()
    assert second.services.ami is not None and second.services.ami.logins >= 1
    assert_journal_matches(await journal_rows(second.services), meta)


async def test_restart_after_the_call_ended_while_down(make_settings: Any, start_service: Any,
                                                        replay_peer: Any) -> None:
    """The call ends while no service runs: the next one closes it out from the snapshot."""
    scenario = next(s for s in SCENARIOS if s.name.startswith("s01"))
    meta = load_meta(scenario)
    items = trace_items(scenario)
    total = streamed_events(items)
    drop_at = total // 2
    # Everything after the drop happens while the service is down.
    peer = await replay_peer(items, drops=[drop_at], gap=total, hold_on_drop=True)
    settings = make_settings(ami_port=peer.port, **service_env(meta), **FAST_AMI)
    first = await start_service(settings)
    await wait_for(lambda: not peer.accepting)
    await first.services.drain()
    await first.services.stop()
    rows = await journal_rows(first.services)
    assert len(rows) == 1 and rows[0]["ended_at"] is None

    second = await start_service(settings)
    peer.resume()
    await wait_for(lambda: second.services.ami is not None and second.services.ami.logins)
    await second.wait_calls_done()
    rows = await journal_rows(second.services)
    assert_journal_matches(rows, meta)


@pytest.mark.skipif(not KILL_ITEMS, reason="no recorded traces")
async def test_sigkill_right_after_the_first_answer(make_settings: Any, start_service: Any,
                                                    replay_peer: Any,
                                                    db_url: tuple[str, str | None],
                                                    tmp_path: Path) -> None:
    """Issue 14 as reported, with a real process and a real SIGKILL: several calls up, the
    service killed right after the first answer, a new one started on the same database while
    the calls go on. Every call gets exactly one request, numbered from 1, with its facts.
    (Every other boundary, in-process: tests/test_kill_at_every_boundary.py.)"""
    k = first_answer()
    assert all(truth.last > k for truth in KILL_TRUTHS)  # every call still up at the kill
    peer = await replay_peer(KILL_ITEMS, drops=[k], hold_on_drop=True,
                             events_after_listing=True)
    settings = make_settings(ami_port=peer.port, **FAST_AMI)
    schema = db_url[1]
    database = Database(settings.database_url, schema=schema)
    await database.upgrade_schema()  # as `hotline db upgrade`
    env = {key: value for key, value in os.environ.items() if not key.startswith("HOTLINE_")}
    env.update({f"HOTLINE_{name.upper()}": str(getattr(settings, name)) for name in (
        "database_url", "ami_host", "ami_port", "ami_backoff_max_s", "spill_dir",
        "recordings_dir")})
    env.update(HOTLINE_AMI_SECRET=settings.ami_secret.get_secret_value(),
               HOTLINE_HOTLINE_NUMBERS=",".join(settings.hotline_numbers),
               HOTLINE_L2_TARGETS=",".join(settings.l2_targets),
               HOTLINE_SMO_LINES=",".join(f"{n}={s}" for n, s in settings.smo_lines.items()),
               PYTHONPATH=str(REPO))
    log_path = tmp_path / "killed-service.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "tests.service_process", schema or ""],
                                   cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)

    async def requests_stored() -> bool:
        async with database.session() as session:
            return bool(await session.scalar(select(func.count()).select_from(Request)))

    try:
        await wait_for(lambda: peer.stats.events_sent >= k and not peer.accepting, 60)
        await wait_for(requests_stored, 30)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        await database.dispose()
    assert process.returncode == -signal.SIGKILL, log_path.read_text(errors="replace")[-3000:]

    peer.resume()
    second = await start_service(settings)
    await peer.done.wait()
    await second.wait_calls_done()
    assert check_journal(await journal_of(second.services), k, lost_from=0) == []
