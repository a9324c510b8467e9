"""The JSON API of DESIGN §5: requests, active calls, health."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from hotline.web.auth import current_user, remote_of
from hotline.web.context import SERVICES
from hotline.web.errors import ApiError
from journal.access import can_see_request
from journal.models import LEVELS, STATUSES, Request
from journal.queries import (
    RequestFilter,
    active_calls,
    list_requests,
    load_request,
    request_detail,
)

MAX_LIMIT = 500


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "bad_parameter", f"Параметр {name} должен быть целым числом") \
            from None
    if not low <= value <= high:
        raise ApiError(400, "bad_parameter", f"Параметр {name} вне диапазона {low}..{high}")
    return value


def _date_param(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, "bad_parameter",
                       f"Параметр {name}: дата в формате ГГГГ-ММ-ДД или ISO 8601") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_number(request: web.Request) -> int:
    raw = request.match_info["number"]
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(400, "bad_number", "Номер заявки должен быть целым числом")
    return int(raw)


async def get_visible_request(request: web.Request, session, number: int) -> Request:  # type: ignore[no-untyped-def]
    """The request, if it exists and the user may see it (404 otherwise: no existence leak)."""
    found = await load_request(session, number)
    if found is None or not can_see_request(current_user(request), found):
        raise ApiError(404, "not_found", f"Заявка {number} не найдена")
    return found


async def requests_list(request: web.Request) -> web.Response:
    user = current_user(request)
    status = request.query.get("status") or None
    if status and status not in STATUSES:
        raise ApiError(400, "bad_parameter", f"Неизвестный статус {status!r}")
    level = request.query.get("level") or None
    if level and level not in LEVELS:
        raise ApiError(400, "bad_parameter", f"Неизвестный уровень {level!r}")
    number = request.query.get("number") or None
    if number is not None and not number.isdigit():
        raise ApiError(400, "bad_parameter", "Параметр number должен быть целым числом")
    flt = RequestFilter(
        caller=request.query.get("caller") or None, status=status, level=level,
        smo=request.query.get("smo") or None,
        number=int(number) if number else None,
        date_from=_date_param(request, "from"), date_to=_date_param(request, "to"),
        limit=_int_param(request, "limit", 50, 1, MAX_LIMIT),
        offset=_int_param(request, "offset", 0, 0, 10**9),
    )
    services = request.app[SERVICES]
    async with services.db.session() as session:
        items, total = await list_requests(session, user, flt)
    await services.audit_log.record(user, "list_requests", remote=remote_of(request),
                                    query=dict(request.query), count=len(items))
    return web.json_response({"items": items, "total": total})


async def request_get(request: web.Request) -> web.Response:
    number = parse_number(request)
    services = request.app[SERVICES]
    async with services.db.session() as session:
        found = await get_visible_request(request, session, number)
        data = await request_detail(session, found)
    await services.audit_log.record(current_user(request), "read_request", number,
                                    remote_of(request))
    return web.json_response(data)


async def calls_active(request: web.Request) -> web.Response:
    user = current_user(request)
    if user.role not in ("operator", "admin", "smo", "auditor"):
        raise ApiError(403, "forbidden", "Недостаточно прав")
    services = request.app[SERVICES]
    async with services.db.session() as session:
        items = await active_calls(session, user, services.settings.pbx_id)
    return web.json_response({"items": items})


async def healthz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    database_ok = await services.db.ping()
    body = {"status": "ok" if database_ok else "degraded",
            "database": "ok" if database_ok else "unavailable", **services.health()}
    return web.json_response(body, status=200 if database_ok else 503)


async def metrics(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    health = services.health()
    lines = [
        f"hotline_ami_messages_total {health['pipeline']['messages']}",
        f"hotline_ami_malformed_total {health['pipeline']['malformed']}",
        f"hotline_call_events_total {health['pipeline']['call_events']}",
        f"hotline_buffered_events {health['pipeline']['buffered']}",
        f"hotline_spilled_events_total {health['pipeline']['spilled_total']}",
        f"hotline_intake_batches_total {health['intake']['batches']}",
        f"hotline_active_calls {health['active_calls']}",
        f"hotline_ami_connected {1 if health['ami']['state'] == 'connected' else 0}",
    ]
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")
