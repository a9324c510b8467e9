"""The journal workflow of the regulations (§18-38): editing, routing, deferred answers,
urgent intervention, closing and corrections.

Every function works inside the caller's transaction, audits what it changes, appends the
request's history (``request_actions``) and returns the notifications to publish AFTER the
commit. Optimistic concurrency: the version is bumped by a conditional UPDATE (``WHERE
version = expected``), which also row-locks the request on PostgreSQL, so of two concurrent
edits of the same version exactly one wins and the other gets ``version_conflict``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from config import Settings
from journal.access import ROUTE_TARGETS, Action, can_edit, may_route, require, visible_clause
from journal.audit import audit
from journal.card import CARD, REDIRECT_TARGETS, text_limit
from journal.models import Request, RequestAction, UrgentContact
from journal.notes import Note, request_changed, request_routed
from journal.numbering import next_request_number
from journal.queries import iso, request_summary
from journal.refusal import Refusal
from journal.routing import LEVEL_2, to_smo
from journal.users import Principal
from journal.validation import (
    Checked,
    Invalid,
    check_phone,
    validate_patch,
)

# Who called and about what: a correction of a closed request starts from these.
CORRECTION_COPIES = tuple(f.name for f in CARD if f.copied_to_correction)


class WorkflowError(Refusal):
    """A journal action refused (not allowed, not possible in the request's state)."""


@dataclass(slots=True)
class Outcome:
    request: Request
    notes: list[Note] = field(default_factory=list)
    warnings: dict[str, str] = field(default_factory=dict)


def now_utc() -> datetime:
    return datetime.now(UTC)


# ------------------------------------------------------------------ guards and helpers
def ensure_open(request: Request) -> None:
    if request.closed_at is not None or request.status == "closed":
        raise WorkflowError(409, "closed",
                            f"Заявка {request.number} закрыта: изменения не принимаются")


def ensure_can_edit(user: Principal, request: Request) -> None:
    if not can_edit(user, request):
        raise WorkflowError(403, "forbidden", "Недостаточно прав для изменения заявки")


def parse_version(body: dict[str, Any]) -> int | None:
    """The version the client read (optional: without it the last write wins)."""
    version = body.get("version")
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, int):
        raise Invalid({"version": "Версия заявки — целое число, полученное при чтении"})
    return version


async def bump_version(session: AsyncSession, request: Request, expected: int | None,
                       at: datetime) -> None:
    """Atomically move the request to the next version or raise ``version_conflict``."""
    expected = request.version if expected is None else expected
    if expected != request.version:
        raise version_conflict(request)
    result = await session.execute(
        update(Request).where(Request.id == request.id, Request.version == expected,
                              Request.closed_at.is_(None))
        .values(version=expected + 1, updated_at=at)
        .execution_options(synchronize_session=False))
    if not result.rowcount:  # type: ignore[attr-defined]  # CursorResult of an UPDATE
        raise version_conflict(request)
    request.version = expected + 1
    request.updated_at = at


def version_conflict(request: Request) -> WorkflowError:
    return WorkflowError(409, "version_conflict",
                         f"Заявку {request.number} уже изменил другой пользователь: "
                         "обновите её и повторите изменения")


def record(session: AsyncSession, request: Request, user: Principal | None, action: str,
           at: datetime, **data: Any) -> None:
    """Append to the request's history (shown in its detail as ``history``)."""
    session.add(RequestAction(request_id=request.id, at=at,
                              user_login=user.login if user else None, action=action,
                              data={k: v for k, v in data.items() if v is not None}))


def note(note_type: str, request: Request, at: datetime, **data: Any) -> Note:
    """A change made in the journal, with the request's routing after it."""
    return request_changed(note_type, request.number, at, level=request.level,
                           smo=request.smo, **data)


def _jsonable(value: Any) -> Any:
    return iso(value) if isinstance(value, datetime) else value


