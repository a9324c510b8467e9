"""HTTP routes of the analytical reports (regulation §36-38): each report on screen (JSON),
as CSV and XLSX; the quarterly workbook; the register of requests, its files streamed.

Administrator and auditor see the whole journal (``smo`` narrows to one SMO); an SMO user
its own SMO's slice (journal.access decides). Every report read is audited.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

from hotline.web.api import MAX_LIMIT, _int_param, status_and_level
from hotline.web.auth import current_user, remote_of
from hotline.web.context import SERVICES
from hotline.web.errors import ApiError
from journal import register
from journal.access import report_slice
from journal.analytics import REPORTS, Scope, run
from journal.queries import RequestFilter
from journal.report_files import (
    csv_line,
    period_title,
    report_csv,
    report_xlsx,
    workbook_xlsx,
    xlsx_row,
    xlsx_value,
)
from journal.reports import BadPeriod, Period, parse_period
from journal.users import Principal

BASE = "/api/v1/reports/"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
REGISTER = "register"
WORKBOOK = "quarterly.xlsx"
CHUNK = 64 * 1024


def _user(request: web.Request) -> Principal:
    """The signed-in user, if they read reports (journal.access decides: 403 otherwise)."""
    user = current_user(request)
    report_slice(user, None)
    return user


def _slice(request: web.Request, user: Principal) -> str | None:
    """The SMO the report covers: an SMO user's own, or what the administrator asked for."""
    return report_slice(user, request.query.get("smo"))


def _period(request: web.Request) -> Period:
    try:
        return parse_period(request.query.get("period", ""), _tz(request))
    except BadPeriod as exc:
        raise ApiError(400, "bad_parameter", str(exc)) from None


def _tz(request: web.Request) -> str:
    return request.app[SERVICES].settings.local_timezone


def _scope(request: web.Request) -> Scope:
    user = _user(request)
    services = request.app[SERVICES]
    smo = _slice(request, user)
    return Scope(_period(request), _tz(request), user, datetime.now(UTC),
                 services.db.engine.dialect.name, smo, dict(services.settings.smo_names))


async def _report(request: web.Request, key: str) -> dict[str, Any]:
    scope = _scope(request)
    services = request.app[SERVICES]
    async with services.db.session() as session:
        data = await run(session, key, scope)
    await services.audit_log.record(scope.user, "report", remote=remote_of(request),
                                    report=key, period=scope.period.label, smo=data["smo"])
    return data


def _fund(request: web.Request) -> str:
    return str(request.app[SERVICES].settings.fund_name)


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


def _report_handlers(key: str) -> tuple[Any, Any, Any]:
    async def as_json(request: web.Request) -> web.Response:
        return web.json_response(await _report(request, key))

    async def as_csv(request: web.Request) -> web.Response:
        data = await _report(request, key)
        return web.Response(body=report_csv(data, _fund(request)), content_type="text/csv",
                            charset="utf-8",
                            headers=_attachment(f"hotline-{key}-{data['period']}.csv"))

    async def as_xlsx(request: web.Request) -> web.Response:
        data = await _report(request, key)
        body = await asyncio.to_thread(report_xlsx, data, _fund(request))
        return web.Response(body=body, content_type=XLSX,
                            headers=_attachment(f"hotline-{key}-{data['period']}.xlsx"))

    return as_json, as_csv, as_xlsx


async def workbook(request: web.Request) -> web.Response:
    """The quarterly analytical material: every report, a sheet each."""
    scope = _scope(request)
    services = request.app[SERVICES]
    reports = []
    async with services.db.session() as session:
        for key in REPORTS:
            reports.append(await run(session, key, scope))
    await services.audit_log.record(scope.user, "report", remote=remote_of(request),
                                    report="workbook", period=scope.period.label)
    body = await asyncio.to_thread(workbook_xlsx, reports, _fund(request))
    return web.Response(body=body, content_type=XLSX,
                        headers=_attachment(f"hotline-{scope.period.label}.xlsx"))


# ------------------------------------------------------------------ register
def _register_filter(request: web.Request, period: Period, paged: bool) -> RequestFilter:
    status, level = status_and_level(request)
    return RequestFilter(
        caller=request.query.get("caller") or None, status=status, level=level,
        smo=_slice(request, current_user(request)),
        date_from=period.start, date_to=period.end,
        limit=_int_param(request, "limit", 50, 1, MAX_LIMIT) if paged else 0,
        offset=_int_param(request, "offset", 0, 0, 10**9) if paged else 0)


