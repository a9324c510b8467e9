"""Administration API: the audit log (admin, auditor), users and unlocking them (admin).

- ``GET /api/v1/audit?request=&user=&action=&from=&to=&limit=&offset=`` → ``{"items", "total"}``
  newest first;
- ``GET /api/v1/users`` → ``{"items", "total"}``;
- ``POST /api/v1/users/{login}/unlock`` → ``{"user": {...}}`` (clears the failed-login count).
Reading the audit log is itself audited; so is unlocking.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import ColumnElement, func, select

from hotline.web.api import _date_param, _int_param
from hotline.web.auth import current_user, remote_of
from hotline.web.context import SERVICES
from hotline.web.errors import ApiError
from journal.audit import audit
from journal.models import AuditEntry, User
from journal.queries import iso
from journal.users import Principal

AUDIT_READERS = frozenset({"admin", "auditor"})
MAX_LIMIT = 500


def _require(user: Principal, roles: frozenset[str]) -> None:
    if user.role not in roles:
        raise ApiError(403, "forbidden", "Недостаточно прав")


def audit_json(entry: AuditEntry) -> dict[str, Any]:
    return {"id": entry.id, "at": iso(entry.at), "user": entry.user_login,
            "action": entry.action, "request_number": entry.request_number,
            "remote": entry.remote, "detail": entry.detail or {}}


def user_json(user: User) -> dict[str, Any]:
    return {"id": user.id, "login": user.login, "role": user.role, "smo": user.smo,
            "extension": user.extension, "full_name": user.full_name, "locked": user.locked,
            "failed_logins": user.failed_logins, "created_at": iso(user.created_at)}


async def audit_list(request: web.Request) -> web.Response:
    user = current_user(request)
    _require(user, AUDIT_READERS)
    query = request.query
    conditions: list[ColumnElement[bool]] = []
    number = query.get("request") or query.get("request_number")
    if number:
        if not number.isdigit() or len(number) > 18:
            raise ApiError(400, "bad_parameter", "Параметр request должен быть целым числом")
        conditions.append(AuditEntry.request_number == int(number))
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
    _require(user, frozenset({"admin"}))
    services = request.app[SERVICES]
    async with services.db.session() as session:
        rows = list(await session.scalars(select(User).order_by(User.login)))
    return web.json_response({"items": [user_json(u) for u in rows], "total": len(rows)})


async def user_unlock(request: web.Request) -> web.Response:
    admin = current_user(request)
    _require(admin, frozenset({"admin"}))
    login = request.match_info["login"]
    services = request.app[SERVICES]
    async with services.db.sessions.begin() as session:
        target = await session.scalar(select(User).where(User.login == login))
        if target is None:
            raise ApiError(404, "not_found", f"Пользователь {login} не найден")
        was_locked = target.locked
        target.locked = False
        target.failed_logins = 0
        audit(session, admin, "user_unlocked", remote=remote_of(request), login=login,
              was_locked=was_locked)
        await session.flush()
        body = {"user": user_json(target)}
    return web.json_response(body)


def attach(app: web.Application) -> None:
    app.router.add_get("/api/v1/audit", audit_list)
    app.router.add_get("/api/v1/users", users_list)
    app.router.add_post("/api/v1/users/{login}/unlock", user_unlock)