def _corruption_flagged(session: AsyncSession, request: Request, user: Principal,
                        at: datetime, remote: str | None, notes: list[Note]) -> None:
    """Hand the case at once to the anti-corruption officer (Arkhangelsk routing rules)."""
    record(session, request, user, "corruption_reported", at)
    audit(session, user, "corruption_reported", request.number, remote)
    notes.append(note("request.corruption", request, at, to_role="anticorruption"))


# ------------------------------------------------------------------ editing
async def patch_request(session: AsyncSession, user: Principal, request: Request,
                        body: dict[str, Any], topics: set[str],
                        remote: str | None) -> Outcome:
    """Apply a PATCH body (fields, optionally ``version``) after validating every field.

    Without a version the last write wins (DESIGN §5: fields alone suffice); with one, a stale
    edit gets ``version_conflict``."""
    ensure_can_edit(user, request)
    ensure_open(request)
    fields = {k: v for k, v in body.items() if k != "version"}
    errors: dict[str, str] = {}
    try:
        version = parse_version(body)
    except Invalid as exc:
        errors.update(exc.fields)
        version = None
    checked = Checked()
    try:
        checked = validate_patch(fields, topics)
    except Invalid as exc:
        errors.update(exc.fields)
    if not fields and not errors:
        errors["_"] = "Нет полей для изменения"
    if errors:
        raise Invalid(errors)
    at = now_utc()
    await bump_version(session, request, version, at)
    diff: dict[str, list[Any]] = {}
    for name, value in checked.values.items():
        old = getattr(request, name)
        if old != value:
            diff[name] = [_jsonable(old), _jsonable(value)]
            setattr(request, name, value)
    if request.status == "new" and "status" not in checked.values:
        request.status = "in_progress"  # someone works on it now
    outcome = Outcome(request, warnings=checked.warnings)
    audit(session, user, "update_request", request.number, remote, changes=diff,
          version=request.version)
    record(session, request, user, "edit", at, fields=sorted(diff))
    if diff.get("corruption", [None, None])[1] is True:
        _corruption_flagged(session, request, user, at, remote, outcome.notes)
    outcome.notes.insert(0, note("request.updated", request, at, version=request.version,
                                 fields=sorted(diff)))
    await session.flush()
    return outcome


# ------------------------------------------------------------------ closing and corrections
async def close_request(session: AsyncSession, user: Principal, request: Request,
                        body: dict[str, Any], remote: str | None) -> Outcome:
    require(user, Action.CLOSE, "Закрыть заявку может только администратор")
    if request.closed_at is not None:
        raise WorkflowError(409, "closed", f"Заявка {request.number} уже закрыта")
    at = now_utc()
    await bump_version(session, request, parse_version(body), at)
    record(session, request, user, "close", at, status_before=request.status)
    request.status = "closed"
    request.closed_at = at
    request.closed_by = user.login
    audit(session, user, "close_request", request.number, remote)
    await session.flush()
    return Outcome(request, [note("request.closed", request, at, closed_by=user.login)])


async def correct_request(session: AsyncSession, user: Principal, original: Request,
                          body: dict[str, Any], topics: set[str],
                          remote: str | None) -> Outcome:
    """A closed request stays as it was; a correction is a NEW numbered request linked to it."""
    ensure_can_edit(user, original)
    if original.closed_at is None:
        raise WorkflowError(409, "not_closed",
                            f"Заявка {original.number} не закрыта: измените её напрямую")
    require(user, Action.CORRECT, "Исправление закрытой заявки вносит только администратор")
    checked = validate_patch({k: v for k, v in body.items() if k != "version"}, topics)
    at = now_utc()
    number = await next_request_number(session)
    copy = {name: getattr(original, name) for name in CORRECTION_COPIES}
    copy.update({k: v for k, v in checked.values.items() if k != "status"})
    request = Request(number=number, created_at=at, line=original.line,
                      caller_number=original.caller_number,
                      caller_normalized=original.caller_normalized, status="in_progress",
                      level=original.level, smo=original.smo, version=1, updated_at=at,
                      registered_by=user.login, corrects_number=original.number, **copy)
    session.add(request)
    await session.flush()
    record(session, request, user, "correction_of", at, original=original.number)
    record(session, original, user, "corrected_by", at, correction=number)
    audit(session, user, "correct_request", number, remote, corrects=original.number)
    await session.flush()
    return Outcome(request, [note("request.created", request, at,
                                  caller_number=request.caller_number, line=request.line,
                                  status=request.status, corrects_number=original.number)],
                   checked.warnings)


