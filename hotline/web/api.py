"""The JSON API of DESIGN §5: requests, active calls, health."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import hdrs, web
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.web.auth import current_user, remote_of
from hotline.web.context import SERVICES, SIGNIN_GUARD
from hotline.web.errors import ApiError
from hotline.web.params import ascii_int
from journal.access import Action, can_see_request, require
from journal.models import LEVELS, STATUSES, Request
from journal.queries import (
    RequestFilter,
    active_calls,
    list_requests,
    load_request,
    request_detail,
)
from journal.users import Principal

MAX_LIMIT = 500


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw in (None, ""):
        return default
    value = ascii_int(raw)
    if value is None:
        raise ApiError(400, "bad_parameter", f"Параметр {name} должен быть целым числом")
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
    if not 1900 <= value.year <= 2999:  # near year 1 or 9999 the UTC conversion overflows
        raise ApiError(400, "bad_parameter", f"Параметр {name}: год от 1900 до 2999")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_number(request: web.Request) -> int:
    number = ascii_int(request.match_info["number"])
    if number is None:
        raise ApiError(400, "bad_number", "Номер заявки должен быть целым числом")
    return number


async def get_visible_request(session: AsyncSession, user: Principal, number: int) -> Request:
    """The request, if it exists and the user may see it (404 otherwise: no existence leak).
    Every handler that takes a request number from the URL goes through here."""
    found = await load_request(session, number)
    if found is None or not can_see_request(user, found):
        raise ApiError(404, "not_found", f"Заявка {number} не найдена")
    return found


def etag_of(version: int) -> str:
    """The ETag of a request: its version, which every change of an editable field moves on
    (strong, so that If-Match may use it as RFC 9110 compares)."""
    return f'"{version}"'


def status_and_level(request: web.Request) -> tuple[str | None, str | None]:
    """The ``status`` and ``level`` filters of a request list (400 for unknown values)."""
    status = request.query.get("status") or None
    if status and status not in STATUSES:
        raise ApiError(400, "bad_parameter", f"Неизвестный статус {status!r}")
    level = request.query.get("level") or None
    if level and level not in LEVELS:
        raise ApiError(400, "bad_parameter", f"Неизвестный уровень {level!r}")
    return status, level


async def requests_list(request: web.Request) -> web.Response:
    user = current_user(request)
    status, level = status_and_level(request)
    raw_number = request.query.get("number") or None
    number = ascii_int(raw_number)
    if raw_number is not None and number is None:
        raise ApiError(400, "bad_parameter", "Параметр number должен быть целым числом")
    flt = RequestFilter(
        caller=request.query.get("caller") or None, status=status, level=level,
        smo=request.query.get("smo") or None,
        number=number,
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
        found = await get_visible_request(session, current_user(request), number)
        data = await request_detail(session, found)
    await services.audit_log.record(current_user(request), "read_request", number,
                                    remote_of(request))
    return web.json_response(data, headers={hdrs.ETAG: etag_of(data["version"])})


async def calls_active(request: web.Request) -> web.Response:
    user = current_user(request)
    require(user, Action.SEE_ACTIVE_CALLS)
    services = request.app[SERVICES]
    async with services.db.session() as session:
        items = await active_calls(session, user, services.settings.pbx_id)
    return web.json_response({"items": items})


async def _health(request: web.Request, details: bool) -> web.Response:
    services = request.app[SERVICES]
    database_ok = await services.db.ping()
    health = services.health()
    body: dict[str, Any] = {"status": "ok" if database_ok else "degraded",
            "database": "ok" if database_ok else "unavailable"}
    if details:
        body |= health
    else:
        body["ami"] = {"state": health["ami"]["state"]}
    return web.json_response(body, status=200 if database_ok else 503)


async def healthz(request: web.Request) -> web.Response:
    """For anyone (load balancers, probes): the database's and AMI's state, nothing more —
    the PBX's address and the last connection error are for administrators only."""
    return await _health(request, details=False)


async def health_details(request: web.Request) -> web.Response:
    """``/healthz`` with the AMI error, counters of the pipeline and the intake (admin)."""
    require(current_user(request), Action.HEALTH_DETAILS,
            "Подробности состояния доступны администратору")
    return await _health(request, details=True)


def _cel_metrics(services: Any) -> list[str]:
    """CEL backfill and the completeness proof of the PBX's today and yesterday."""
    backfill = services.backfill
    if backfill is None:
        return []
    lines = [f"hotline_cel_backfill_runs_total {backfill.runs}",
             f"hotline_cel_recovered_total {backfill.recovered}",
             f"hotline_cel_backfill_ok {0 if backfill.last_error else 1}"]
    for label, report in services.completeness_last.items():
        day = f'{{day="{label}"}}'
        lines += [f"hotline_completeness_cel_calls{day} {report.cel_calls}",
                  f"hotline_completeness_requests{day} {report.requests}",
                  f"hotline_completeness_recordings_linked{day} {report.recordings_linked}",
                  f"hotline_completeness_missing{day} {report.missing}"]
    return lines


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
        *request.app[SIGNIN_GUARD].metrics(),
        *_cel_metrics(services),
    ]
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")
