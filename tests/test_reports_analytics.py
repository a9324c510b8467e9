"""The regulation's analytical reports (issue 15 item 2) on a journal built by replaying the
recorded traffic (tests/test_reports.build) plus workflow steps through the API: every
report's figures against hand counts, the comparison periods, the SMO's slice, CSV and XLSX
read back (same numbers, native charts), the quarterly workbook and the register."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from openpyxl import load_workbook
from sqlalchemy import select

from journal.analytics import REPORTS, Scope
from journal.models import Call, Request
from journal.report_files import period_title
from journal.reports import parse_period
from journal.users import Principal
from tests.test_reports import MSK, build, periods_of, seconds
from tests.test_workflow import call, get

FUND = "ТФОМС Московской области"


async def journal(make_settings: Any, start_service: Any, replay_peer: Any) -> Any:
    """The four replayed requests, then: request 3's complaint judged justified; request 1
    deferred and called back on time; request 4 urgent with measures; the missed call
    (request 2) called back and answered (an outbound call linked to it, as click-to-call
    records it)."""
    harness = await build(make_settings, start_service, replay_peer, fund_name=FUND)
    status, data = await call(harness, "PATCH", "/api/v1/requests/3", "admin",
                              {"complaint_justified": True})
    assert status == 200, data
    status, data = await call(harness, "PATCH", "/api/v1/requests/4", "admin",
                              {"urgent": True, "urgent_action": "Связались с поликлиникой"})
    assert status == 200, data
    due = datetime.now().astimezone() + timedelta(hours=2)
    status, data = await call(harness, "POST", "/api/v1/requests/1/defer", "op101",
                              {"due_at": due.isoformat()})
    assert status == 200, data
    status, data = await call(harness, "POST", "/api/v1/requests/1/callback/done", "op101", {})
    assert status == 200, data
    async with harness.services.db.session() as session:
        missed = await session.scalar(select(Request).where(Request.number == 2))
        assert missed is not None
        at = missed.created_at + timedelta(minutes=5)
        session.add(Call(request_id=missed.id, pbx_id="pbx1", linkedid="cb-1",
                         direction="outbound", caller_number=missed.caller_number,
                         line="", started_at=at, answered_at=at + timedelta(seconds=8),
                         ended_at=at + timedelta(seconds=60), outcome="answered",
                         operator="101"))
        await session.commit()
    return harness


def section(report: dict[str, Any], key: str) -> dict[str, Any]:
    (found,) = [s for s in report["sections"] if s["key"] == key]
    return found


def by_first(sec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    first = sec["columns"][0]["key"]
    return {row[first]: row for row in sec["rows"]}


async def report(harness: Any, key: str, period: str, who: str = "admin") -> dict[str, Any]:
    status, data = await call(harness, "GET", f"/api/v1/reports/{key}?period={period}", who)
    assert status == 200, (key, data)
    return data


async def test_every_report_matches_the_hand_counted_journal(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal(make_settings, start_service, replay_peer)
    created = (await get(harness, 1))["created_at"]
    month, quarter, previous = periods_of(created)
    day = datetime.fromisoformat(created).astimezone(MSK).strftime("%Y-%m-%d")  # the fund's day

    data = await report(harness, "by_period", month, "auditor")
    assert section(data, "by_period")["rows"] == [
        {"period": day, "requests": 4, "closed": 0, "complaints": 2, "urgent": 1, "missed": 1}]
    year_ago = f"{int(month[:4]) - 1}{month[4:]}"
    assert data["compare"] == {
        "previous": {"period": previous, "headline": {"requests": 0, "complaints": 0}},
        "year_ago": {"period": year_ago, "headline": {"requests": 0, "complaints": 0}}}
    quarterly = await report(harness, "by_period", quarter)
    assert [r["period"] for r in section(quarterly, "by_period")["rows"]] == [month]

    kinds = by_first(section(await report(harness, "by_kind", month), "by_kind"))
    assert {k: (r["count"], r["share"], r["closed"]) for k, r in kinds.items()} == {
        "консультация": (1, 0.25, 0), "жалоба": (2, 0.5, 0), "не указано": (1, 0.25, 0)}

    topics = section(await report(harness, "topic_kind", month), "topic_kind")
    care = by_first(topics)["Качество медицинской помощи"]
    assert (care["complaints"], care["complaints_justified"], care["complaints_unjustified"],
            care["total"]) == (2, 1, 0, 2)
    assert topics["totals"]["consultations"] == 1 and topics["totals"]["total"] == 4

    smo = section(await report(harness, "by_smo", month), "by_smo")
    assert [(r["smo"], r["handed_over"], r["answered"], r["overdue"]) for r in smo["rows"]] \
        == [("SMO1", 1, 0, 0)]

    operators = by_first(section(await report(harness, "by_operator", month), "by_operator"))
    op = operators["101"]
    assert (op["calls_answered"], op["cards"], op["answered_on_call"], op["to_l2"],
            op["to_smo"], op["redirected"], op["callbacks_done"], op["callbacks_overdue"]) \
        == (3, 3, 0, 1, 1, 0, 1, 0)

    # Service level counted by hand from each call's own timestamps.
    waits, abandoned_late, talks = [], 0, []
    for number in range(1, 5):
        c = (await get(harness, number))["calls"][0]
        joined = c["queued_at"] or c["started_at"]
        if c["answered_at"]:
            waits.append(seconds(joined, c["answered_at"]))
            talks.append(seconds(c["answered_at"], c["ended_at"]))
        elif seconds(joined, c["ended_at"]) > 20:
            abandoned_late += 1
    sl = await report(harness, "service_level", month)
    total = section(sl, "sl_by_line")["totals"]
    assert (total["offered"], total["answered"], total["abandoned"]) == (4, 3, 1)
    assert total["service_level"] == round(sum(w <= 20 for w in waits)
                                           / (len(waits) + abandoned_late), 4)
    assert abs(total["asa_s"] - sum(waits) / len(waits)) < 0.15
    assert abs(total["talk_s"] - sum(talks)) < 0.15
    assert by_first(section(sl, "sl_by_queue"))["l1-operators"]["offered"] == 4
    assert sum(r["offered"] for r in section(sl, "sl_by_hour")["rows"]) == 4

    missed = section(await report(harness, "missed", month), "missed")
    assert missed["totals"] == {"day": "Итого", "missed": 1, "called_back": 1, "reached": 1,
                                "settled_by_caller": 0, "open": 0}

    deferred = await report(harness, "deferred_urgent", month)
    assert [r["value"] for r in section(deferred, "deferred")["rows"]] == [1, 1, 1, 0, 0]
    assert [r["value"] for r in section(deferred, "urgent")["rows"]][:2] == [1, 1]

    # The SMO's slice: only the request handed to it (and its call).
    assert section(await report(harness, "by_kind", month, "smo1"), "by_kind")["totals"][
        "count"] == 1
    sl_smo = section(await report(harness, "service_level", month, "smo1"), "sl_by_line")
    assert sl_smo["totals"]["offered"] == 1
    assert section(await report(harness, "missed", month, "smo1"), "missed")["rows"] == []
    assert (await call(harness, "GET", f"/api/v1/reports/by_kind?period={month}",
                       "op101"))[0] == 403
    assert (await call(harness, "GET", "/api/v1/reports/by_kind?period=12.2026",
                       "admin"))[0] == 400


def charts(sheet: Any) -> list[Any]:
    """The charts openpyxl found on a sheet it loaded (no public accessor)."""
    return list(sheet._charts)


def cell(value: Any) -> Any:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


async def test_files_hold_the_screens_numbers_with_charts(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal(make_settings, start_service, replay_peer)
    month = periods_of((await get(harness, 1))["created_at"])[0]
    data = await report(harness, "by_kind", month)
    rows = section(data, "by_kind")["rows"]
    keys = [c["key"] for c in section(data, "by_kind")["columns"]]
    expected = [[cell(r[k]) for k in keys] for r in rows]

    status, raw = await call(harness, "GET", f"/api/v1/reports/by_kind.csv?period={month}",
                             "admin")
    assert status == 200
    table = [[cell(v) for v in line] for line in
             csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";")]
    assert table[0][0] == FUND and period_title(month) in table[2][0]
    start = table.index([cell(c["title"]) for c in section(data, "by_kind")["columns"]]) + 1
    assert table[start:start + len(rows)] == expected
    assert table[start + len(rows)][:2] == ["Итого", 4.0]

    status, raw = await call(harness, "GET", f"/api/v1/reports/by_kind.xlsx?period={month}",
                             "admin")
    assert status == 200
    sheet = load_workbook(io.BytesIO(raw)).worksheets[0]
    values = [[cell(v) for v in r] for r in sheet.iter_rows(values_only=True)]
    assert values[0][0] == FUND
    first = values.index([cell(c["title"]) for c in section(data, "by_kind")["columns"]]) + 1
    assert [v[:len(keys)] for v in values[first:first + len(rows)]] == expected
    assert len(charts(sheet)) == 1  # a native Excel chart, as openpyxl reads it back

    status, raw = await call(harness, "GET", f"/api/v1/reports/quarterly.xlsx?period={month}",
                             "auditor")
    assert status == 200
    book = load_workbook(io.BytesIO(raw))
    assert len(book.worksheets) == 8
    for sheet in book.worksheets:
        assert sheet["A1"].value == FUND
        assert period_title(month) in sheet["A3"].value
        assert charts(sheet), sheet.title  # every report has at least one chart
    missed = book["Пропущенные звонки и перезвоны"]
    row = [r for r in missed.iter_rows(values_only=True) if r[0] == "Итого"][-1]
    assert row[1:6] == (1, 1, 1, 0, 0)


async def test_register_pages_and_streams_every_row(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal(make_settings, start_service, replay_peer)
    month = periods_of((await get(harness, 1))["created_at"])[0]
    status, page = await call(harness, "GET",
                              f"/api/v1/reports/register?period={month}&limit=2", "admin")
    assert status == 200 and page["total"] == 4
    assert [r["number"] for r in page["items"]] == [1, 2]
    status, page = await call(harness, "GET",
                              f"/api/v1/reports/register?period={month}&level=2", "admin")
    assert [r["number"] for r in page["items"]] == [3]
    status, raw = await call(harness, "GET", f"/api/v1/reports/register.csv?period={month}",
                             "admin")
    assert status == 200
    lines = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    assert lines[0][0] == FUND and lines[1][0] == "Номер"
    assert [line[0] for line in lines[2:]] == ["1", "2", "3", "4"]
    assert lines[4][lines[1].index("Жалоба обоснована")] == "да"
    status, raw = await call(harness, "GET", f"/api/v1/reports/register.xlsx?period={month}",
                             "smo1")
    assert status == 200
    sheet = load_workbook(io.BytesIO(raw)).worksheets[0]
    numbers = [r[0] for r in sheet.iter_rows(min_row=4, values_only=True)]
    assert numbers == [4]  # the SMO's own slice


async def test_a_comparison_periods_headline_is_the_full_reports_headline(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    """Comparison periods compute only their headline figures (cheaper queries): the same
    figures as the report for that period in full."""
    harness = await journal(make_settings, start_service, replay_peer)
    month, quarter, _ = periods_of((await get(harness, 1))["created_at"])
    db = harness.services.db
    tz = harness.services.settings.local_timezone
    for label in (month, quarter):
        for who in (Principal(id=0, login="a", role="auditor", smo=None, extension=None),
                    Principal(id=0, login="s", role="smo", smo="SMO1", extension=None)):
            scope = Scope(parse_period(label, tz), tz, who, datetime.now(UTC),
                          db.engine.dialect.name)
            for key, (_, fn) in REPORTS.items():
                async with db.session() as session:
                    full = await fn(session, scope)
                    cheap = await fn(session, scope.for_period(scope.period))
                assert cheap.headline == full.headline, (label, who.role, key)
