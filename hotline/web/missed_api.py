"""HTTP routes of missed calls: the list the fund's operators work (``GET /api/v1/missed``) and
a call-back attempt recorded by hand (``POST /api/v1/requests/{number}/callback/attempt``).

A call-back placed from the page goes through ``POST …/callback`` (click-to-call, in
hotline.web.workflow_api); intake records its attempt from the call's outcome.
"""

from __future__ import annotations

from aiohttp import web

from hotline.web.auth import current_user, remote_of
from hotline.web.context import SERVICES
from hotline.web.errors import ApiError
from hotline.web.params import ascii_int
from hotline.web.workflow_api import _write
from journal.missed import FILTERS, missed_calls, record_attempt

MISSED_READERS = frozenset({"operator", "admin"})
MAX_DAYS = 92
MAX_LIMIT = 500


def _int(request: web.Request, name: str, default: int, high: int) -> int:
    raw = request.query.get(name)
    if raw in (None, ""):
        return default
    value = ascii_int(raw)
    if value is None or not 1 <= value <= high:
        raise ApiError(400, "bad_parameter", f"Параметр {name}: целое число от 1 до {high}")
    return value


async def missed_list(request: web.Request) -> web.Response:
    """Fund operators and the administrator (regulation §23: missed calls are the fund's
    level-1 requests); only the administrator filters the overdue ones."""
    user = current_user(request)
    if user.role not in MISSED_READERS:
        raise ApiError(403, "forbidden", "Пропущенные вызовы доступны операторам фонда")
    state = request.query.get("state") or "open"
    if state not in FILTERS:
        raise ApiError(400, "bad_parameter", "Параметр state: open, overdue, settled или all")
    if state == "overdue" and user.role != "admin":
        raise ApiError(403, "forbidden", "Просроченные пропущенные вызовы видит администратор")
    days = _int(request, "days", 7, MAX_DAYS)
    limit = _int(request, "limit", 100, MAX_LIMIT)
    services = request.app[SERVICES]
    async with services.db.session() as session:
        data = await missed_calls(session, user, services.settings, show=state, days=days,
                                  limit=limit)
    await services.audit_log.record(user, "list_missed", remote=remote_of(request),
                                    state=state, count=data["total"])
    return web.json_response(data)


attempt = _write(record_attempt, settings=True)


def attach(app: web.Application) -> None:
    """Add the missed-call routes (called by hotline.assembly)."""
    app.router.add_get("/api/v1/missed", missed_list)
    app.router.add_post("/api/v1/requests/{number}/callback/attempt", attempt)