# ------------------------------------------------------------------ routing
def known_smo_codes(settings: Settings) -> set[str]:
    return set(settings.smo_lines.values()) | set(settings.smo_names)


async def route_request(session: AsyncSession, user: Principal, request: Request,
                        body: dict[str, Any], settings: Settings,
                        remote: str | None) -> Outcome:
    """``{"to": "l2"|"smo"|"redirect"|"written_appeal"|"corruption", ...}``."""
    ensure_can_edit(user, request)
    ensure_open(request)
    target = body.get("to")
    if target not in ROUTE_TARGETS:
        raise Invalid({"to": "Куда направить: l2, smo, redirect, written_appeal, corruption"})
    if not may_route(user, target):
        message = ("Представитель СМО не может передать обращение в другую СМО"
                   if target == "smo" and user.role == "smo" else "Недостаточно прав")
        raise WorkflowError(403, "forbidden", message)
    changes, data = _route_changes(target, body, settings)
    at = now_utc()
    await bump_version(session, request, parse_version(body), at)
    before = {"level": request.level, "smo": request.smo, "status": request.status}
    was_corruption = bool(request.corruption)
    for name, value in changes.items():
        setattr(request, name, value)
    outcome = Outcome(request)
    record(session, request, user, f"route_{target}", at, **data, **{"from": before})
    audit(session, user, "route_request", request.number, remote, to=target, **data)
    outcome.notes.append(note("request.updated", request, at, version=request.version,
                              fields=sorted(changes)))
    if target in ("l2", "smo"):
        outcome.notes.append(request_routed(request.number, at, level=request.level,
                                            smo=request.smo, via="journal"))
    if target == "corruption" and not was_corruption:
        _corruption_flagged(session, request, user, at, remote, outcome.notes)
    await session.flush()
    return outcome


