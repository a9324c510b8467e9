"""The completeness proof on a fixture day built from the recorded traces: CEL's inbound 8-800
calls vs requests vs linked recordings, every mismatch listed, exit status 1 when missing."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from hotline.service import routing_of
from journal.completeness import check_day
from tests.cel_fixtures import cel_rows
from tests.conftest import REPO, load_meta, scenario_dirs
from tests.test_cel_backfill import LONG_AGO, make_cel, settle

SCENARIOS = scenario_dirs()


async def run_cli(env: dict[str, str], *argv: str) -> tuple[int, str]:
    """The command as cron runs it: its own process (it sets up logging for itself)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hotline.cli", *argv, cwd=REPO,
        env={**os.environ, **{f"HOTLINE_{k}": v for k, v in env.items()}},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, _err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode()


def day_of(scenario: Path) -> date:
    return datetime.fromisoformat(cel_rows(scenario)[0]["eventtime"]).date()


def origin_of(scenario: Path) -> str:
    return cel_rows(scenario)[0]["linkedid"]


async def test_completeness_on_a_fixture_day(db_url: tuple[str, str | None], tmp_path: Path,
                                             make_settings: Any, start_service: Any) -> None:
    calls_per_day = Counter[date]()
    for scenario in SCENARIOS:
        calls_per_day[day_of(scenario)] += load_meta(scenario)["expected_journal_requests"]
    day, other_day = sorted(calls_per_day)[:2]
    # The day's answered call whose file never reached the recordings folder.
    lost = next(s for s in SCENARIOS if day_of(s) == day
                and any(c.get("is_hotline") and c["outcome"] == "answered"
                        for c in load_meta(s)["calls"]))
    recordings = tmp_path / "recordings"
    for scenario in SCENARIOS:
        if scenario != lost and (scenario / "recordings").is_dir():
            shutil.copytree(scenario / "recordings", recordings, dirs_exist_ok=True)
    rows = [row for scenario in SCENARIOS for row in cel_rows(scenario)]
    cel_url, table = await make_cel(db_url, tmp_path, rows)
    settings = make_settings(ami_host=None, recordings_dir=recordings, cel_url=cel_url,
                             cel_table=table, cel_lookback_h=1.0,
                             recordings_missing_after_s=0.01)
    harness = await start_service(settings)
    services = harness.services
    assert services.backfill is not None
    routing = routing_of(settings)

    async def check(when: date) -> Any:
        assert services.backfill is not None
        return await check_day(services.backfill.source, services.db, routing,
                               pbx_id=settings.pbx_id, day=when)

    before = await check(day)
    assert before.cel_calls == calls_per_day[day]
    assert before.requests == 0 and not before.complete
    assert [m.kind for m in before.mismatches] == ["no_request"] * calls_per_day[day]

    await services.backfill.run(since=LONG_AGO)
    await settle(services)
    recordings_worker = services.recordings
    await recordings_worker.rescan()
    await settle(services)

    after = await check(day)
    assert after.cel_calls == after.requests == calls_per_day[day]
    assert [(m.kind, m.linkedid) for m in after.mismatches] == [
        ("no_recording", origin_of(lost))]
    assert after.mismatches[0].request_number is not None
    assert after.missing == 1 and not after.complete
    assert after.recordings_linked == calls_per_day[day] - 1

    whole = await check(other_day)
    assert whole.cel_calls == whole.requests == calls_per_day[other_day]
    assert whole.mismatches == [] and whole.complete
    assert whole.recordings_linked == calls_per_day[other_day]

    empty = await check(date(2020, 1, 1))
    assert (empty.cel_calls, empty.requests, empty.mismatches) == (0, 0, [])

    if db_url[1] is None:  # the command (its database URL has no test schema on PostgreSQL)
        env = {"DATABASE_URL": settings.database_url, "CEL_URL": cel_url, "CEL_TABLE": table,
               "RECORDINGS_DIR": str(recordings)}
        status, out = await run_cli(env, "audit", "completeness", "--date", day.isoformat())
        assert status == 1 and "нет записи разговора" in out and origin_of(lost) in out
        status, out = await run_cli(env, "audit", "completeness", "--date",
                                    other_day.isoformat())
        assert status == 0 and "полнота: да" in out
        assert (await run_cli(env, "audit", "completeness", "--date", "not-a-date"))[0] == 2


