"""Monthly/quarterly analytics (regulation §36-38) on a journal built by replaying the recorded
traffic (answered on L1, abandoned in the queue, blind transfer to L2, attended transfer to
SMO1) plus fields filled in through the API; figures checked against hand counts, exports
reopened with csv/openpyxl."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import load_workbook

from journal.export import rows
from tests.test_workflow import call, get, journal_with

MSK = ZoneInfo("Europe/Moscow")
TRACES = ["s01-answered-l1", "s02-abandoned-queue", "s04-blind-transfer-l2",
          "s05-attended-transfer-smo"]


async def build(make_settings: Any, start_service: Any, replay_peer: Any,
                **settings: Any) -> Any:
    harness = await journal_with(TRACES, make_settings, start_service, replay_peer, **settings)
    for number, who, fields in ((1, "op101", {"kind": "консультация", "topic": "policy"}),
                                (3, "op201", {"kind": "жалоба", "topic": "care_quality"}),
                                (4, "smo1", {"kind": "жалоба", "topic": "care_quality"})):
        version = (await get(harness, number))["version"]
        status, data = await call(harness, "PATCH", f"/api/v1/requests/{number}", who,
                                  {"version": version, **fields})
        assert status == 200, data
    return harness


def periods_of(created_at: str) -> tuple[str, str, str]:
    """(month, quarter, previous month) holding a request, in Moscow time (the replay stamps
    events with the time they arrive, so the journal lives in the current month)."""
    local = datetime.fromisoformat(created_at).astimezone(MSK)
    previous = (local.replace(day=1) - timedelta(days=1))
    return (local.strftime("%Y-%m"), f"{local.year}-Q{(local.month - 1) // 3 + 1}",
            previous.strftime("%Y-%m"))


def cell(value: Any) -> Any:
    """A figure as a number (CSV gives text, XLSX ints for whole floats), labels as text."""
    if value is None or value == "":
        return ""
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def seconds(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


async def test_monthly_report_matches_hand_counted_journal(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await build(make_settings, start_service, replay_peer)
    month, quarter_label, previous_month = periods_of((await get(harness, 1))["created_at"])
    status, report = await call(harness, "GET", f"/api/v1/reports/summary?period={month}",
                                "auditor")
    assert status == 200, report
    requests = report["requests"]
    assert requests["total"] == 4
    assert requests["by_level"] == {"1": 2, "2": 1, "smo": 1}
    assert requests["by_smo"] == {"none": 3, "SMO1": 1}
    assert requests["by_kind"] == {"консультация": 1, "жалоба": 2, "none": 1}
    assert requests["by_topic"] == {"policy": 1, "care_quality": 2, "none": 1}
    assert requests["by_outcome"] == {"answered": 3, "abandoned": 1}
    assert requests["by_operator"] == {"101": 3, "none": 1}
    assert requests["by_status"] == {"new": 1, "in_progress": 1, "transferred": 2}
    calls = report["calls"]
    total = calls["total"]
    assert (total["offered"], total["answered"], total["abandoned"]) == (4, 3, 1)
    assert calls["by_line"]["88007070561"]["offered"] == 4
    # Waits and talk time counted by hand from each call's own timestamps.
    waits, talks, all_waits, hours = [], [], [], []
    for number in range(1, 5):
        (c,) = (await get(harness, number))["calls"]
        hours.append(datetime.fromisoformat(c["started_at"]).astimezone(MSK).strftime("%H"))
        joined = c["queued_at"] or c["started_at"]
        if c["answered_at"]:
            waits.append(seconds(joined, c["answered_at"]))
            talks.append(seconds(c["answered_at"], c["ended_at"]))
        all_waits.append(seconds(joined, c["answered_at"] or c["ended_at"]))
    assert total["answered_in_sl"] == sum(w <= 20 for w in waits)
    assert total["service_level"] == round(total["answered_in_sl"] / 4, 4)
    assert abs(total["avg_wait_s"] - sum(waits) / len(waits)) < 0.15
    assert abs(total["max_wait_s"] - max(all_waits)) < 0.15
    assert abs(total["talk_s"] - sum(talks)) < 0.15
    assert {h: v["offered"] for h, v in calls["by_hour"].items()} == \
        {h: hours.count(h) for h in set(hours)}
    # Another month is empty; the quarter holds the same; the SMO sees only its slice.
    status, october = await call(harness, "GET",
                                 f"/api/v1/reports/summary?period={previous_month}", "admin")
    assert october["requests"]["total"] == 0 and october["calls"]["total"]["offered"] == 0
    status, quarter = await call(harness, "GET",
                                 f"/api/v1/reports/summary?period={quarter_label}&compare=1",
                                 "admin")
    assert quarter["requests"]["total"] == 4
    year, q = quarter_label.split("-Q")
    assert quarter["previous"]["period"] == \
        (f"{year}-Q{int(q) - 1}" if q != "1" else f"{int(year) - 1}-Q4")
    assert quarter["change"]["requests_total"] == 4 and quarter["change"]["abandoned"] == 1
    status, slice_ = await call(harness, "GET", f"/api/v1/reports/summary?period={month}",
                                "smo1")
    assert slice_["smo"] == "SMO1" and slice_["requests"]["total"] == 1
    assert slice_["calls"]["total"]["offered"] == 1
    assert (await call(harness, "GET", f"/api/v1/reports/summary?period={month}", "op101"))[0] \
        == 403
    assert (await call(harness, "GET", "/api/v1/reports/summary?period=11.2026", "admin"))[0] \
        == 400


async def test_call_backs_done_on_time_are_counted(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await build(make_settings, start_service, replay_peer)
    due = datetime.now().astimezone() + timedelta(hours=2)
    await call(harness, "POST", "/api/v1/requests/2/defer", "op101",
               {"contact_phone": "84957776655", "due_at": due.isoformat()})
    await call(harness, "POST", "/api/v1/requests/1/defer", "op101",
               {"due_at": due.isoformat()})
    status, _ = await call(harness, "POST", "/api/v1/requests/2/callback/done", "op101", {})
    assert status == 200
    period = due.astimezone(MSK).strftime("%Y-%m")  # the fund's month, as reports count
    status, report = await call(harness, "GET", f"/api/v1/reports/summary?period={period}",
                                "admin")
    assert report["callbacks"] == {"due": 2, "done": 1, "done_on_time": 1, "overdue_open": 0}


async def test_csv_and_xlsx_exports_hold_the_same_numbers(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await build(make_settings, start_service, replay_peer)
    month = periods_of((await get(harness, 1))["created_at"])[0]
    query = f"?period={month}&compare=1"
    status, report = await call(harness, "GET", "/api/v1/reports/summary" + query, "admin")
    expected = [tuple(cell(v) for v in row) for row in rows(report)]
    status, raw = await call(harness, "GET", "/api/v1/reports/summary.csv" + query, "admin")
    assert status == 200
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    assert table[0][:2] == ["Период", month]
    assert [tuple(cell(v) for v in r) for r in table[2:]] == expected
    assert ("requests", "total", "", "total", 4.0) in expected
    status, raw = await call(harness, "GET", "/api/v1/reports/summary.xlsx" + query, "admin")
    assert status == 200
    sheet = load_workbook(io.BytesIO(raw)).active
    values = [tuple(cell(v) for v in r) for r in sheet.iter_rows(min_row=3, values_only=True)]
    assert values == expected
