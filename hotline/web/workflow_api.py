"""HTTP routes of the journal workflow (DESIGN §5 PATCH/close, plus routing, deferred answers,
click-to-call, urgent contacts, the topic classifier and reports).

Each write runs in one transaction; notifications are stored and published only after the
commit. A domain refusal (journal.workflow.WorkflowError) reaches the error middleware as it is,
a version conflict with the current request added; journal.validation.Invalid and the closed
request guards become the contract's JSON errors here.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import hdrs, web
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.web.api import etag_of, get_visible_request
from hotline.web.auth import current_user, remote_of
from hotline.web.context import SERVICES
from hotline.web.control import originate_via_ingester, place_callback, refused
from hotline.web.errors import ApiError
from hotline.web.params import ascii_int
from journal.access import Action, Scope, report_slice, require, scope_of
from journal.audit import audit
from journal.classifier import active_codes, current_topics, ensure_seeded, save_topic
from journal.export import to_csv, to_xlsx
from journal.guards import CLOSED_MESSAGE, ClosedRequestError
from journal.models import Request
from journal.queries import load_request, request_detail
from journal.reports import BadPeriod, parse_period, summary
from journal.users import Principal
from journal.validation import Invalid
from journal.workflow import (
    Outcome,
    WorkflowError,
    callback_done,
    callback_due_list,
    callback_number,
    close_request,
    correct_request,
    defer_request,
    ensure_can_edit,
    ensure_open,
    now_utc,
    originate_action,
    patch_request,
    record,
    route_request,
    urgent_contact,
    version_conflict,
)

Step = Callable[[AsyncSession, Principal, Request, dict[str, Any]], Awaitable[Outcome]]


def _parse_number(request: web.Request) -> int:
    number = ascii_int(request.match_info["number"])
    if number is None:
        raise ApiError(400, "bad_number", "Номер заявки должен быть целым числом")
    return number


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.body_exists:  # (read already by hotline.web.bodies)
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "bad_json", "Тело запроса должно быть JSON") from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "Тело запроса должно быть JSON-объектом")
    return body


async def _current_json(request: web.Request, number: int) -> dict[str, Any] | None:
    services = request.app[SERVICES]
    async with services.db.session() as session:
        found = await load_request(session, number)
        return await request_detail(session, found) if found is not None else None


# An entity tag as If-Match lists them; ours are the request's version: "7".
_ENTITY_TAG = re.compile(r'\s*(?:W/)?"([^"]*)"\s*')
UNCONDITIONAL_ATTEMPTS = 3


def if_match_versions(header: str | None) -> list[int] | None:
    """The request versions an ``If-Match`` header names; None when there is no precondition
    (no header, or ``*``: the request only has to exist). A tag that is not one of our
    versions matches nothing; a header that is not a list of entity tags is a 400."""
    if header is None or header.strip() == "*":
        return None
    versions: list[int] = []
    for part in header.split(","):
        match = _ENTITY_TAG.fullmatch(part)
        if match is None:
            raise ApiError(400, "bad_header",
                           'Заголовок If-Match: ETag, полученный при чтении заявки, например "3"')
        if match[1].isdigit() and len(match[1]) <= 18:
            versions.append(int(match[1]))
    return versions


async def _run(request: web.Request, action: Step, status: int = 200) -> web.Response:
    """Load the visible request, apply ``action``, answer with the request's new JSON.

    ``If-Match`` (the ETag of a GET) and a ``version`` in the body are both preconditions: a
    stale one gets 409 ``version_conflict``. Without either the last write wins: an edit that
    lost a race with another is simply applied again on top of it."""
    number = _parse_number(request)
    user = current_user(request)
    body = await _body(request)
    accepted = if_match_versions(request.headers.get(hdrs.IF_MATCH))
    unconditional = accepted is None and body.get("version") is None
    services = request.app[SERVICES]
    for attempt in range(1, UNCONDITIONAL_ATTEMPTS + 1):
        try:
            async with services.db.sessions.begin() as session:
                found = await get_visible_request(session, user, number)
                if accepted is not None and found.closed_at is None \
                        and found.version not in accepted:
                    raise version_conflict(found)
                outcome = await action(session, user, found, body)
                await services.outbox.store_in(session, outcome.notes)
                if outcome.request is not found:
                    outcome.request = await load_request(session, outcome.request.number) \
                        or outcome.request
                data = await request_detail(session, outcome.request)
            break
        except WorkflowError as exc:
            if exc.code != "version_conflict":
                raise  # answered as it is by the error middleware
            if unconditional and attempt < UNCONDITIONAL_ATTEMPTS:
                continue
            raise ApiError(409, exc.code, exc.message,
                           current=await _current_json(request, number)) from None
        except Invalid as exc:
            raise ApiError(422, "invalid", exc.message, fields=exc.fields) from None
        except ClosedRequestError:
            raise _closed(number) from None
        except IntegrityError as exc:
            if CLOSED_MESSAGE in str(exc.orig):
                raise _closed(number) from None
            raise
    services.outbox.publish(outcome.notes)
    if outcome.warnings:
        data["warnings"] = outcome.warnings
    return web.json_response(data, status=status,
                             headers={hdrs.ETAG: etag_of(data["version"])})


def _closed(number: int) -> ApiError:
    return ApiError(409, "closed", f"Заявка {number} закрыта: изменения не принимаются")


def _settings(request: web.Request) -> Any:
    return request.app[SERVICES].settings


# ------------------------------------------------------------------ request writes
def _write(apply: Callable[..., Awaitable[Outcome]], *, codes: bool = False,
           settings: bool = False,
           status: int = 200) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A handler running one domain action: ``apply(session, user, request, body, [topic
    codes | settings], remote)`` inside ``_run`` (visibility, errors, notifications)."""
    async def handle(request: web.Request) -> web.Response:
        async def act(session: AsyncSession, user: Principal, found: Request,
                      body: dict[str, Any]) -> Outcome:
            extra: list[Any] = []
            if codes:
                extra.append(await active_codes(session))
            if settings:
                extra.append(_settings(request))
            return await apply(session, user, found, body, *extra, remote_of(request))
        return await _run(request, act, status=status)
    return handle


