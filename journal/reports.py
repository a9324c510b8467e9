"""Monthly and quarterly analytics of the journal (regulation §36-38).

Everything is counted by the database (GROUP BY over the period's index range); Python only
reshapes the aggregated rows. Periods are calendar months/quarters in the fund's local time.
An SMO user's report is that SMO's slice (requests routed to it and their calls).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Integer,
    and_,
    case,
    cast,
    func,
    literal,
    select,
    text,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from journal.models import Call, Request

SERVICE_LEVEL_S = 20  # answered within 20 s of joining the queue
NONE_KEY = "none"
REQUEST_DIMENSIONS: dict[str, Any] = {
    "by_kind": Request.kind, "by_topic": Request.topic, "by_level": Request.level,
    "by_smo": Request.smo, "by_status": Request.status, "by_outcome": Request.outcome,
    "by_operator": Request.operator, "by_redirect": Request.redirected_to,
}
_PERIOD = re.compile(r"^([0-9]{4})-(?:(0[1-9]|1[0-2])|Q([1-4]))\Z")
# Years a report may cover (the previous period of the first one, for comparison, is refused).
YEARS = range(1900, 3000)


class BadPeriod(ValueError):
    """The period is not YYYY-MM or YYYY-Qn."""


@dataclass(frozen=True, slots=True)
class Period:
    label: str
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive
    year: int
    first_month: int
    months: int

    def previous(self, tz: str) -> Period:
        """The period before this one (BadPeriod before the first reportable year)."""
        month = self.first_month - self.months
        year = self.year
        if month < 1:
            month += 12
            year -= 1
        if self.months == 1:
            return parse_period(f"{year}-{month:02d}", tz)
        return parse_period(f"{year}-Q{(month - 1) // 3 + 1}", tz)

    def year_ago(self, tz: str) -> Period:
        """The same period a year earlier (BadPeriod before the first reportable year)."""
        return parse_period(f"{self.year - 1}{self.label[4:]}", tz)


def parse_period(text: str, tz: str) -> Period:
    """``YYYY-MM`` or ``YYYY-Qn`` (ASCII digits) in the fund's time zone."""
    match = _PERIOD.match(text or "")
    if not match:
        raise BadPeriod("Период: ГГГГ-ММ (месяц) или ГГГГ-QN (квартал), например 2026-11, 2026-Q4")
    year = int(match.group(1))
    if year not in YEARS:
        raise BadPeriod(f"Год периода: от {YEARS.start} до {YEARS.stop - 1}")
    if match.group(2):
        first, months = int(match.group(2)), 1
    else:
        first, months = (int(match.group(3)) - 1) * 3 + 1, 3
    zone = ZoneInfo(tz)
    end_month = first + months
    end_year = year + (end_month > 12)
    end_month = end_month - 12 if end_month > 12 else end_month
    start = datetime(year, first, 1, tzinfo=zone).astimezone(UTC)
    end = datetime(end_year, end_month, 1, tzinfo=zone).astimezone(UTC)
    return Period(text, start, end, year, first, months)


def epoch_s(column: Any, dialect: str) -> ColumnElement[Any]:
    if dialect == "sqlite":
        return func.julianday(column) * 86400.0
    return func.extract("epoch", column)


