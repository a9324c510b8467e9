"""Reading the journal: request lists and details as the HTTP contract shapes them (DESIGN §5)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from journal.access import visible_clause
from journal.card import CARD, FIELDS
from journal.history import caller_histories
from journal.models import Call, Recording, Request, RequestAction
from journal.phones import normalize_phone
from journal.users import Principal

# The columns the request JSON carries besides the card: its identity, routing and who did what.
RECORD_FIELDS = ("number", "line", "caller_number", "level", "smo", "version",
                 "recording_missing", "registered_by", "operator", "outcome", "corrects_number",
                 "closed_by", "deferred_by", "source")
RECORD_TIMES = ("created_at", "updated_at", "closed_at")
TIME_FIELDS = (*RECORD_TIMES, *(field.name for field in CARD if field.type == "datetime"))
_SHOWN = {*RECORD_FIELDS, *FIELDS}
# In the table's column order, as the JSON has always listed them.
REQUEST_FIELDS = tuple(column.name for column in Request.__table__.columns
                       if column.name in _SHOWN and column.name not in TIME_FIELDS)


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(slots=True)
class RequestFilter:
    caller: str | None = None
    status: str | None = None
    level: str | None = None
    smo: str | None = None
    number: int | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
    limit: int = 50
    offset: int = 0


def request_summary(request: Request) -> dict[str, Any]:
    data: dict[str, Any] = {name: getattr(request, name) for name in REQUEST_FIELDS}
    for name in TIME_FIELDS:
        data[name] = iso(getattr(request, name))
    data["closed"] = request.closed_at is not None
    return data


def call_json(call: Call) -> dict[str, Any]:
    return {
        "id": call.id,
        "linkedid": call.linkedid,
        "direction": call.direction,
        "caller_number": call.caller_number,
        "line": call.line,
        "started_at": iso(call.started_at),
        "queued_at": iso(call.queued_at),
        "answered_at": iso(call.answered_at),
        "ended_at": iso(call.ended_at),
        "outcome": call.outcome,
        "end_reason": call.end_reason,
        "operator": call.operator,
        "answered_by_external": call.answered_by_external,
        "queue": call.queue,
        "source": call.source,
        "legs": [{"uniqueid": leg.uniqueid, "channel": leg.channel, "extension": leg.extension,
                  "queue": leg.queue, "rang_at": iso(leg.rang_at),
                  "answered_at": iso(leg.answered_at), "ended_at": iso(leg.ended_at)}
                 for leg in call.legs],
        "transfers": [{"kind": t.kind, "from": t.from_extension, "to": t.to,
                       "target": t.target, "smo": t.smo, "at": iso(t.at)}
                      for t in call.transfers],
        "timeline": [{"at": iso(e.at), "type": e.type, **(e.data or {})} for e in call.events],
    }


def recording_json(recording: Recording, request_number: int) -> dict[str, Any]:
    return {
        "id": recording.id,
        "call_id": recording.call_id,
        "leg_uniqueid": recording.leg_uniqueid,
        "started_at": iso(recording.started_at),
        "duration_s": recording.duration_s,
        "sha256": recording.sha256,
        "bytes": recording.bytes,
        "status": recording.status,
        "content_type": recording.content_type,
        "file_name": recording.relative_path.rsplit("/", 1)[-1],
        "url": f"/api/v1/requests/{request_number}/recordings/{recording.id}",
    }


async def list_requests(session: AsyncSession, user: Principal,
                        flt: RequestFilter) -> tuple[list[dict[str, Any]], int]:
    conditions = filter_conditions(user, flt)
    total = await session.scalar(select(func.count()).select_from(Request).where(*conditions))
    rows = await session.scalars(
        select(Request).where(*conditions).order_by(Request.number.desc())
        .limit(flt.limit).offset(flt.offset)
    )
    return [request_summary(r) for r in rows], int(total or 0)


def filter_conditions(user: Principal, flt: RequestFilter) -> list[ColumnElement[bool]]:
    """The request list's filters (the register report uses the same), within what ``user``
    may see."""
    conditions = [visible_clause(user)]
    if flt.caller:
        normalized = normalize_phone(flt.caller)
        conditions.append((Request.caller_normalized == normalized)
                          | (Request.caller_number == flt.caller))
    if flt.status:
        conditions.append(Request.status == flt.status)
    if flt.level:
        conditions.append(Request.level == flt.level)
    if flt.smo:
        conditions.append(Request.smo == flt.smo)
    if flt.number is not None:
        conditions.append(Request.number == flt.number)
    if flt.date_from:
        conditions.append(Request.created_at >= flt.date_from)
    if flt.date_to:
        conditions.append(Request.created_at < flt.date_to)
    return conditions


async def load_request(session: AsyncSession, number: int) -> Request | None:
    return await session.scalar(
        select(Request).where(Request.number == number)
        .options(selectinload(Request.calls).selectinload(Call.legs),
                 selectinload(Request.calls).selectinload(Call.transfers),
                 selectinload(Request.calls).selectinload(Call.events))
    )


async def request_detail(session: AsyncSession, request: Request) -> dict[str, Any]:
    data = request_summary(request)
    data["calls"] = [call_json(c) for c in request.calls]
    recordings = await session.scalars(
        select(Recording).where(Recording.request_id == request.id).order_by(Recording.id))
    data["recordings"] = [recording_json(r, request.number) for r in recordings]
    actions = await session.scalars(
        select(RequestAction).where(RequestAction.request_id == request.id)
        .order_by(RequestAction.id))
    data["history"] = [{"at": iso(a.at), "user": a.user_login, "action": a.action,
                        **(a.data or {})} for a in actions]
    return data


async def active_calls(session: AsyncSession, user: Principal,
                       pbx_id: str | None = None) -> list[dict[str, Any]]:
    query = (select(Call, Request.number, Request.caller_normalized)
             .join(Request, Request.id == Call.request_id)
             .where(Call.ended_at.is_(None), visible_clause(user))
             .order_by(Call.started_at))
    if pbx_id:
        query = query.where(Call.pbx_id == pbx_id)
    rows = list(await session.execute(query))
    # The same caller history the live screen pop carried (a page (re)opened mid-call).
    histories = await caller_histories(
        session, [(caller, number) for _call, number, caller in rows])
    return [{"request_number": number, "call_id": call.id, "linkedid": call.linkedid,
             "direction": call.direction, "caller_number": call.caller_number,
             "line": call.line, "started_at": iso(call.started_at),
             "answered_at": iso(call.answered_at), "operator": call.operator,
             "answered_by_external": call.answered_by_external,
             "queue": call.queue, "history": histories.get((caller, number), [])}
            for call, number, caller in rows]