patch = _write(patch_request, codes=True)
close = _write(close_request)
correction = _write(correct_request, codes=True, status=201)
route = _write(route_request, settings=True)
defer = _write(defer_request, settings=True)
done = _write(callback_done)
urgent = _write(urgent_contact, settings=True)


def _ami_unavailable() -> ApiError:
    return ApiError(503, "ami_unavailable",
                    "Нет связи с АТС: звонок не может быть выполнен, позвоните вручную")


async def click_to_call(request: web.Request) -> web.Response:
    """Originate a call-back: the operator's phone rings, then the citizen is dialled; the
    call (and its recording) is linked to the request by intake."""
    services = request.app[SERVICES]
    ami = services.ami
    # A standby instance (several on one PostgreSQL) has the ingesting one place the call.
    forward = not services.ingesting
    if not forward and (ami is None or getattr(ami, "state", None) != "connected"):
        raise _ami_unavailable()
    user = current_user(request)
    if not user.extension:
        raise ApiError(422, "invalid", "У пользователя не задан внутренний номер",
                       fields={"extension": "Не задан внутренний номер телефона оператора"})

    async def act(session: AsyncSession, user: Principal, found: Request,
                  body: dict[str, Any]) -> Outcome:
        ensure_can_edit(user, found)
        ensure_open(found)
        number = callback_number(found, body)
        action = originate_action(found, user, number, services.settings)
        at = now_utc()
        record(session, found, user, "callback_call", at, number=number,
               extension=user.extension)
        audit(session, user, "callback_call", found.number, remote_of(request), number=number)
        try:
            if forward:
                answer = await originate_via_ingester(request.app, action, number, found.id)
            else:
                answer = await place_callback(services, action, number, found.id)
        except (ConnectionError, TimeoutError):
            raise _ami_unavailable() from None
        if forward and "error" in answer:  # the ingester could not reach the PBX
            raise _ami_unavailable()
        if refused(answer):
            raise ApiError(502, "originate_failed",
                           f"АТС отклонила вызов: {answer.get('Message', '')}".strip())
        return Outcome(found)
    return await _run(request, act)


async def callbacks(request: web.Request) -> web.Response:
    user = current_user(request)
    require(user, Action.LIST_CALLBACKS)
    due = request.query.get("due", "all")
    if due not in ("overdue", "today", "all"):
        raise ApiError(400, "bad_parameter", "Параметр due: overdue, today или all")
    # Operators and SMO users see their own call-backs; the administrator everybody's
    # (or only their own with mine=1).
    mine = scope_of(user) is not Scope.ALL or request.query.get("mine") == "1"
    services = request.app[SERVICES]
    async with services.db.session() as session:
        items = await callback_due_list(session, user, due, services.settings, mine)
    await services.audit_log.record(user, "list_callbacks", remote=remote_of(request),
                                    due=due, count=len(items))
    return web.json_response({"items": items, "total": len(items)})


