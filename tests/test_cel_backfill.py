"""CEL backfill: with no AMI at all, every recorded scenario's calls are rebuilt from its CEL
rows (a ``cel`` table built from the trace's ``Event: CEL`` messages, on the test's backend)
into the same requests as the live path's ground truth; nothing is ever created twice."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from hotline.service import routing_of
from journal.backfill import CelBackfill
from journal.celsource import CelSource
from journal.intake import Intake
from journal.models import CallLogEntry, Request
from tests.cel_fixtures import build_cel_db, cel_rows
from tests.conftest import load_meta, scenario_dirs, service_env
from tests.helpers import bearer, create_user, login, wait_for
from tests.scenario_checks import check_ground_truth, expected_hotline_calls, replay_scenario

SCENARIOS = scenario_dirs()
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)
TEN_YEARS_H = 24 * 365 * 10.0


def cel_location(db_url: tuple[str, str | None], tmp_path: Path) -> tuple[str, str]:
    """(HOTLINE_CEL_URL, HOTLINE_CEL_TABLE) on the test's backend."""
    url, schema = db_url
    if schema is None:
        return f"sqlite+aiosqlite:///{tmp_path / 'cel.sqlite3'}", "cel"
    return url, f"{schema}.cel"


async def make_cel(db_url: tuple[str, str | None], tmp_path: Path,
                   rows: list[dict[str, Any]]) -> tuple[str, str]:
    cel_url, table = cel_location(db_url, tmp_path)
    schema, _, name = table.rpartition(".")
    await build_cel_db(cel_url, rows, schema=schema or None, table=name)
    return cel_url, table


async def request_numbers(services: Any) -> list[int]:
    async with services.db.session() as session:
        return list(await session.scalars(select(Request.number).order_by(Request.number)))


async def settle(services: Any) -> None:
    await services.drain()
    recordings = services.recordings
    if recordings is not None:
        await recordings.idle()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_backfill_without_ami_matches_ground_truth(
        scenario: Path, db_url: tuple[str, str | None], tmp_path: Path, make_settings: Any,
        start_service: Any) -> None:
    meta = load_meta(scenario)
    cel_url, table = await make_cel(db_url, tmp_path, cel_rows(scenario))
    settings = make_settings(ami_host=None, recordings_dir=scenario / "recordings",
                             cel_url=cel_url, cel_table=table, cel_lookback_h=TEN_YEARS_H,
                             **service_env(meta))
    harness = await start_service(settings, http=True)
    services = harness.services
    assert services.backfill is not None
    await wait_for(lambda: services.backfill.runs >= 1)
    await settle(services)

    pairs = await check_ground_truth(meta, harness)
    token = await login(harness, "admin")
    for _expected, detail in pairs:
        assert detail["source"] == "cel"
        (call,) = detail["calls"]
        assert call["source"] == "cel"
        started = [e for e in call["timeline"] if e["type"] == "started"]
        assert started and started[0]["source"] == "cel"
        # created_at is the call's real start (CEL's CHAN_START), not the time of backfill
        assert detail["created_at"] == call["started_at"]
    async with harness.http.get(harness.url("/api/v1/requests"), headers=bearer(token)) as resp:
        listing = await resp.json()
    assert all(item["source"] == "cel" for item in listing["items"])

    # Again, and from the very beginning: nothing twice, numbers gap-free.
    count = meta["expected_journal_requests"]
    report = await services.backfill.run(since=LONG_AGO)
    await settle(services)
    assert report.created == []
    assert await request_numbers(services) == list(range(1, count + 1))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_backfill_after_the_live_path_creates_nothing(
        scenario: Path, db_url: tuple[str, str | None], tmp_path: Path, make_settings: Any,
        start_service: Any, replay_peer: Any) -> None:
    meta, harness, _peer = await replay_scenario(scenario, make_settings, start_service,
                                                 replay_peer)
    services = harness.services
    cel_url, table = await make_cel(db_url, tmp_path, cel_rows(scenario))
    source = CelSource(cel_url, table=table)
    try:
        backfill = CelBackfill(source, services.intake, routing_of(services.settings))
        report = await backfill.run(since=LONG_AGO)
    finally:
        await source.close()
    await services.drain()
    assert report.created == []
    assert len(report.filled) == 0 or all(lid for lid in report.filled)
    count = meta["expected_journal_requests"]
    assert await request_numbers(services) == list(range(1, count + 1))
    async with services.db.session() as session:
        sources = set(await session.scalars(select(Request.source)))
    assert sources <= {"ami"}
    await check_ground_truth(meta, harness)


