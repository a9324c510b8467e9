"""Administration API: the audit log (admin, auditor), users and unlocking them (admin).

- ``GET /api/v1/audit?request=&user=&action=&from=&to=&limit=&offset=`` → ``{"items", "total"}``
  newest first;
- ``GET /api/v1/users`` → ``{"items", "total"}``;
- ``POST /api/v1/users/{login}/unlock`` → ``{"user": {...}}`` (ends a lockout, clears the
  failed-sign-in count);
- ``GET /api/v1/completeness?date=YYYY-MM-DD`` (admin, auditor) → the completeness proof of
  that PBX-local day (default yesterday): CEL's inbound 8-800 calls vs requests vs recordings.
Reading the audit log is itself audited; so is unlocking.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from aiohttp import web
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.exc import SQLAlchemyError

from hotline.web.api import _date_param, _int_param
from hotline.web.auth import current_user, remote_of
from hotline.web.context import SERVICES
from hotline.web.errors import ApiError
from hotline.web.params import ascii_int
from journal.access import Action, require
from journal.audit import audit
from journal.completeness import report_json
from journal.models import AuditEntry, User
from journal.queries import iso
from journal.users import is_locked

log = structlog.get_logger(__name__)

MAX_LIMIT = 500


def audit_json(entry: AuditEntry) -> dict[str, Any]:
    return {"id": entry.id, "at": iso(entry.at), "user": entry.user_login,
            "action": entry.action, "request_number": entry.request_number,
            "remote": entry.remote, "detail": entry.detail or {}}


def user_json(user: User) -> dict[str, Any]:
    return {"id": user.id, "login": user.login, "role": user.role, "smo": user.smo,
            "extension": user.extension, "full_name": user.full_name,
            "locked": is_locked(user), "locked_until": iso(user.locked_until),
            "failed_logins": user.failed_logins, "created_at": iso(user.created_at)}


async def audit_list(request: web.Request) -> web.Response:
    user = current_user(request)
    require(user, Action.READ_AUDIT)
    query = request.query
    conditions: list[ColumnElement[bool]] = []
    number = query.get("request") or query.get("request_number")
    if number:
        value = ascii_int(number)
        if value is None:
            raise ApiError(400, "bad_parameter", "Параметр request должен быть целым числом")
        conditions.append(AuditEntry.request_number == value)
    if query.get("user"):
        conditions.append(AuditEntry.user_login == query["user"])
    if query.get("action"):
        conditions.append(AuditEntry.action == query["action"])
    date_from, date_to = _date_param(request, "from"), _date_param(request, "to")
    if date_from:
        conditions.append(AuditEntry.at >= date_from)
    if date_to:
        conditions.append(AuditEntry.at < date_to)
    limit = _int_param(request, "limit", 50, 1, MAX_LIMIT)
    offset = _int_param(request, "offset", 0, 0, 10**9)
    services = request.app[SERVICES]
    async with services.db.session() as session:
        total = await session.scalar(
            select(func.count()).select_from(AuditEntry).where(*conditions))
        rows = await session.scalars(select(AuditEntry).where(*conditions)
                                     .order_by(AuditEntry.id.desc()).limit(limit).offset(offset))
        items = [audit_json(entry) for entry in rows]
    await services.audit_log.record(user, "read_audit", remote=remote_of(request),
                                    query=dict(query), count=len(items))
    return web.json_response({"items": items, "total": int(total or 0)})


async def users_list(request: web.Request) -> web.Response:
    user = current_user(request)
    require(user, Action.MANAGE_USERS)
    services = request.app[SERVICES]
    async with services.db.session() as session:
        rows = list(await session.scalars(select(User).order_by(User.login)))
    return web.json_response({"items": [user_json(u) for u in rows], "total": len(rows)})


async def user_unlock(request: web.Request) -> web.Response:
    admin = current_user(request)
    require(admin, Action.MANAGE_USERS)
    login = request.match_info["login"]
    services = request.app[SERVICES]
    async with services.db.sessions.begin() as session:
        target = await session.scalar(select(User).where(User.login == login))
        if target is None:
            raise ApiError(404, "not_found", f"Пользователь {login} не найден")
        was_locked = is_locked(target)
        target.locked = False
        target.locked_until = None
        target.failed_logins = 0
        audit(session, admin, "user_unlocked", remote=remote_of(request), login=login,
              was_locked=was_locked)
        await session.flush()
        body = {"user": user_json(target)}
    return web.json_response(body)


async def completeness(request: web.Request) -> web.Response:
    user = current_user(request)
    # The completeness proof is part of auditing the journal: the audit log's readers.
    require(user, Action.READ_AUDIT)
    services = request.app[SERVICES]
    if services.backfill is None:
        raise ApiError(409, "cel_not_configured",
                       "Источник CEL не настроен (HOTLINE_CEL_URL): проверка полноты недоступна")
    raw = request.query.get("date")
    if raw:
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            raise ApiError(400, "bad_parameter",
                           "Параметр date: дата в формате ГГГГ-ММ-ДД") from None
        if not 1900 <= day.year <= 2999:
            raise ApiError(400, "bad_parameter", "Параметр date: год от 1900 до 2999")
    else:
        day = datetime.now(ZoneInfo(services.settings.pbx_timezone)).date() - timedelta(days=1)
    try:
        report = await services.completeness(day)
    except (SQLAlchemyError, OSError, RuntimeError) as exc:
        log.warning("cel.completeness_failed", error=str(exc)[:200])
        raise ApiError(503, "cel_unavailable", "База CEL недоступна") from None
    return web.json_response(report_json(report))


def attach(app: web.Application) -> None:
    app.router.add_get("/api/v1/completeness", completeness)
    app.router.add_get("/api/v1/audit", audit_list)
    app.router.add_get("/api/v1/users", users_list)
    app.router.add_post("/api/v1/users/{login}/unlock", user_unlock)