# ------------------------------------------------------------------ topic classifier
async def topics_list(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    include_inactive = request.query.get("all") == "1"
    async with services.db.sessions.begin() as session:
        topics = await current_topics(session, include_inactive=include_inactive)
    return web.json_response({"items": [t.public() for t in topics]})


async def topic_save(request: web.Request) -> web.Response:
    user = current_user(request)
    require(user, Action.EDIT_CLASSIFIER, "Классификатор изменяет администратор")
    code = request.match_info["code"]
    body = await _body(request)
    errors: dict[str, str] = {}
    if not code.replace("_", "").isalnum() or len(code) > 80:
        errors["code"] = "Код: латинские буквы, цифры и _, до 80 символов"
    label = body.get("label")
    if not isinstance(label, str) or not label.strip() or len(label) > 300:
        errors["label"] = "Название: непустая строка до 300 символов"
    active = body.get("active", True)
    if not isinstance(active, bool):
        errors["active"] = "Ожидается true/false"
    position = body.get("position")
    if position is not None and (isinstance(position, bool) or not isinstance(position, int)):
        errors["position"] = "Ожидается целое число"
    if errors:
        raise ApiError(422, "invalid", "Проверьте заполнение полей", fields=errors)
    services = request.app[SERVICES]
    async with services.db.sessions.begin() as session:
        topic = await save_topic(session, code, str(label).strip(), bool(active), position,
                                 user.login)
        audit(session, user, "classifier_topic", remote=remote_of(request), **topic.public())
    return web.json_response(topic.public())


async def _seed_classifier(app: web.Application) -> None:
    async with app[SERVICES].db.sessions.begin() as session:
        await ensure_seeded(session)


def attach(app: web.Application) -> None:
    """Add the workflow routes to the application (called by hotline.assembly)."""
    base = "/api/v1/requests/{number}"
    app.router.add_patch(base, patch)
    app.router.add_post(base + "/close", close)
    app.router.add_post(base + "/correction", correction)
    app.router.add_post(base + "/route", route)
    app.router.add_post(base + "/defer", defer)
    app.router.add_post(base + "/callback", click_to_call)
    app.router.add_post(base + "/callback/done", done)
    app.router.add_post(base + "/urgent", urgent)
    app.router.add_get("/api/v1/callbacks", callbacks)
    app.router.add_get("/api/v1/classifier/topics", topics_list)
    app.router.add_put("/api/v1/classifier/topics/{code}", topic_save)
    app.router.add_get("/api/v1/reports/summary", report_summary)
    app.router.add_get("/api/v1/reports/summary.csv", report_csv)
    app.router.add_get("/api/v1/reports/summary.xlsx", report_xlsx)
    app.on_startup.append(_seed_classifier)


# ------------------------------------------------------------------ reports
async def _report(request: web.Request) -> dict[str, Any]:
    """Admin and auditor: the whole journal; an SMO user: that SMO's slice."""
    user = current_user(request)
    services = request.app[SERVICES]
    tz = services.settings.local_timezone
    compare = request.query.get("compare") in ("1", "true")
    try:
        period = parse_period(request.query.get("period", ""), tz)
        if compare:
            period.previous(tz)  # the first reportable period has none
    except BadPeriod as exc:
        raise ApiError(400, "bad_parameter", str(exc)) from None
    smo = report_slice(user, request.query.get("smo"))
    async with services.db.session() as session:
        data = await summary(session, period, tz=tz, smo=smo,
                             compare=compare)
    await services.audit_log.record(user, "report", remote=remote_of(request),
                                    period=period.label, smo=smo)
    return data


async def report_summary(request: web.Request) -> web.Response:
    return web.json_response(await _report(request))


async def report_csv(request: web.Request) -> web.Response:
    data = await _report(request)
    return web.Response(body=to_csv(data), content_type="text/csv", charset="utf-8",
                        headers=_attachment(f"hotline-{data['period']}.csv"))


async def report_xlsx(request: web.Request) -> web.Response:
    data = await _report(request)
    return web.Response(
        body=to_xlsx(data),
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers=_attachment(f"hotline-{data['period']}.xlsx"))


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}
