"""Missed calls (issue 15 item 1): inbound calls the caller abandoned before an operator
answered — in the queue, while phones rang, or in the announcement — worked as a queue.

A missed call is its request (outcome ``abandoned``); what happened since is derived, not
stored twice: its call-back attempts (``callback_attempts``: from the linked call-back call's
outcome, or recorded by hand here), a later answered call from the same number (settles it by
itself), closing. It must be called back within ``missed_callback_hours`` of the call, at most
``missed_callback_attempts`` failed tries; past the deadline and unsettled it is overdue.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from config import Settings
from journal.access import visible_clause
from journal.audit import audit
from journal.callback_attempts import (
    FAILED,
    MISSED_OUTCOME,
    RESULTS,
    result_to_fill,
    settlement,
)
from journal.history import caller_histories
from journal.models import Call, CallbackAttempt, Request
from journal.queries import iso
from journal.users import Principal
from journal.validation import Invalid
from journal.workflow import (
    Outcome,
    WorkflowError,
    bump_version,
    ensure_can_edit,
    ensure_open,
    note,
    now_utc,
    parse_version,
    record,
)

STATES = ("open", "called_back", "called_again", "gave_up", "no_number", "closed")
FILTERS = ("open", "overdue", "settled", "all")
# Missed calls looked at per listing (newest first); the page shows a few days' worth.
SCAN_LIMIT = 2000
_CHUNK = 400


async def missed_calls(session: AsyncSession, user: Principal, settings: Settings, *,
                       show: str = "open", days: int = 7, limit: int = 100,
                       now: datetime | None = None) -> dict[str, Any]:
    """The missed calls of the last ``days`` that ``user`` may see, newest first, filtered by
    ``show`` (open, overdue, settled, all); ``overdue`` counts every overdue one scanned.

    The state of every scanned missed call is decided from a few columns (its attempts, later
    answered calls); whole rows, calls and histories are read only for the ones shown."""
    now = now or now_utc()
    since = now - timedelta(days=days)
    scanned = list(await session.execute(
        select(Request.id, Request.number, Request.created_at, Request.caller_normalized,
               Request.contact_phone, Request.closed_at.is_not(None))
        .where(visible_clause(user), Request.outcome == MISSED_OUTCOME,
               Request.created_at >= since)
        # (outcome, created_at) index: newest first is created_at order (numbers follow it).
        .order_by(Request.created_at.desc(), Request.number.desc()).limit(SCAN_LIMIT)))
    ids = [row[0] for row in scanned]
    attempts: dict[int, list[CallbackAttempt]] = defaultdict(list)
    for start in range(0, len(ids), _CHUNK):
        for attempt in await session.scalars(
                select(CallbackAttempt).where(CallbackAttempt.request_id.in_(
                    ids[start:start + _CHUNK])).order_by(CallbackAttempt.id)):
            attempts[attempt.request_id].append(attempt)
    answered_later = await _answered_later(
        session, [(row[0], row[1], row[3]) for row in scanned], since)
    deadline = timedelta(hours=settings.missed_callback_hours)
    shown: list[tuple[int, str, datetime, bool]] = []  # (request id, state, due, overdue)
    overdue_total = 0
    for request_id, _number, created_at, caller, contact, closed in scanned:
        state, _text = settlement((a.result for a in attempts.get(request_id, ())),
                                  settings.missed_callback_attempts)
        if closed:
            state = "closed"
        elif state == "open" and request_id in answered_later:
            state = "called_again"
        elif state == "open" and not (caller or contact):
            state = "no_number"
        due = created_at + deadline
        overdue = state == "open" and now > due
        overdue_total += overdue
        if _shown(show, state, overdue) and len(shown) < limit:
            shown.append((request_id, state, due, overdue))
    shown_ids = [item[0] for item in shown]
    requests = {r.id: r for r in await session.scalars(
        select(Request).where(Request.id.in_(shown_ids)))} if shown_ids else {}
    calls: dict[int, Call] = {}
    if shown_ids:
        for call in await session.scalars(
                select(Call).where(Call.request_id.in_(shown_ids), Call.direction == "inbound")
                .order_by(Call.id.desc())):
            assert call.request_id is not None
            calls[call.request_id] = call  # the first (lowest id) wins
    histories = await caller_histories(
        session, [(requests[i].caller_normalized, requests[i].number) for i in shown_ids])
    items: list[dict[str, Any]] = []
    for request_id, state, due, overdue in shown:
        request = requests[request_id]
        tried = attempts.get(request_id, [])
        first = calls.get(request_id)
        wait_s = None
        if first is not None and first.ended_at is not None:
            wait_s = round((first.ended_at - first.started_at).total_seconds(), 1)
        items.append({
            "number": request.number, "created_at": iso(request.created_at),
            "caller_number": request.caller_number, "contact_phone": request.contact_phone,
            "line": request.line, "queue": first.queue if first is not None else None,
            "wait_s": wait_s, "status": request.status, "version": request.version,
            "result": request.result, "state": state, "due_at": iso(due), "overdue": overdue,
            "attempts": [{"at": iso(a.at), "result": a.result, "source": a.source,
                          "user": a.user_login, "note": a.note} for a in tried],
            "failed_attempts": sum(1 for a in tried if a.result in FAILED),
            "max_attempts": settings.missed_callback_attempts,
            "answered_later": answered_later.get(request_id),
            "history": histories.get((request.caller_normalized, request.number), []),
        })
    return {"items": items, "total": len(items), "overdue": overdue_total,
            "deadline_hours": settings.missed_callback_hours,
            "max_attempts": settings.missed_callback_attempts}


def _shown(show: str, state: str, overdue: bool) -> bool:
    if show == "open":
        return state == "open"
    if show == "overdue":
        return overdue
    if show == "settled":
        return state != "open"
    return True


async def _answered_later(session: AsyncSession, missed: list[tuple[int, int, str]],
                          since: datetime) -> dict[int, dict[str, Any]]:
    """For each missed call (request id, number, caller): the first later request from the same
    number whose call was answered (the caller got through after all), {number, created_at}."""
    by_caller: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for request_id, number, caller in missed:
        if caller:
            by_caller[caller].append((request_id, number))
    callers = list(by_caller)
    answered: dict[str, list[tuple[int, datetime]]] = defaultdict(list)
    for start in range(0, len(callers), _CHUNK):
        rows = await session.execute(
            select(Request.caller_normalized, Request.number, Request.created_at)
            .where(Request.caller_normalized.in_(callers[start:start + _CHUNK]),
                   Request.outcome == "answered", Request.created_at >= since)
            .order_by(Request.number))
        for caller, number, created_at in rows:
            answered[caller].append((number, created_at))
    found: dict[int, dict[str, Any]] = {}
    for caller, requests in by_caller.items():
        for request_id, own in requests:
            later = next(((n, c) for n, c in answered.get(caller, ()) if n > own), None)
            if later is not None:
                found[request_id] = {"number": later[0], "created_at": iso(later[1])}
    return found


async def record_attempt(session: AsyncSession, user: Principal, request: Request,
                         body: dict[str, Any], settings: Settings,
                         remote: str | None) -> Outcome:
    """A call-back attempt on a missed call recorded by hand (dialled from the desk phone):
    ``{"result": "answered"|"no_answer"|"busy", "note"?}``; fills the request's result as the
    attempts add up."""
    ensure_can_edit(user, request)
    ensure_open(request)
    if request.outcome != MISSED_OUTCOME:
        raise WorkflowError(409, "not_missed",
                            f"Заявка {request.number} — не пропущенный вызов")
    errors: dict[str, str] = {}
    result = body.get("result")
    if result not in RESULTS:
        errors["result"] = "Результат попытки: answered, no_answer или busy"
    text = body.get("note")
    if text is not None and (not isinstance(text, str) or len(text) > 2000):
        errors["note"] = "Примечание — строка не длиннее 2000 символов"
    try:
        version = parse_version(body)
    except Invalid as exc:
        errors.update(exc.fields)
        version = None
    if errors:
        raise Invalid(errors)
    at = now_utc()
    await bump_version(session, request, version, at)
    session.add(CallbackAttempt(request_id=request.id, call_id=None, at=at, result=result,
                                source="manual", user_login=user.login,
                                note=(text or "").strip() or None))
    await session.flush()
    results = list(await session.scalars(
        select(CallbackAttempt.result).where(CallbackAttempt.request_id == request.id)
        .order_by(CallbackAttempt.id)))
    state, summary = settlement(results, settings.missed_callback_attempts)
    fields = []
    fill = result_to_fill(request.result, summary)
    if fill is not None:
        request.result = fill
        fields.append("result")
    if result == "answered" and request.status == "new":
        request.status = "in_progress"  # the citizen is on the line: the appeal is worked on
        fields.append("status")
    record(session, request, user, "callback_attempt", at, result=result, attempt=len(results),
           state=state)
    audit(session, user, "callback_attempt", request.number, remote, result=result,
          attempt=len(results))
    await session.flush()
    return Outcome(request, [note("request.updated", request, at, version=request.version,
                                  fields=fields)])