def _route_changes(target: str, body: dict[str, Any],
                   settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    if target == "l2":
        return LEVEL_2.columns(), {}
    if target == "smo":
        code = body.get("smo")
        if not isinstance(code, str) or code not in known_smo_codes(settings):
            raise Invalid({"smo": "Укажите СМО из справочника"})
        return to_smo(code).columns(), {"smo": code}
    if target == "redirect":
        where = body.get("redirected_to")
        note_text = body.get("note")
        errors: dict[str, str] = {}
        if where not in REDIRECT_TARGETS:
            errors["redirected_to"] = "Куда переадресован: rzn, other_tfoms или other"
        limit = text_limit("redirect_note")
        if note_text is not None and (not isinstance(note_text, str) or len(note_text) > limit):
            errors["note"] = f"Пояснение — строка не длиннее {limit} символов"
        elif where == "other" and not (note_text or "").strip():
            errors["note"] = "Укажите, куда и в каком порядке обратиться гражданину"
        if errors:
            raise Invalid(errors)
        return ({"redirected_to": where, "redirect_note": (note_text or "").strip() or None,
                 "status": "answered"}, {"redirected_to": where})
    if target == "written_appeal":
        return {"written_appeal_advised": True, "status": "answered"}, {}
    return {"corruption": True}, {}


# ------------------------------------------------------------------ deferred answers
def default_due(now: datetime, settings: Settings) -> datetime:
    """'I will call you back within the day': no later than ``callback_due_hours`` from now
    and the end of the working day (Mon-Fri, ``workday_end_hour`` local time); after hours,
    the end of the next working day."""
    zone = ZoneInfo(settings.local_timezone)
    local = now.astimezone(zone)
    end = _day_end(local, settings.workday_end_hour)
    if local.weekday() < 5 and local < end:
        return min(now + timedelta(hours=settings.callback_due_hours), end).astimezone(UTC)
    day = local
    while True:
        day = day + timedelta(days=1)
        if day.weekday() < 5:
            return _day_end(day, settings.workday_end_hour).astimezone(UTC)


def _day_end(local: datetime, hour: int) -> datetime:
    midnight = datetime(local.year, local.month, local.day, tzinfo=local.tzinfo)
    return midnight + timedelta(hours=hour)


# A due date is at most this far ahead (a deferred answer is a matter of days; year 9999 is a
# typing slip, and near the calendar's end time-zone arithmetic overflows).
MAX_DUE_AHEAD = timedelta(days=366)


def parse_time(value: Any, name: str, settings: Settings) -> datetime:
    """An ISO 8601 time (local time of the fund when no offset is given), from 2000 on."""
    if not isinstance(value, str):
        raise Invalid({name: "Дата и время в формате ISO 8601"})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid({name: "Дата и время в формате ISO 8601"}) from None
    if not 2000 <= parsed.year <= 2999:
        raise Invalid({name: "Год должен быть от 2000 до 2999"})
    if parsed.tzinfo is None:  # typed on a page: local time of the fund
        parsed = parsed.replace(tzinfo=ZoneInfo(settings.local_timezone))
    return parsed.astimezone(UTC)


def optional_time(body: dict[str, Any], name: str, default: datetime, settings: Settings,
                  errors: dict[str, str]) -> datetime:
    """``body[name]`` as a time if given, else ``default``; a bad value goes into ``errors``
    (so every field's message is reported at once)."""
    if body.get(name) is None:
        return default
    try:
        return parse_time(body[name], name, settings)
    except Invalid as exc:
        errors.update(exc.fields)
        return default


async def defer_request(session: AsyncSession, user: Principal, request: Request,
                        body: dict[str, Any], settings: Settings,
                        remote: str | None) -> Outcome:
    """Regulation §29: a deferred answer with the citizen's contact phone and a due time."""
    ensure_can_edit(user, request)
    ensure_open(request)
    errors: dict[str, str] = {}
    phone = body.get("contact_phone") or request.contact_phone or request.caller_normalized
    try:
        phone = check_phone(phone if isinstance(phone, str) else "")
    except ValueError as exc:
        errors["contact_phone"] = str(exc)
    at = now_utc()
    due = optional_time(body, "due_at", default_due(at, settings), settings, errors)
    if due > at + MAX_DUE_AHEAD:
        errors["due_at"] = "Срок ответа — не позднее чем через год"
    if errors:
        raise Invalid(errors)
    await bump_version(session, request, parse_version(body), at)
    request.contact_phone = phone
    request.status = "deferred"
    request.deferred_due_at = due
    request.deferred_done_at = None
    request.deferred_by = user.login
    record(session, request, user, "defer", at, due_at=iso(due))
    audit(session, user, "defer_request", request.number, remote, due_at=iso(due))
    await session.flush()
    return Outcome(request, [note("request.updated", request, at, version=request.version,
                                  fields=["contact_phone", "deferred_due_at", "status"])])


async def callback_done(session: AsyncSession, user: Principal, request: Request,
                        body: dict[str, Any], remote: str | None) -> Outcome:
    ensure_can_edit(user, request)
    ensure_open(request)
    if request.deferred_due_at is None:
        raise WorkflowError(409, "not_deferred", "Отсроченный ответ по заявке не оформлялся")
    result = body.get("result")
    limit = text_limit("result")
    if result is not None and (not isinstance(result, str) or len(result) > limit):
        raise Invalid({"result": f"Результат — строка не длиннее {limit} символов"})
    at = now_utc()
    await bump_version(session, request, parse_version(body), at)
    request.deferred_done_at = at
    request.status = "answered"
    if result:
        request.result = result.strip()
    on_time = at <= request.deferred_due_at
    record(session, request, user, "callback_done", at, on_time=on_time)
    audit(session, user, "callback_done", request.number, remote, on_time=on_time)
    await session.flush()
    return Outcome(request, [note("request.updated", request, at, version=request.version,
                                  fields=["deferred_done_at", "status"])])


def originate_action(request: Request, user: Principal, number: str,
                     settings: Settings) -> dict[str, str]:
    """The AMI Originate that rings the operator's phone, then dials the citizen."""
    national = number[-10:]
    return {
        "Action": "Originate",
        "Channel": f"PJSIP/{user.extension}",
        "Context": settings.callback_context,
        "Exten": f"{settings.callback_dial_prefix}{national}",
        "Priority": "1",
        "CallerID": f"Заявка {request.number} <{settings.hotline_numbers[0]}>",
        "Async": "true",
        "Timeout": "30000",
        "Variable": f"HOTLINE_REQUEST={request.number}",
    }


def callback_number(request: Request, body: dict[str, Any]) -> str:
    raw = body.get("number") or request.contact_phone or request.caller_normalized
    try:
        return check_phone(raw if isinstance(raw, str) else "")
    except ValueError as exc:
        raise Invalid({"number": str(exc)}) from None


async def callback_due_list(session: AsyncSession, user: Principal, due: str,
                            settings: Settings, mine_only: bool) -> list[dict[str, Any]]:
    """Open deferred answers visible to ``user``: ``overdue`` (past due), ``today`` (due by the
    end of today, local time, overdue included) or ``all``."""
    now = now_utc()
    conditions = [visible_clause(user), Request.deferred_due_at.is_not(None),
                  Request.deferred_done_at.is_(None), Request.closed_at.is_(None)]
    if due == "overdue":
        conditions.append(Request.deferred_due_at < now)
    elif due == "today":
        local = now.astimezone(ZoneInfo(settings.local_timezone))
        conditions.append(Request.deferred_due_at < _day_end(local, 24).astimezone(UTC))
    if mine_only:
        mine = Request.deferred_by == user.login
        if user.extension:
            mine = mine | ((Request.deferred_by.is_(None))
                           & (Request.assigned_to == user.extension))
        conditions.append(mine)
    rows = await session.scalars(select(Request).where(*conditions)
                                 .order_by(Request.deferred_due_at, Request.number).limit(500))
    items = []
    for request in rows:
        item = request_summary(request)
        due_at = request.deferred_due_at
        item["overdue"] = due_at is not None and due_at < now
        items.append(item)
    return items


# ------------------------------------------------------------------ urgent intervention
async def urgent_contact(session: AsyncSession, user: Principal, request: Request,
                         body: dict[str, Any], settings: Settings,
                         remote: str | None) -> Outcome:
    """Regulation §31: the responsible person of the medical organisation was contacted."""
    ensure_can_edit(user, request)
    ensure_open(request)
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name, limit, required in (("medical_org", text_limit("medical_org"), True),
                                  ("contact_person", 300, True),
                                  ("action", text_limit("urgent_action"), False),
                                  ("feedback", 5000, False)):
        value = body.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                errors[name] = "Обязательное поле"
            values[name] = None
        elif not isinstance(value, str) or len(value) > limit:
            errors[name] = f"Строка не длиннее {limit} символов"
        else:
            values[name] = value.strip()
    at = now_utc()
    contacted_at = optional_time(body, "contacted_at", at, settings, errors)
    if errors:
        raise Invalid(errors)
    await bump_version(session, request, parse_version(body), at)
    session.add(UrgentContact(request_id=request.id, medical_org=values["medical_org"],
                              contact_person=values["contact_person"],
                              contacted_at=contacted_at, action=values["action"],
                              feedback=values["feedback"], recorded_by=user.login,
                              recorded_at=at))
    request.urgent = True
    if values["action"]:
        request.urgent_action = values["action"]
    if not request.medical_org:
        request.medical_org = values["medical_org"]
    # "action" would clash with the action name of record()/audit(): keep it as action_taken.
    detail = {"medical_org": values["medical_org"], "contact_person": values["contact_person"],
              "action_taken": values["action"], "feedback": values["feedback"],
              "contacted_at": iso(contacted_at)}
    record(session, request, user, "urgent_contact", at, **detail)
    audit(session, user, "urgent_contact", request.number, remote, **detail)
    await session.flush()
    return Outcome(request, [note("request.updated", request, at, version=request.version,
                                  fields=["urgent", "urgent_action"])])