def local_hour(column: Any, dialect: str, tz: str, at: datetime) -> ColumnElement[Any]:
    if dialect == "sqlite":
        # SQLite keeps UTC wall time; shift by the zone's offset in the period.
        offset = ZoneInfo(tz).utcoffset(at.replace(tzinfo=None))
        minutes = int(offset.total_seconds() // 60) if offset else 0
        return cast(func.strftime("%H", column, f"{minutes:+d} minutes"), Integer())
    return cast(func.extract("hour", func.timezone(tz, column)), Integer())


async def without_jit(session: AsyncSession) -> None:
    """PostgreSQL: no JIT for the rest of this transaction. A report's queries cost enough
    for the planner to JIT-compile them, and compiling took longer than the scans themselves
    (bench/reports, 1M requests: the missed-calls query 3.1 s with JIT, 1.2 s without)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SET LOCAL jit = off"))


async def summary(session: AsyncSession, period: Period, *, tz: str, smo: str | None = None,
                  compare: bool = False, now: datetime | None = None) -> dict[str, Any]:
    """The period's figures; with ``compare`` also the previous period and the change."""
    dialect = session.get_bind().dialect.name
    await without_jit(session)
    now = now or datetime.now(UTC)
    data: dict[str, Any] = {
        "period": period.label, "from": period.start.isoformat(), "to": period.end.isoformat(),
        "smo": smo,
        "requests": await _requests(session, period, smo),
        "calls": await _calls(session, period, smo, dialect, tz),
        "callbacks": await _callbacks(session, period, smo, now),
    }
    if compare:
        previous = await summary(session, period.previous(tz), tz=tz, smo=smo, now=now)
        data["previous"] = previous
        data["change"] = _change(data, previous)
    return data


def _request_scope(period: Period, smo: str | None) -> list[ColumnElement[bool]]:
    conditions = [Request.created_at >= period.start, Request.created_at < period.end]
    if smo is not None:
        conditions += [Request.level == "smo", Request.smo == smo]
    return conditions


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


async def _requests(session: AsyncSession, period: Period, smo: str | None) -> dict[str, Any]:
    scope = _request_scope(period, smo)
    totals = (await session.execute(select(
        func.count(), _flag(Request.corruption.is_(True)), _flag(Request.urgent.is_(True)),
        _flag(Request.written_appeal_advised.is_(True)), _flag(Request.typical.is_(True)),
        _flag(Request.closed_at.is_not(None)), _flag(Request.deferred_due_at.is_not(None)),
        _flag(Request.corrects_number.is_not(None)),
    ).where(*scope))).one()
    names = ("total", "corruption", "urgent", "written_appeal_advised", "typical", "closed",
             "deferred", "corrections")
    result: dict[str, Any] = {name: int(value or 0) for name, value in zip(names, totals,
                                                                        strict=True)}
    for name in REQUEST_DIMENSIONS:
        result[name] = {}
    for dim, key, count in await _dimension_counts(session, scope):
        result[dim][NONE_KEY if key is None else str(key)] = int(count)
    return result


async def _dimension_counts(session: AsyncSession,
                            scope: list[ColumnElement[bool]]) -> list[tuple[str, Any, int]]:
    """(dimension, value, count) for every dimension of REQUEST_DIMENSIONS."""
    names = list(REQUEST_DIMENSIONS)
    columns = list(REQUEST_DIMENSIONS.values())
    if session.get_bind().dialect.name == "postgresql":
        # One scan of the period: GROUPING SETS, grouping() tells which dimension a row is.
        rows = await session.execute(
            select(*columns, *(func.grouping(c) for c in columns), func.count())
            .where(*scope).group_by(func.grouping_sets(*columns)))
        found = []
        width = len(columns)
        for row in rows:
            index = list(row[width:2 * width]).index(0)
            found.append((names[index], row[index], int(row[-1])))
        return found
    # Elsewhere one round trip: a GROUP BY per dimension, glued with UNION ALL.
    parts = [select(literal(name).label("dim"), column.label("key"), func.count().label("n"))
             .where(*scope).group_by(column) for name, column in zip(names, columns,
                                                                     strict=True)]
    return [(d, k, int(n)) for d, k, n in await session.execute(union_all(*parts))]


@dataclass(frozen=True)
class CallTimings:
    """A call's waits and talk in seconds, as SQL: the one definition every report uses."""

    answered: ColumnElement[bool]
    answer_wait: ColumnElement[Any]  # joining the queue (or the call's start) → answer
    any_wait: ColumnElement[Any]  # joining → answer or, unanswered, the end
    talk: ColumnElement[Any]  # answer → end
    talked: ColumnElement[bool]  # answered and ended


def call_timings(dialect: str) -> CallTimings:
    joined = epoch_s(func.coalesce(Call.queued_at, Call.started_at), dialect)
    answered = Call.answered_at.is_not(None)
    return CallTimings(
        answered=answered,
        answer_wait=epoch_s(Call.answered_at, dialect) - joined,
        any_wait=epoch_s(func.coalesce(Call.answered_at, Call.ended_at), dialect) - joined,
        talk=epoch_s(Call.ended_at, dialect) - epoch_s(Call.answered_at, dialect),
        talked=answered & Call.ended_at.is_not(None))


def _call_metrics(dialect: str) -> list[ColumnElement[Any]]:
    t = call_timings(dialect)
    answered, answer_wait, any_wait, talk = t.answered, t.answer_wait, t.any_wait, t.talk
    return [
        func.count().label("offered"),
        _flag(answered).label("answered"),
        _flag(Call.outcome == "abandoned").label("abandoned"),
        _flag(and_(answered, answer_wait <= SERVICE_LEVEL_S)).label("answered_in_sl"),
        func.avg(case((answered, answer_wait))).label("avg_wait_s"),
        func.max(any_wait).label("max_wait_s"),
        func.coalesce(func.sum(case((t.talked, talk))), 0).label("talk_s"),
        func.avg(case((t.talked, talk))).label("avg_talk_s"),
    ]


_CALL_NAMES = ("offered", "answered", "abandoned", "answered_in_sl", "avg_wait_s", "max_wait_s",
               "talk_s", "avg_talk_s")


def _call_row(values: Any) -> dict[str, Any]:
    row = dict(zip(_CALL_NAMES, values, strict=True))
    for name in ("offered", "answered", "abandoned", "answered_in_sl"):
        row[name] = int(row[name] or 0)
    for name in ("avg_wait_s", "max_wait_s", "talk_s", "avg_talk_s"):
        row[name] = round(float(row[name]), 1) if row[name] is not None else None
    row["service_level"] = round(row["answered_in_sl"] / row["offered"], 4) \
        if row["offered"] else None
    return row


async def _calls(session: AsyncSession, period: Period, smo: str | None, dialect: str,
                 tz: str) -> dict[str, Any]:
    base = select(*_call_metrics(dialect)).where(
        Call.direction == "inbound", Call.started_at >= period.start,
        Call.started_at < period.end)
    if smo is not None:
        base = base.join(Request, Request.id == Call.request_id) \
            .where(Request.level == "smo", Request.smo == smo)
    total = _call_row((await session.execute(base)).one())
    line_rows = await session.execute(
        base.with_only_columns(Call.line, *_call_metrics(dialect)).group_by(Call.line))
    by_line = {str(values[0]): _call_row(values[1:]) for values in line_rows}
    hour = local_hour(Call.started_at, dialect, tz, period.start)
    by_hour = {f"{int(values[0]):02d}": _call_row(values[1:]) for values in await session.execute(
        base.with_only_columns(hour.label("hour"), *_call_metrics(dialect))
        .group_by(hour).order_by(hour))}
    outbound = select(func.count()).select_from(Call).where(
        Call.direction == "outbound", Call.started_at >= period.start,
        Call.started_at < period.end)
    if smo is not None:
        outbound = outbound.join(Request, Request.id == Call.request_id) \
            .where(Request.level == "smo", Request.smo == smo)
    return {"total": total, "by_line": by_line, "by_hour": by_hour,
            "outbound": int(await session.scalar(outbound) or 0)}


async def _callbacks(session: AsyncSession, period: Period, smo: str | None,
                     now: datetime) -> dict[str, int]:
    """Deferred answers due in the period: done, done on time, still open past due."""
    conditions = [Request.deferred_due_at >= period.start, Request.deferred_due_at < period.end]
    if smo is not None:
        conditions += [Request.level == "smo", Request.smo == smo]
    done = Request.deferred_done_at.is_not(None)
    row = (await session.execute(select(
        func.count(), _flag(done), _flag(done & (Request.deferred_done_at
                                                 <= Request.deferred_due_at)),
        _flag(~done & (Request.deferred_due_at < now)),
    ).where(*conditions))).one()
    due, done_n, on_time, overdue = (int(v or 0) for v in row)
    return {"due": due, "done": done_n, "done_on_time": on_time, "overdue_open": overdue}


def _change(current: dict[str, Any], previous: dict[str, Any]) -> dict[str, int]:
    pairs = {
        "requests_total": ("requests", "total"),
        "offered": ("calls", "total", "offered"),
        "answered": ("calls", "total", "answered"),
        "abandoned": ("calls", "total", "abandoned"),
        "callbacks_done": ("callbacks", "done"),
    }
    change: dict[str, int] = {}
    for name, path in pairs.items():
        a: Any = current
        b: Any = previous
        for key in path:
            a, b = a[key], b[key]
        change[name] = int(a) - int(b)
    return change