async def test_concurrent_backfills_create_each_request_once(
        db_url: tuple[str, str | None], tmp_path: Path, make_settings: Any,
        start_service: Any) -> None:
    """Two instances backfilling the same CEL at once: every call once, numbers gap-free."""
    rows = [row for scenario in SCENARIOS for row in cel_rows(scenario)]
    expected = sum(load_meta(s)["expected_journal_requests"] for s in SCENARIOS)
    cel_url, table = await make_cel(db_url, tmp_path, rows)
    harness = await start_service(make_settings(ami_host=None))
    services = harness.services
    sources = [CelSource(cel_url, table=table) for _ in range(3)]
    try:
        backfills = [CelBackfill(src, Intake(services.db, services.outbox,
                                             pbx_id=services.settings.pbx_id),
                                 routing_of(services.settings)) for src in sources]
        reports = await asyncio.gather(*(b.run(since=LONG_AGO) for b in backfills))
    finally:
        for src in sources:
            await src.close()
    assert await request_numbers(services) == list(range(1, expected + 1))
    assert sum(len(r.created) for r in reports) >= expected


async def test_a_call_the_journal_has_open_gets_its_missing_facts(
        db_url: tuple[str, str | None], tmp_path: Path, make_settings: Any,
        start_service: Any, replay_peer: Any) -> None:
    """The service saw a call start, then went blind until after it ended: CEL fills the
    answers, the transfer and the end into the same request (no second one)."""
    scenario = next(s for s in SCENARIOS if s.name.startswith("s04"))
    meta = load_meta(scenario)
    from tests.conftest import trace_items

    items = trace_items(scenario)
    # Only up to the first answer (101), then the link is gone for good.
    cut = next(i for i, item in enumerate(items) if item.header("Event") == "BridgeEnter")
    peer = await replay_peer(items[:cut])
    settings = make_settings(ami_port=peer.port, recordings_dir=scenario / "recordings",
                             **service_env(meta))
    harness = await start_service(settings, http=True)
    await peer.done.wait()
    await wait_for(lambda: harness.services.intake.committed_events > 0)
    await harness.services.drain()
    await peer.close()
    async with harness.services.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Request)) == 1
    cel_url, table = await make_cel(db_url, tmp_path, cel_rows(scenario))
    source = CelSource(cel_url, table=table)
    try:
        backfill = CelBackfill(source, harness.services.intake,
                               routing_of(harness.services.settings))
        report = await backfill.run(since=LONG_AGO)
    finally:
        await source.close()
    await harness.services.drain()
    assert report.created == [] and len(report.filled) == 1
    await create_user(harness.services, "admin", "admin")
    token = await login(harness, "admin")
    async with harness.http.get(harness.url("/api/v1/requests/1"),
                                headers=bearer(token)) as resp:
        detail = await resp.json()
    (expected,) = expected_hotline_calls(meta)
    (call,) = detail["calls"]
    assert detail["source"] == "ami"
    assert call["ended_at"] is not None and call["outcome"] == expected["outcome"]
    # (a replay's live times are today's, CEL's the recording day's: compare who, not when)
    answered = sorted(leg["extension"] for leg in call["legs"] if leg["answered_at"])
    assert answered == sorted(expected["answered_by"])
    assert call["operator"] == expected["answered_by"][0]
    assert [(t["kind"], t["from"], t["to"]) for t in call["transfers"]] == [
        (t["kind"], t["from"], t["to"]) for t in expected["transfers"]]
    async with harness.services.db.session() as session:
        answered_entries = await session.scalar(
            select(func.count()).select_from(CallLogEntry)
            .where(CallLogEntry.type == "answered"))
    assert answered_entries == 2  # 101 once (live), 201 once (CEL)


async def test_mark_moves_on_and_waits_for_a_call_in_progress(
        db_url: tuple[str, str | None], tmp_path: Path, make_settings: Any,
        start_service: Any) -> None:
    scenario = next(s for s in SCENARIOS if s.name.startswith("s01"))
    rows = cel_rows(scenario)
    hangup = next(i for i, r in enumerate(rows)
                  if r["eventtype"] == "HANGUP" and r["uniqueid"] == r["linkedid"])
    cel_url, table = await make_cel(db_url, tmp_path, rows[:hangup])
    harness = await start_service(make_settings(ami_host=None))
    services = harness.services
    source = CelSource(cel_url, table=table)
    try:
        now = datetime(2026, 11, 25, 12, tzinfo=UTC)
        backfill = CelBackfill(source, services.intake, routing_of(services.settings),
                               lookback=timedelta(days=2))
        first = await backfill.run(now=now)
        assert first.created == [] and first.in_progress == 1
        start = datetime.fromisoformat(rows[0]["eventtime"]).replace(tzinfo=UTC)
        assert await backfill.mark() == start  # kept before the unfinished call
        await build_cel_db(cel_url, rows[hangup:], schema=table.rpartition(".")[0] or None)
        second = await backfill.run(now=now)
        assert len(second.created) == 1
        last = datetime.fromisoformat(rows[-1]["eventtime"]).replace(tzinfo=UTC)
        assert await backfill.mark() == last
        for later in (now, now + timedelta(hours=1)):  # quiet runs: the mark stays put
            quiet = await backfill.run(now=later)
            assert quiet.created == [] and await backfill.mark() == last
    finally:
        await source.close()
    await services.drain()
    assert await request_numbers(services) == [1]


