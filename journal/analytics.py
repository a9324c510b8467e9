"""The regulation's analytical reports (§36-38): requests by period, kind, topic × kind, SMO,
operator; telephony service level; missed calls and their call-backs; deferred answers and
urgent interventions.

Each report is a function of (session, Scope) that returns a Report: titled sections of typed
columns, rows, a totals row and a few headline figures. The headline figures are what the
comparison with the previous period and the same period a year earlier shows. The database
counts (GROUP BY over the period's index range); Python only reshapes the aggregated rows.
Who sees what is journal.access's one clause (an SMO user gets its SMO's slice).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from journal.access import sees_everything, visible_clause
from journal.classifier import current_topics
from journal.models import Call, Request, UrgentContact, User
from journal.reports import (
    SERVICE_LEVEL_S,
    BadPeriod,
    Period,
    call_timings,
    epoch_s,
    local_hour,
    without_jit,
)
from journal.users import Principal

# Column kinds: how a figure is shown and formatted (screen, CSV, XLSX number formats).
TEXT, INT, PERCENT, SECONDS, DAYS, HOURS = "text", "int", "percent", "seconds", "days", "hours"
NONE_LABEL = "не указано"
ANSWERED_STATUSES = ("answered", "closed")
CREATED_MARGIN = timedelta(days=1)
KIND_COLUMNS = (("консультация", "consultations", "Консультации"),
                ("жалоба", "complaints", "Жалобы"),
                ("заявление", "applications", "Заявления"),
                ("предложение", "proposals", "Предложения"),
                ("не по ОМС", "not_oms", "Не по ОМС"))


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    title: str
    kind: str = INT


@dataclass(slots=True)
class Section:
    key: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, Any] | None = None
    chart: str | None = None  # the column a bar chart draws against the first column

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "title": self.title,
                "columns": [{"key": c.key, "title": c.title, "kind": c.kind}
                            for c in self.columns],
                "rows": self.rows, "totals": self.totals, "chart": self.chart}


@dataclass(slots=True)
class Report:
    key: str
    title: str
    sections: list[Section]
    headline: dict[str, Any]  # figure key -> value (compared across periods)


@dataclass(frozen=True, slots=True)
class Scope:
    """What a report counts: the period, who asks (access), an optional SMO filter."""

    period: Period
    tz: str
    user: Principal
    now: datetime
    dialect: str
    smo: str | None = None
    smo_names: dict[str, str] = field(default_factory=dict)
    # A comparison period: only the headline figures are needed (the cheap queries).
    headline_only: bool = False

    def requests(self) -> list[ColumnElement[bool]]:
        """Requests created in the period that the user may see."""
        conditions = [Request.created_at >= self.period.start,
                      Request.created_at < self.period.end, visible_clause(self.user)]
        if self.smo:
            conditions.append(Request.smo == self.smo)
        return conditions

    def narrowed(self) -> bool:
        """Whether calls must be joined to their requests to apply access or the SMO filter."""
        return bool(self.smo) or not sees_everything(self.user)

    def for_period(self, period: Period) -> Scope:
        """The same report for a comparison period (headline figures only)."""
        return Scope(period, self.tz, self.user, self.now, self.dialect, self.smo,
                     self.smo_names, headline_only=True)


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _int(value: Any) -> int:
    return int(value or 0)


def _fill_by_key(section: Section, rows: Iterable[Sequence[Any]]) -> dict[str, Any]:
    """Rows of (key, count, count, …) in the section's column order, and their sums as the
    totals row ("Итого" under the key column)."""
    key, names = section.columns[0].key, [c.key for c in section.columns[1:]]
    for values in rows:
        section.rows.append({key: str(values[0]),
                             **{n: _int(v) for n, v in zip(names, values[1:], strict=True)}})
    section.totals = totals = {key: "Итого",
                               **{n: sum(r[n] for r in section.rows) for n in names}}
    return totals


def _num(value: Any, digits: int = 1) -> float | None:
    return None if value is None else round(float(value), digits)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _label(value: Any) -> str:
    return NONE_LABEL if value in (None, "") else str(value)


def local_day(column: Any, scope: Scope) -> ColumnElement[str]:
    """The local calendar day (YYYY-MM-DD) of a timestamp in the fund's time zone."""
    if scope.dialect == "sqlite":
        offset = scope.period.start.astimezone(_zone(scope.tz)).utcoffset()
        minutes = int(offset.total_seconds() // 60) if offset else 0
        return func.strftime("%Y-%m-%d", column, f"{minutes:+d} minutes")
    return func.to_char(func.timezone(scope.tz, column), "YYYY-MM-DD")


def _zone(tz: str) -> Any:
    from zoneinfo import ZoneInfo
    return ZoneInfo(tz)


def _days(start: Any, end: Any, dialect: str) -> ColumnElement[Any]:
    return (epoch_s(end, dialect) - epoch_s(start, dialect)) / 86400.0


# ------------------------------------------------------------------ requests by period
async def by_period(session: AsyncSession, scope: Scope) -> Report:
    """Requests per local day (a month) or per local month (a quarter)."""
    if scope.headline_only:
        n, complaints = (await session.execute(
            select(func.count(), _flag(Request.kind == "жалоба")).where(*scope.requests()))).one()
        return Report("by_period", "Заявки по периодам", [],
                      {"requests": _int(n), "complaints": _int(complaints)})
    day = local_day(Request.created_at, scope)
    key = day if scope.period.months == 1 else func.substr(day, 1, 7)
    rows = await session.execute(
        select(key.label("k"), func.count(), _flag(Request.closed_at.is_not(None)),
               _flag(Request.kind == "жалоба"), _flag(Request.urgent.is_(True)),
               _flag(Request.outcome == "abandoned"))
        .where(*scope.requests()).group_by(key).order_by(key))
    columns = [Column("period", "День" if scope.period.months == 1 else "Месяц", TEXT),
               Column("requests", "Заявки"), Column("closed", "Закрыто"),
               Column("complaints", "Жалобы"), Column("urgent", "Срочные"),
               Column("missed", "Пропущенные звонки")]
    section = Section("by_period", "Заявки по периодам", columns, chart="requests")
    totals = _fill_by_key(section, rows)
    return Report("by_period", "Заявки по периодам", [section],
                  {"requests": totals["requests"], "complaints": totals["complaints"]})


# ------------------------------------------------------------------ by kind
async def by_kind(session: AsyncSession, scope: Scope) -> Report:
    closed = Request.closed_at.is_not(None)
    rows = await session.execute(
        select(Request.kind, func.count(), _flag(closed),
               func.avg(case((closed, _days(Request.created_at, Request.closed_at,
                                            scope.dialect)))))
        .where(*scope.requests()).group_by(Request.kind))
    found = {kind: (_int(n), _int(c), avg) for kind, n, c, avg in rows}
    total = sum(n for n, _, _ in found.values())
    columns = [Column("kind", "Вид обращения", TEXT), Column("count", "Количество"),
               Column("share", "Доля", PERCENT), Column("closed", "Закрыто"),
               Column("avg_days_to_close", "Ср. срок закрытия, дней", DAYS)]
    section = Section("by_kind", "Обращения по видам", columns, chart="count")
    order = [k for k, _, _ in KIND_COLUMNS] + sorted(k for k in found if k and k not in
                                                    {c[0] for c in KIND_COLUMNS})
    for kind in [*order, None]:
        if kind not in found:
            continue
        n, c, avg = found[kind]
        section.rows.append({"kind": _label(kind), "count": n, "share": _share(n, total),
                             "closed": c, "avg_days_to_close": _num(avg, 2)})
    closed_total = sum(c for _, c, _ in found.values())
    weighted = [(avg, c) for _, c, avg in found.values() if avg is not None and c]
    section.totals = {"kind": "Итого", "count": total, "share": 1.0 if total else None,
                      "closed": closed_total,
                      "avg_days_to_close": _num(sum(float(a) * c for a, c in weighted)
                                                / closed_total, 2) if weighted else None}
    return Report("by_kind", "Обращения по видам", [section],
                  {"requests": total, "closed": closed_total})


# ------------------------------------------------------------------ topic × kind
async def topic_kind(session: AsyncSession, scope: Scope) -> Report:
    """Topics × kinds; complaints split by the administrator's verdict (justified or not)."""
    rows = await session.execute(
        select(Request.topic, Request.kind, Request.complaint_justified, func.count())
        .where(*scope.requests())
        .group_by(Request.topic, Request.kind, Request.complaint_justified))
    columns = [Column("topic", "Тема", TEXT)]
    for _, key, title in KIND_COLUMNS:
        columns.append(Column(key, title))
        if key == "complaints":
            columns += [Column("complaints_justified", "в т.ч. обоснованные"),
                        Column("complaints_unjustified", "в т.ч. необоснованные")]
    columns += [Column("no_kind", "Вид не указан"), Column("total", "Всего")]
    kind_keys = {kind: key for kind, key, _ in KIND_COLUMNS}
    labels = {t.code: t.label for t in await current_topics(session, include_inactive=True)}
    table: dict[str, dict[str, Any]] = {}
    for topic, kind, justified, n in rows:
        label = labels.get(topic, _label(topic)) if topic else NONE_LABEL
        row = table.setdefault(label, {"topic": label, **{c.key: 0 for c in columns[1:]}})
        key = kind_keys.get(kind or "", "no_kind")
        row[key] += int(n)
        row["total"] += int(n)
        if key == "complaints" and justified is not None:
            row["complaints_justified" if justified else "complaints_unjustified"] += int(n)
    section = Section("topic_kind", "Темы обращений по видам", columns, chart="total")
    section.rows = sorted(table.values(), key=lambda r: (r["topic"] == NONE_LABEL,
                                                         -r["total"], r["topic"]))
    section.totals = {"topic": "Итого", **{c.key: sum(r[c.key] for r in section.rows)
                                          for c in columns[1:]}}
    return Report("topic_kind", "Темы обращений по видам", [section],
                  {"requests": section.totals["total"],
                   "complaints": section.totals["complaints"],
                   "complaints_justified": section.totals["complaints_justified"]})


# ------------------------------------------------------------------ by SMO
async def by_smo(session: AsyncSession, scope: Scope) -> Report:
    """Requests handed over to each SMO: answered, overdue (a deferred answer late or still
    owed past its due time), average time from registration to the answer."""
    answered_at = func.coalesce(Request.deferred_done_at, Request.closed_at)
    answered = Request.status.in_(ANSWERED_STATUSES)
    overdue = or_(and_(Request.deferred_done_at.is_(None), Request.deferred_due_at < scope.now),
                  Request.deferred_done_at > Request.deferred_due_at)
    rows = await session.execute(
        select(Request.smo, func.count(), _flag(answered), _flag(overdue),
               func.avg(case((answered & answered_at.is_not(None),
                              _days(Request.created_at, answered_at, scope.dialect) * 24))))
        .where(*scope.requests(), Request.level == "smo").group_by(Request.smo)
        .order_by(Request.smo))
    columns = [Column("smo", "СМО", TEXT), Column("handed_over", "Передано"),
               Column("answered", "Отвечено"), Column("overdue", "Просрочено"),
               Column("avg_hours_to_answer", "Ср. время ответа, ч", HOURS)]
    section = Section("by_smo", "Обращения, переданные в СМО", columns, chart="handed_over")
    weighted: list[tuple[float, int]] = []
    for smo, n, a, o, avg in rows:
        section.rows.append({"smo": scope.smo_names.get(smo or "", _label(smo)),
                             "handed_over": _int(n), "answered": _int(a), "overdue": _int(o),
                             "avg_hours_to_answer": _num(avg)})
        if avg is not None:
            weighted.append((float(avg), _int(a)))
    names = ("handed_over", "answered", "overdue")
    section.totals = {"smo": "Итого", **{n: sum(r[n] for r in section.rows) for n in names}}
    weight = sum(w for _, w in weighted)
    section.totals["avg_hours_to_answer"] = \
        _num(sum(a * w for a, w in weighted) / weight) if weight else None
    return Report("by_smo", "Обращения, переданные в СМО", [section],
                  {"handed_over": section.totals["handed_over"],
                   "overdue": section.totals["overdue"]})


# ------------------------------------------------------------------ by operator
async def by_operator(session: AsyncSession, scope: Scope) -> Report:
    """Per operator (extension): calls answered and talk time; cards registered and what
    became of them; call-backs (deferred answers due in the period) done and overdue."""
    if scope.headline_only:
        answered_calls = select(func.count()).select_from(Call).where(
            *_call_scope(scope), Call.answered_at.is_not(None), Call.operator.is_not(None))
        if scope.narrowed():
            answered_calls = answered_calls.join(Request, Request.id == Call.request_id) \
                .where(*_access(scope))
        registered = select(func.count()).select_from(Request).where(
            *scope.requests(), Request.operator.is_not(None))
        return Report("by_operator", "Работа операторов", [],
                      {"calls_answered": _int(await session.scalar(answered_calls)),
                       "cards": _int(await session.scalar(registered))})
    talk = epoch_s(Call.ended_at, scope.dialect) - epoch_s(Call.answered_at, scope.dialect)
    calls = select(Call.operator, func.count(),
                   func.avg(case((Call.ended_at.is_not(None), talk)))) \
        .where(*_call_scope(scope), Call.answered_at.is_not(None), Call.operator.is_not(None))
    if scope.narrowed():
        calls = calls.join(Request, Request.id == Call.request_id) \
            .where(*_access(scope))
    call_rows = {op: (_int(n), avg) for op, n, avg in
                 await session.execute(calls.group_by(Call.operator))}
    on_call = and_(Request.level == "1", Request.deferred_due_at.is_(None),
                   Request.redirected_to.is_(None), Request.status.in_(ANSWERED_STATUSES))
    card_rows = {op: tuple(_int(v) for v in values) for op, *values in await session.execute(
        select(Request.operator, func.count(), _flag(on_call), _flag(Request.level == "2"),
               _flag(Request.level == "smo"), _flag(Request.redirected_to.is_not(None)))
        .where(*scope.requests(), Request.operator.is_not(None)).group_by(Request.operator))}
    # Call-backs are owed by a user (login); the users table gives the extension.
    done = Request.deferred_done_at.is_not(None)
    callback_rows = {ext: (_int(d), _int(o)) for ext, d, o in await session.execute(
        select(User.extension, _flag(done),
               _flag(~done & (Request.deferred_due_at < scope.now)))
        .join(User, User.login == Request.deferred_by)
        .where(Request.deferred_due_at >= scope.period.start,
               Request.deferred_due_at < scope.period.end, visible_clause(scope.user),
               *([Request.smo == scope.smo] if scope.smo else []),
               User.extension.is_not(None))
        .group_by(User.extension))}
    names = dict((await session.execute(
        select(User.extension, func.max(func.coalesce(User.full_name, User.login)))
        .where(User.extension.is_not(None)).group_by(User.extension))).all())
    columns = [Column("operator", "Оператор (доб.)", TEXT), Column("name", "Ф. И. О.", TEXT),
               Column("calls_answered", "Принято звонков"),
               Column("cards", "Зарегистрировано карточек"),
               Column("answered_on_call", "Отвечено в ходе звонка"),
               Column("to_l2", "Передано на 2 уровень"), Column("to_smo", "Передано в СМО"),
               Column("redirected", "Переадресовано"),
               Column("avg_talk_s", "Ср. время разговора", SECONDS),
               Column("callbacks_done", "Перезвонов выполнено"),
               Column("callbacks_overdue", "Перезвонов просрочено")]
    section = Section("by_operator", "Работа операторов", columns, chart="calls_answered")
    talk_weighted: list[tuple[float, int]] = []
    for op in sorted(set(call_rows) | set(card_rows) | set(callback_rows),
                     key=lambda v: (len(str(v)), str(v))):
        n_calls, avg_talk = call_rows.get(op, (0, None))
        cards = card_rows.get(op, (0, 0, 0, 0, 0))
        cb = callback_rows.get(op, (0, 0))
        section.rows.append({
            "operator": op, "name": names.get(op) or "", "calls_answered": n_calls,
            "cards": cards[0], "answered_on_call": cards[1], "to_l2": cards[2],
            "to_smo": cards[3], "redirected": cards[4], "avg_talk_s": _num(avg_talk),
            "callbacks_done": cb[0], "callbacks_overdue": cb[1]})
        if avg_talk is not None:
            talk_weighted.append((float(avg_talk), n_calls))
    counted = [c.key for c in columns if c.kind == INT]
    section.totals = {"operator": "Итого", "name": "",
                      **{n: sum(r[n] for r in section.rows) for n in counted}}
    weight = sum(w for _, w in talk_weighted)
    section.totals["avg_talk_s"] = \
        _num(sum(a * w for a, w in talk_weighted) / weight) if weight else None
    return Report("by_operator", "Работа операторов", [section],
                  {"calls_answered": section.totals["calls_answered"],
                   "cards": section.totals["cards"]})


def _call_scope(scope: Scope) -> list[ColumnElement[bool]]:
    return [Call.direction == "inbound", Call.started_at >= scope.period.start,
            Call.started_at < scope.period.end]


def _access(scope: Scope) -> list[ColumnElement[bool]]:
    conditions = [visible_clause(scope.user)]
    if scope.smo:
        conditions.append(Request.smo == scope.smo)
    return conditions


# ------------------------------------------------------------------ service level
SL_COLUMNS = [Column("offered", "Поступило"), Column("answered", "Отвечено"),
              Column("abandoned", "Потеряно"),
              Column("service_level", f"Уровень сервиса (≤ {SERVICE_LEVEL_S} с)", PERCENT),
              Column("asa_s", "Ср. время ответа (ASA)", SECONDS),
              Column("max_wait_s", "Макс. ожидание", SECONDS),
              Column("talk_s", "Разговор, всего", SECONDS),
              Column("avg_talk_s", "Ср. разговор", SECONDS)]


def _sl_metrics(dialect: str) -> list[ColumnElement[Any]]:
    """Additive aggregates (sums, counts, a maximum): totals combine them without a scan."""
    t = call_timings(dialect)
    answered, answer_wait, any_wait, talk, talked = \
        t.answered, t.answer_wait, t.any_wait, t.talk, t.talked
    abandoned = Call.answered_at.is_(None)
    return [func.count(), _flag(answered), _flag(abandoned),
            _flag(answered & (answer_wait <= SERVICE_LEVEL_S)),
            _flag(abandoned & (any_wait > SERVICE_LEVEL_S)),
            func.sum(case((answered, answer_wait))), func.max(any_wait),
            func.sum(case((talked, talk))), _flag(talked)]


_SL_RAW = 9


def _sl_combine(rows: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    """Several groups' raw aggregates as one (the total of a grouping)."""
    if not rows:
        return (0, 0, 0, 0, 0, None, None, None, 0)
    sums: list[Any] = [sum(float(r[i] or 0) for r in rows) for i in range(_SL_RAW)]
    waits = [r[6] for r in rows if r[6] is not None]
    sums[6] = max(waits) if waits else None
    return tuple(sums)


def _sl_row(values: Any) -> dict[str, Any]:
    offered, answered, abandoned, in_sl, late_abandoned, wait_sum, max_wait, talk, talked = \
        values
    answered, abandoned, talked = _int(answered), _int(abandoned), _int(talked)
    # SL = answered within 20 s / (answered + abandoned after 20 s): a caller who hung up
    # within 20 s is not held against the service level.
    base = answered + _int(late_abandoned)
    return {"offered": _int(offered), "answered": answered, "abandoned": abandoned,
            "service_level": _share(_int(in_sl), base),
            "asa_s": _num(float(wait_sum) / answered) if answered and wait_sum is not None
            else None,
            "max_wait_s": _num(max_wait), "talk_s": _num(talk) or 0.0,
            "avg_talk_s": _num(float(talk) / talked) if talked and talk is not None else None}


async def service_level(session: AsyncSession, scope: Scope) -> Report:
    base = select(*_sl_metrics(scope.dialect)).where(*_call_scope(scope))
    if scope.narrowed():
        base = base.join(Request, Request.id == Call.request_id).where(*_access(scope))
    hour = local_hour(Call.started_at, scope.dialect, scope.tz, scope.period.start)
    groupings: tuple[tuple[str, str, Any, str], ...] = (
        ("by_line", "По линиям", Call.line, "Линия"),
        ("by_queue", "По очередям", func.coalesce(Call.queue, ""), "Очередь"),
        ("by_hour", "По часам суток", hour, "Час"))
    if scope.headline_only:
        groupings = ()
    if groupings:
        # One scan at the finest grain (line × queue × hour: a few hundred groups); the
        # aggregates are additive, so each grouping and the totals are combined here.
        # (GROUPING SETS aggregated every row once per set: 2.1 s against 0.5 s on 1M.)
        exprs = [expr for _, _, expr, _ in groupings]
        fine = [tuple(r) for r in await session.execute(
            base.with_only_columns(*exprs, *_sl_metrics(scope.dialect)).group_by(*exprs))]
        width = len(exprs)
        raw: dict[str, list[tuple[Any, ...]]] = {}
        for index, (key, _, _, _) in enumerate(groupings):
            parts: dict[Any, list[tuple[Any, ...]]] = {}
            for row in fine:
                parts.setdefault(row[index], []).append(row[width:])
            raw[key] = [(k, *_sl_combine(v)) for k, v in parts.items()]
        totals = _sl_row(_sl_combine([row[width:] for row in fine]))
    else:
        totals = _sl_row(tuple((await session.execute(base)).one()))
    sections = []
    for key, title, _, head in groupings:
        section = Section(f"sl_{key}", f"Уровень обслуживания: {title.lower()}",
                          [Column("key", head, TEXT), *SL_COLUMNS],
                          chart="offered" if key == "by_hour" else None)
        for values in sorted(raw[key], key=lambda r: (r[0] is None, str(r[0]).zfill(2))):
            label = f"{int(values[0]):02d}:00" if key == "by_hour" else _label(values[0])
            section.rows.append({"key": label, **_sl_row(values[1:])})
        section.totals = {"key": "Итого", **totals}
        sections.append(section)
    return Report("service_level", "Уровень обслуживания телефонной линии", sections,
                  {"offered": totals["offered"], "answered": totals["answered"],
                   "abandoned": totals["abandoned"], "service_level": totals["service_level"]})


# ------------------------------------------------------------------ missed calls
def missed_calls_query(scope: Scope) -> Any:
    """Inbound calls nobody answered (abandoned in the queue or rang out), one row each:
    the local day, whether the request was called back (an outbound call linked to it, and
    whether one was answered) and whether a later call of the same caller was answered (then
    the missed call settled itself). The one place that says what a missed call is and how
    it is settled — the missed-calls list extends it."""
    later = aliased(Request)
    callback = aliased(Call)
    query = (
        select(local_day(Call.started_at, scope).label("day"),
               # "after the missed call" also keeps these per-row index probes on
               # calls.request_id (an uncorrelated form is a scan of every outbound call).
               exists().where(callback.request_id == Call.request_id,
                              callback.direction == "outbound",
                              callback.started_at >= Call.started_at).label("attempted"),
               exists().where(callback.request_id == Call.request_id,
                              callback.direction == "outbound",
                              callback.started_at >= Call.started_at,
                              callback.answered_at.is_not(None)).label("reached"),
               exists().where(later.caller_normalized == Request.caller_normalized,
                              later.caller_normalized != "",
                              later.created_at > Request.created_at,
                              later.outcome == "answered").label("settled"))
        .join(Request, Request.id == Call.request_id)
        .where(*_call_scope(scope), Call.answered_at.is_(None), Call.ended_at.is_not(None),
               # A missed call's request is registered as the call starts: this range lets
               # the join read the period's requests, not all of them.
               Request.created_at >= scope.period.start - CREATED_MARGIN,
               Request.created_at < scope.period.end + CREATED_MARGIN,
               *_access(scope)))
    return query


async def missed(session: AsyncSession, scope: Scope) -> Report:
    inner = missed_calls_query(scope).subquery()
    attempted = inner.c.attempted
    reached = inner.c.reached
    settled = inner.c.settled
    rows = await session.execute(
        select(inner.c.day, func.count(), _flag(attempted), _flag(reached),
               _flag(~reached & settled), _flag(~reached & ~settled))
        .group_by(inner.c.day).order_by(inner.c.day))
    columns = [Column("day", "День", TEXT), Column("missed", "Пропущено"),
               Column("called_back", "Перезванивали"),
               Column("reached", "Дозвонились"),
               Column("settled_by_caller", "Гражданин дозвонился сам"),
               Column("open", "Не урегулировано")]
    section = Section("missed", "Пропущенные звонки и перезвоны", columns, chart="missed")
    totals = _fill_by_key(section, rows)
    return Report("missed", "Пропущенные звонки и перезвоны", [section],
                  {"missed": totals["missed"], "open": totals["open"]})


# ------------------------------------------------------------------ deferred and urgent
async def deferred_urgent(session: AsyncSession, scope: Scope) -> Report:
    """Deferred answers due in the period (§26) and urgent interventions (§31)."""
    done = Request.deferred_done_at.is_not(None)
    deferred = (await session.execute(
        select(func.count(), _flag(done), _flag(done & (Request.deferred_done_at
                                                        <= Request.deferred_due_at)),
               _flag(done & (Request.deferred_done_at > Request.deferred_due_at)),
               _flag(~done & (Request.deferred_due_at < scope.now)))
        .where(Request.deferred_due_at >= scope.period.start,
               Request.deferred_due_at < scope.period.end, *_access(scope)))).one()
    urgent = (await session.execute(
        select(func.count(), _flag(Request.urgent_action.is_not(None)))
        .where(*scope.requests(), Request.urgent.is_(True)))).one()
    contacts = (await session.execute(
        select(func.count(), _flag(UrgentContact.feedback.is_not(None)))
        .join(Request, Request.id == UrgentContact.request_id)
        .where(UrgentContact.contacted_at >= scope.period.start,
               UrgentContact.contacted_at < scope.period.end, *_access(scope)))).one()
    columns = [Column("figure", "Показатель", TEXT), Column("value", "Количество")]
    first = Section("deferred", "Отсроченные ответы (срок в периоде)", columns, chart="value")
    for title, value in zip(("Срок ответа в периоде", "Ответ дан", "в т.ч. в срок",
                             "в т.ч. с опозданием", "Не дан, срок истёк"), deferred,
                            strict=True):
        first.rows.append({"figure": title, "value": _int(value)})
    second = Section("urgent", "Срочные вмешательства", columns)
    for title, value in (("Срочных обращений", urgent[0]),
                         ("с описанием принятых мер", urgent[1]),
                         ("Контактов с медицинскими организациями", contacts[0]),
                         ("из них с обратной связью", contacts[1])):
        second.rows.append({"figure": title, "value": _int(value)})
    return Report("deferred_urgent", "Отсроченные ответы и срочные вмешательства",
                  [first, second],
                  {"deferred_due": _int(deferred[0]), "deferred_overdue": _int(deferred[4]),
                   "urgent": _int(urgent[0])})


ReportFn = Callable[[AsyncSession, Scope], Awaitable[Report]]
REPORTS: dict[str, tuple[str, ReportFn]] = {
    "by_period": ("Заявки по периодам", by_period),
    "by_kind": ("Обращения по видам", by_kind),
    "topic_kind": ("Темы обращений по видам", topic_kind),
    "by_smo": ("Обращения, переданные в СМО", by_smo),
    "by_operator": ("Работа операторов", by_operator),
    "service_level": ("Уровень обслуживания телефонной линии", service_level),
    "missed": ("Пропущенные звонки и перезвоны", missed),
    "deferred_urgent": ("Отсроченные ответы и срочные вмешательства", deferred_urgent),
}
HEADLINE_TITLES = {
    "requests": "Заявки", "complaints": "Жалобы", "closed": "Закрыто",
    "complaints_justified": "Обоснованные жалобы", "handed_over": "Передано в СМО",
    "overdue": "Просрочено", "calls_answered": "Принято звонков", "cards": "Карточек",
    "offered": "Поступило звонков", "answered": "Отвечено", "abandoned": "Потеряно",
    "service_level": "Уровень сервиса", "missed": "Пропущено", "open": "Не урегулировано",
    "deferred_due": "Отсроченных ответов", "deferred_overdue": "Просрочено",
    "urgent": "Срочных обращений",
}


def comparison_periods(period: Period, tz: str) -> dict[str, Period | None]:
    """The previous period and the same period a year earlier (None before the first
    reportable year)."""
    found: dict[str, Period | None] = {}
    for name, make in (("previous", period.previous), ("year_ago", period.year_ago)):
        try:
            found[name] = make(tz)
        except BadPeriod:
            found[name] = None
    return found


async def run(session: AsyncSession, key: str, scope: Scope) -> dict[str, Any]:
    """One report as the API shapes it: sections, headline figures for the period, the
    previous period and the same period a year earlier."""
    title, fn = REPORTS[key]
    await without_jit(session)
    report = await fn(session, scope)
    compare: dict[str, Any] = {}
    for name, other in comparison_periods(scope.period, scope.tz).items():
        if other is None:
            compare[name] = None
            continue
        earlier = await fn(session, scope.for_period(other))
        compare[name] = {"period": other.label, "headline": earlier.headline}
    return {"report": key, "title": title, "period": scope.period.label,
            "from": scope.period.start.isoformat(), "to": scope.period.end.isoformat(),
            "smo": scope.smo if scope.smo else scope.user.smo if scope.user.role == "smo"
            else None,
            "headline": report.headline,
            "headline_titles": {k: HEADLINE_TITLES.get(k, k) for k in report.headline},
            "compare": compare, "sections": [s.as_json() for s in report.sections]}


def headline_kind(key: str) -> str:
    return PERCENT if key == "service_level" else INT