async def test_completeness_command_json(db_url: tuple[str, str | None], tmp_path: Path,
                                         make_settings: Any, start_service: Any) -> None:
    if db_url[1] is not None:
        pytest.skip("the command reads the journal without a test schema")
    scenario = next(s for s in SCENARIOS if s.name.startswith("s01"))
    cel_url, table = await make_cel(db_url, tmp_path, cel_rows(scenario))
    settings = make_settings(ami_host=None)
    harness = await start_service(settings)  # creates the schema
    await harness.services.stop()
    env = {"DATABASE_URL": settings.database_url, "CEL_URL": cel_url, "CEL_TABLE": table}
    status, out = await run_cli(env, "audit", "completeness", "--date",
                                day_of(scenario).isoformat(), "--json")
    assert status == 1
    report = json.loads(out)
    assert report["cel_calls"] == 1 and report["requests"] == 0 and report["missing"] == 1
    assert report["mismatches"][0]["kind"] == "no_request"
    assert report["mismatches"][0]["linkedid"] == origin_of(scenario)


async def test_completeness_api_card_data_and_metrics(
        db_url: tuple[str, str | None], tmp_path: Path, make_settings: Any,
        start_service: Any) -> None:
    from tests.helpers import bearer, create_user, login, wait_for

    scenario = next(s for s in SCENARIOS if s.name.startswith("s01"))
    cel_url, table = await make_cel(db_url, tmp_path, cel_rows(scenario))
    settings = make_settings(ami_host=None, recordings_dir=scenario / "recordings",
                             cel_url=cel_url, cel_table=table, cel_lookback_h=24 * 3650.0)
    harness = await start_service(settings, http=True)
    services = harness.services
    await wait_for(lambda: services.backfill.runs >= 1 and services.completeness_last)
    await settle(services)
    await create_user(services, "admin", "admin")
    await create_user(services, "op", "operator")
    admin, operator = await login(harness, "admin"), await login(harness, "op")
    url = harness.url(f"/api/v1/completeness?date={day_of(scenario).isoformat()}")
    async with harness.http.get(url, headers=bearer(admin)) as resp:
        assert resp.status == 200
        report = await resp.json()
    assert (report["cel_calls"], report["requests"], report["recordings_linked"]) == (1, 1, 1)
    assert report["complete"] is True and report["mismatches"] == []
    async with harness.http.get(url, headers=bearer(operator)) as resp:
        assert resp.status == 403
    async with harness.http.get(harness.url("/api/v1/completeness?date=25.11.2026"),
                                headers=bearer(admin)) as resp:
        assert resp.status == 400
    async with harness.http.get(harness.url("/api/v1/completeness"),
                                headers=bearer(admin)) as resp:
        assert resp.status == 200  # yesterday
    async with harness.http.get(harness.url("/metrics")) as resp:
        text = await resp.text()
    assert 'hotline_completeness_missing{day="yesterday"} 0' in text
    assert "hotline_cel_recovered_total 1" in text
    assert "hotline_cel_backfill_ok 1" in text


async def test_completeness_api_without_cel(make_settings: Any, start_service: Any) -> None:
    from tests.helpers import bearer, create_user, login

    harness = await start_service(make_settings(ami_host=None), http=True)
    await create_user(harness.services, "admin", "admin")
    token = await login(harness, "admin")
    async with harness.http.get(harness.url("/api/v1/completeness"),
                                headers=bearer(token)) as resp:
        assert resp.status == 409
        assert (await resp.json())["error"]["code"] == "cel_not_configured"