async def test_hostile_cel_values_still_make_the_request(
        db_url: tuple[str, str | None], tmp_path: Path, make_settings: Any,
        start_service: Any) -> None:
    """A 60-character caller with an RTL override (and a NUL where the column can hold one),
    an unreadable row and a row without uniqueid: the request exists, the bad rows are skipped
    and counted, the rest of the call is intact."""
    scenario = next(s for s in SCENARIOS if s.name.startswith("s04"))
    meta = load_meta(scenario)
    sqlite = db_url[1] is None
    hostile = "\u202e+7916" + "1" * 55 + ("\x00" if sqlite else "")
    rows = []
    for row in cel_rows(scenario):
        row = dict(row)
        if row["cid_num"] == "+79161234567":
            row["cid_num"] = hostile
        rows.append(row)
    broken = dict(rows[1], uniqueid="")
    rows.insert(2, broken)
    if sqlite:  # a timestamp column cannot hold this
        rows.insert(3, dict(rows[1], eventtime="yesterday-ish"))
    cel_url, table = await make_cel(db_url, tmp_path, rows)
    harness = await start_service(make_settings(ami_host=None, **service_env(meta)))
    services = harness.services
    source = CelSource(cel_url, table=table)
    try:
        backfill = CelBackfill(source, services.intake, routing_of(services.settings))
        report = await backfill.run(since=LONG_AGO)
        assert source.bad_rows == (2 if sqlite else 1)
    finally:
        await source.close()
    await services.drain()
    assert len(report.created) == 1
    async with services.db.session() as session:
        (request,) = (await session.scalars(select(Request))).all()
    assert request.source == "cel"
    assert request.caller_number == hostile.replace("\x00", "")[:40]
    assert request.operator == "101" and request.level == "2"


async def test_backfill_runs_at_start_and_after_every_ami_login(
        db_url: tuple[str, str | None], tmp_path: Path, make_settings: Any,
        start_service: Any, replay_peer: Any) -> None:
    from tests.conftest import trace_items

    scenario = next(s for s in SCENARIOS if s.name.startswith("s01"))
    meta = load_meta(scenario)
    cel_url, table = await make_cel(db_url, tmp_path, cel_rows(scenario))
    peer = await replay_peer(trace_items(scenario))
    settings = make_settings(ami_port=peer.port, recordings_dir=scenario / "recordings",
                             cel_url=cel_url, cel_table=table, cel_interval_s=3600,
                             cel_lookback_h=TEN_YEARS_H, **service_env(meta))
    harness = await start_service(settings)
    services = harness.services
    await peer.done.wait()
    await harness.wait_calls_done()
    assert services.backfill is not None
    await wait_for(lambda: services.backfill.runs >= 2)  # at start, then after the login
    await services.drain()
    assert await request_numbers(services) == [1]
    health = services.health()["cel"]
    assert health["state"] == "ok" and health["runs"] >= 2


async def test_rows_of_a_call_include_its_channels_rows_under_another_linkedid(
        db_url: tuple[str, str | None], tmp_path: Path) -> None:
    """Asked for the main call's Linkedid alone (the consultation's rows fell before the
    window), the reader still brings the rows the joined channels wrote under the
    consultation's Linkedid, and the call is rebuilt with its transfer to the SMO."""
    from config import load_settings
    from journal.backfill import rebuild

    scenario = next(s for s in SCENARIOS if s.name.startswith("s13"))
    rows = cel_rows(scenario)
    main = rows[0]["linkedid"]
    cel_url, table = await make_cel(db_url, tmp_path, rows)
    source = CelSource(cel_url, table=table)
    try:
        found = await source.rows_of([main])
    finally:
        await source.close()
    assert len(found) == len(rows)  # each row once
    settings = load_settings(**service_env(load_meta(scenario)))
    (call,) = rebuild(found, routing_of(settings))
    (transfer,) = [e for e in call.events if type(e).__name__ == "CallTransferred"]
    assert (transfer.to, transfer.target) == ("88001002030", "smo")  # type: ignore[union-attr]