async def register_page(request: web.Request) -> web.Response:
    user = _user(request)
    period = _period(request)
    flt = _register_filter(request, period, paged=True)
    services = request.app[SERVICES]
    async with services.db.session() as session:
        items, total = await register.page(session, user, flt, _tz(request))
    await services.audit_log.record(user, "report", remote=remote_of(request),
                                    report=REGISTER, period=period.label)
    return web.json_response({
        "report": REGISTER, "title": "Реестр обращений", "period": period.label,
        "columns": [{"key": k, "title": t, "kind": kind} for k, t, kind in register.COLUMNS],
        "items": items, "total": total})


async def register_csv(request: web.Request) -> web.StreamResponse:
    """Streamed: rows go out as the cursor gives them."""
    user = _user(request)
    period = _period(request)
    flt = _register_filter(request, period, paged=False)
    services = request.app[SERVICES]
    await services.audit_log.record(user, "report", remote=remote_of(request),
                                    report=REGISTER, period=period.label, format="csv")
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        **_attachment(f"hotline-register-{period.label}.csv")})
    await response.prepare(request)
    await response.write("\ufeff".encode() + csv_line(
        [_fund(request), f"Реестр обращений: {period_title(period.label)}"]))
    await response.write(csv_line(title for _, title, _ in register.COLUMNS))
    keys = [key for key, _, _ in register.COLUMNS]
    async with services.db.session() as session:
        async for batch in register.stream(session, user, flt, _tz(request)):
            await response.write(b"".join(csv_line(row[k] for k in keys) for row in batch))
    await response.write_eof()
    return response


async def register_xlsx(request: web.Request) -> web.StreamResponse:
    """openpyxl's write-only mode keeps rows on disk, not in memory; the file is then sent in
    chunks."""
    user = _user(request)
    period = _period(request)
    flt = _register_filter(request, period, paged=False)
    services = request.app[SERVICES]
    await services.audit_log.record(user, "report", remote=remote_of(request),
                                    report=REGISTER, period=period.label, format="xlsx")
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Реестр")
    bold = Font(bold=True)
    keys = [key for key, _, _ in register.COLUMNS]

    def titled(values: list[Any]) -> list[Any]:
        cells = []
        for value in values:
            cell = WriteOnlyCell(sheet, value=xlsx_value(value))
            cell.font = bold
            cells.append(cell)
        return cells

    sheet.append(titled([_fund(request)]))
    sheet.append([f"Реестр обращений: {period_title(period.label)}"])
    sheet.append(titled([title for _, title, _ in register.COLUMNS]))

    def append(batch: list[dict[str, Any]]) -> None:
        for row in batch:
            sheet.append(xlsx_row(row[k] for k in keys))

    async with services.db.session() as session:
        async for batch in register.stream(session, user, flt, _tz(request)):
            await asyncio.to_thread(append, batch)
    handle, path = tempfile.mkstemp(suffix=".xlsx")
    os.close(handle)
    try:
        await asyncio.to_thread(book.save, path)
        response = web.StreamResponse(headers={
            "Content-Type": XLSX, **_attachment(f"hotline-register-{period.label}.xlsx")})
        response.content_length = os.path.getsize(path)
        await response.prepare(request)
        with open(path, "rb") as file:
            while chunk := await asyncio.to_thread(file.read, CHUNK):
                await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        os.unlink(path)


def attach(app: web.Application) -> None:
    # Files before the JSON twins: aiohttp matches routes in the order they were added.
    app.router.add_get(BASE + WORKBOOK, workbook)
    app.router.add_get(BASE + REGISTER + ".csv", register_csv)
    app.router.add_get(BASE + REGISTER + ".xlsx", register_xlsx)
    app.router.add_get(BASE + REGISTER, register_page)
    for key in REPORTS:
        as_json, as_csv, as_xlsx = _report_handlers(key)
        app.router.add_get(BASE + key + ".csv", as_csv)
        app.router.add_get(BASE + key + ".xlsx", as_xlsx)
        app.router.add_get(BASE + key, as_json)