async def test_a_call_closed_by_reconciliation_learns_what_happened_while_blind(
        db_url: tuple[str, str | None], tmp_path: Path, make_settings: Any,
        start_service: Any) -> None:
    """The link was cut after 101 answered (s04); at reconnect CoreShowChannels showed the
    call gone and the live path closed it ("reconciled"). CEL has the blind transfer to level 2
    and 201's answer: they are added to the same request, once, the journal's end kept."""
    from config import load_settings
    from journal.backfill import rebuild
    from journal.models import Call, Transfer
    from telephony.callevents import CallAnswered, CallEnded

    scenario = next(s for s in SCENARIOS if s.name.startswith("s04"))
    meta = load_meta(scenario)
    rows = cel_rows(scenario)
    cel_url, table = await make_cel(db_url, tmp_path, rows)
    harness = await start_service(make_settings(ami_host=None, **service_env(meta)))
    services = harness.services
    source = CelSource(cel_url, table=table)
    try:
        (call,) = rebuild(await source.rows_of([rows[0]["linkedid"]]),
                          routing_of(load_settings(**service_env(meta))))
        first = next(i for i, e in enumerate(call.events) if isinstance(e, CallAnswered))
        seen = list(call.events[:first + 1])
        closed_at = seen[-1].at + timedelta(seconds=30)
        await services.intake.apply(
            [*seen, CallEnded(call.linkedid, "answered", "reconciled", closed_at)])
        backfill = CelBackfill(source, services.intake, routing_of(services.settings))
        report = await backfill.run(since=LONG_AGO)
        again = await backfill.run(since=LONG_AGO)
    finally:
        await source.close()
    await services.drain()
    assert report.created == [] and report.filled == [call.linkedid]
    assert again.filled == [] and again.known == 1
    async with services.db.session() as session:
        stored = (await session.scalars(select(Call))).one()
        transfers = (await session.scalars(select(Transfer))).all()
        request = (await session.scalars(select(Request))).one()
        answered = await session.scalar(
            select(func.count()).select_from(CallLogEntry)
            .where(CallLogEntry.type == "answered"))
    assert [(t.kind, t.from_extension, t.to, t.target) for t in transfers] == [
        ("blind", "101", "7001", "l2")]
    assert answered == 2  # 101 (live), 201 (CEL)
    assert stored.end_reason == "reconciled" and stored.operator == "101"
    assert (request.level, request.status, request.source) == ("2", "transferred", "ami")


async def test_a_call_reconciled_as_abandoned_that_was_answered_becomes_answered(
        db_url: tuple[str, str | None], tmp_path: Path, make_settings: Any,
        start_service: Any) -> None:
    from config import load_settings
    from journal.backfill import rebuild
    from journal.models import Call
    from telephony.callevents import CallEnded, CallStarted

    scenario = next(s for s in SCENARIOS if s.name.startswith("s01"))
    meta = load_meta(scenario)
    rows = cel_rows(scenario)
    cel_url, table = await make_cel(db_url, tmp_path, rows)
    harness = await start_service(make_settings(ami_host=None, **service_env(meta)))
    services = harness.services
    source = CelSource(cel_url, table=table)
    try:
        (call,) = rebuild(await source.rows_of([rows[0]["linkedid"]]),
                          routing_of(load_settings(**service_env(meta))))
        started = call.events[0]
        assert isinstance(started, CallStarted)
        await services.intake.apply([started, CallEnded(call.linkedid, "abandoned",
                                                        "reconciled", started.at)])
        report = await CelBackfill(source, services.intake,
                                   routing_of(services.settings)).run(since=LONG_AGO)
    finally:
        await source.close()
    await services.drain()
    assert report.filled == [call.linkedid]
    async with services.db.session() as session:
        stored = (await session.scalars(select(Call))).one()
        request = (await session.scalars(select(Request))).one()
    assert (stored.outcome, stored.operator) == ("answered", "101")
    assert (request.outcome, request.operator) == ("answered", "101")


async def test_a_call_that_just_ended_is_left_to_the_live_path(
        db_url: tuple[str, str | None], tmp_path: Path, make_settings: Any,
        start_service: Any) -> None:
    scenario = next(s for s in SCENARIOS if s.name.startswith("s01"))
    rows = cel_rows(scenario)
    cel_url, table = await make_cel(db_url, tmp_path, rows)
    harness = await start_service(make_settings(ami_host=None))
    services = harness.services
    ended = datetime.fromisoformat(rows[-1]["eventtime"]).replace(tzinfo=UTC)
    source = CelSource(cel_url, table=table)
    try:
        backfill = CelBackfill(source, services.intake, routing_of(services.settings),
                               lookback=timedelta(days=1))
        early = await backfill.run(now=ended + timedelta(seconds=10))
        assert early.created == [] and early.in_progress == 1
        later = await backfill.run(now=ended + timedelta(seconds=61))
        assert len(later.created) == 1
    finally:
        await source.close()
