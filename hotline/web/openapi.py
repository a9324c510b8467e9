"""The OpenAPI 3.1 description of the HTTP API (DESIGN §5 and the additions), served without
sign-in at ``GET /api/v1/openapi.json``.

Kept as code next to the handlers so that it follows them: the request, call, recording, audit
and user shapes are built from the ORM columns and the field lists the JSON is made from
(``journal.queries.REQUEST_FIELDS`` …), the PATCH body from the request card
(``journal.card``: which fields, their types and limits), enums from the model's constants.
``tests/test_openapi.py`` checks that every route of the application is described and that
the document is valid OpenAPI 3.1;
``tests/test_api_schemathesis.py`` fuzzes a running service against it.

Not described: the HTML pages (``/``, ``/login``, ``/operator``, ``/admin``, ``/requests``) and
``/static/…``, which are files for browsers, not API; and the ``HEAD`` twin aiohttp adds to
every ``GET``.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any, get_args

from aiohttp import web
from sqlalchemy import Boolean, Float, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase

from journal.access import ROUTE_TARGETS
from journal.analytics import REPORTS
from journal.callback_attempts import RESULTS as CALLBACK_RESULTS
from journal.card import GROUPS, REDIRECT_TARGETS, CardField, FieldType, Input, text_limit
from journal.missed import FILTERS as MISSED_FILTERS
from journal.missed import STATES as MISSED_STATES
from journal.models import (
    LEVELS,
    ROLES,
    STATUSES,
    AuditEntry,
    Call,
    CallLeg,
    Recording,
    Request,
    Transfer,
    User,
    UtcDateTime,
)
from journal.queries import REQUEST_FIELDS, TIME_FIELDS
from journal.validation import PATCHABLE

PATH = "/api/v1/openapi.json"
Schema = dict[str, Any]
MAX_NUMBER = 10**18 - 1  # the handlers take at most 18 digits
ERROR_STATUSES = {
    400: "Неверный запрос (параметр, JSON, заголовок)",
    401: "Требуется вход в систему",
    403: "Недостаточно прав (или нет CSRF-токена при входе по cookie)",
    404: "Не найдено (или не видно по роли: существование не раскрывается)",
    409: "Конфликт: заявка закрыта, уже изменена другим (version_conflict) или не в том состоянии",
    410: "Запись удалена по истечении срока хранения",
    413: "Слишком большой запрос",
    416: "Диапазон вне файла",
    422: "Ошибки заполнения полей (fields: сообщение по каждому полю)",
    429: "Слишком много неудачных попыток входа с этого адреса (Retry-After)",
    502: "АТС отклонила вызов",
    503: "Недоступна зависимость (АТС, хранилище записей, база данных)",
}


# ------------------------------------------------------------------ schemas from the code
def _nullable(schema: Schema) -> Schema:
    kind = schema["type"]
    return {**schema, "type": [kind, "null"]}


def column_schema(model: type[DeclarativeBase], name: str) -> Schema:
    """The JSON Schema of how a column of ``model`` appears in the API's JSON."""
    column = model.__table__.columns[name]
    schema: Schema
    if isinstance(column.type, Boolean):
        schema = {"type": "boolean"}
    elif isinstance(column.type, Integer):  # BigInteger too
        schema = {"type": "integer"}
    elif isinstance(column.type, Float):
        schema = {"type": "number"}
    elif isinstance(column.type, UtcDateTime):  # a TypeDecorator, not a DateTime
        schema = {"type": "string", "format": "date-time"}
    elif isinstance(column.type, String | Text):
        schema = {"type": "string"}
    else:  # JSON columns
        schema = {"type": "object"}
    return _nullable(schema) if column.nullable else schema


def object_schema(model: type[DeclarativeBase], names: Iterable[str],
                  renamed: dict[str, str] | None = None, **extra: Schema) -> Schema:
    """An object whose properties are columns of ``model`` (``renamed``: JSON key → column)
    plus ``extra`` properties; all of them are always present."""
    properties = {name: column_schema(model, name) for name in names}
    for key, column in (renamed or {}).items():
        properties[key] = column_schema(model, column)
    properties.update(extra)
    return {"type": "object", "required": list(properties), "properties": properties}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _list_of(name: str, total: bool = True) -> Schema:
    properties: Schema = {"items": {"type": "array", "items": _ref(name)}}
    if total:
        properties["total"] = {"type": "integer", "minimum": 0}
    return {"type": "object", "required": list(properties), "properties": properties}


def _request_summary() -> Schema:
    schema = object_schema(Request, [*REQUEST_FIELDS, *TIME_FIELDS],
                           closed={"type": "boolean"})
    properties = schema["properties"]
    properties["status"] = {"type": "string", "enum": list(STATUSES)}
    properties["level"] = {"type": "string", "enum": list(LEVELS)}
    properties["source"] = {"type": "string", "enum": ["ami", "cel"],
                            "description": "ami — принята по AMI; cel — восстановлена из CEL"}
    properties["version"] = {"type": "integer", "minimum": 1,
                             "description": "Меняется при каждом изменении; ETag заявки"}
    return schema


def _request_detail() -> Schema:
    summary = _request_summary()
    properties = {
        **summary["properties"],
        "calls": {"type": "array", "items": _ref("Call")},
        "recordings": {"type": "array", "items": _ref("Recording")},
        "history": {"type": "array", "items": {
            "type": "object", "required": ["at", "user", "action"],
            "properties": {"at": {"type": "string", "format": "date-time"},
                           "user": {"type": ["string", "null"]},
                           "action": {"type": "string"}}}},
    }
    return {
        "type": "object", "required": [*summary["required"], "calls", "recordings", "history"],
        "properties": {**properties, "warnings": {
            "type": "object", "additionalProperties": {"type": "string"},
            "description": "Предупреждения по полям (сохранено, но стоит проверить)"}},
    }


# What the PATCH body's description adds to a string field's type, by the card's type.
_FORMAT_NOTES = {
    "phone": "Российский номер: +7…, 8…; хранится как +7XXXXXXXXXX",
    "enp": "ЕНП, 16 цифр",
    "snils": "СНИЛС, 11 цифр (XXX-XXX-XXX YY)",
    "classifier": "Код темы из классификатора (GET /api/v1/classifier/topics)",
}


def _patch_property(field: CardField) -> Schema:
    if field.type == "text":
        schema: Schema = {"type": ["string", "null"]}
        if field.max_length is not None:
            schema["maxLength"] = field.max_length
        return schema
    if field.type == "bool":
        return {"type": "boolean"}
    if field.type == "optional_bool":
        return {"type": ["boolean", "null"],
                "description": f"{field.label}: да, нет, null — не оценена"}
    if field.type == "choice":
        if field.required:
            return {"type": "string", "enum": list(field.values())}
        return {"enum": [*field.values(), None]}
    schema = {"type": ["string", "null"]}
    if field.type in _FORMAT_NOTES:
        schema["description"] = _FORMAT_NOTES[field.type]
    return schema


def _request_patch() -> Schema:
    """The PATCH body: the card's patchable fields, as journal.validation accepts them (it
    checks more: phone, ЕНП, СНИЛС, the classifier's topics)."""
    properties = {name: _patch_property(PATCHABLE[name]) for name in sorted(PATCHABLE)}
    return {"type": "object", "additionalProperties": False,
            "properties": {**properties, "version": _version_field()}}


def _card() -> Schema:
    """``GET /api/v1/card``: journal.card.card_json."""
    text = {"type": "string"}
    nullable_text = {"type": ["string", "null"]}
    choice = {"type": "object", "required": ["value", "label"],
              "properties": {"value": text, "label": text}}
    properties: Schema = {
        "name": text, "label": text,
        "type": {"type": "string", "enum": list(get_args(FieldType))},
        "group": {"enum": [*(key for key, _ in GROUPS), None]},
        "patchable": {"type": "boolean"}, "required": {"type": "boolean"},
        "max_length": {"type": ["integer", "null"]},
        "choices": {"type": "array", "items": choice},
        "input": {"enum": [*get_args(Input), None]}, "hint": text,
        "inputmode": nullable_text, "counter": {"type": ["integer", "null"]},
        "empty_label": nullable_text,
        "column": {**text, "description": "Заголовок столбца в таблицах (реестр)"},
    }
    group = {"type": "object", "required": ["key", "title"],
             "properties": {"key": text, "title": text}}
    return {"type": "object", "required": ["groups", "fields"], "properties": {
        "groups": {"type": "array", "items": group},
        "fields": {"type": "array", "description": "Поля в порядке формы", "items": {
            "type": "object", "required": list(properties), "properties": properties}}}}


def _version_field() -> Schema:
    return {"type": "integer", "description": "Версия, полученная при чтении (необязательно): "
            "при несовпадении — 409 version_conflict"}


def _body(properties: Schema, required: Iterable[str] = ()) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def _text(limit: int, nullable: bool = True) -> Schema:
    return {"type": ["string", "null"] if nullable else "string", "maxLength": limit}


TIME_INPUT = {"type": ["string", "null"],
              "description": "ISO 8601; без часового пояса — местное время фонда"}


def _schemas() -> dict[str, Schema]:
    principal = {"type": "object", "required": ["id", "login", "role", "smo", "extension"],
                 "properties": {"id": {"type": "integer"}, "login": {"type": "string"},
                                "role": {"type": "string", "enum": list(ROLES)},
                                "smo": {"type": ["string", "null"]},
                                "extension": {"type": ["string", "null"]}}}
    call = object_schema(
        Call, ["id", "linkedid", "direction", "caller_number", "line", "started_at",
               "queued_at", "answered_at", "ended_at", "outcome", "end_reason", "operator",
               "answered_by_external", "queue", "source"],
        legs={"type": "array", "items": object_schema(
            CallLeg, ["uniqueid", "channel", "extension", "queue", "rang_at", "answered_at",
                      "ended_at"])},
        transfers={"type": "array", "items": object_schema(
            Transfer, ["kind", "to", "target", "smo", "at"], {"from": "from_extension"})},
        timeline={"type": "array", "items": {
            "type": "object", "required": ["at", "type"],
            "properties": {"at": {"type": "string", "format": "date-time"},
                           "type": {"type": "string"}}}})
    recording = object_schema(
        Recording, ["id", "call_id", "leg_uniqueid", "started_at", "duration_s", "sha256",
                    "bytes", "status", "content_type"],
        file_name={"type": "string"}, url={"type": "string"})
    history = {"type": "array", "description": "Прежние заявки того же номера (как в call.ringing)",
               "items": {"type": "object", "required": ["number", "created_at", "status", "topic"],
                         "properties": {"number": {"type": "integer"},
                                        "created_at": {"type": ["string", "null"],
                                                       "format": "date-time"},
                                        "status": {"type": "string", "enum": list(STATUSES)},
                                        "topic": {"type": ["string", "null"]}}}}
    active_call = object_schema(
        Call, ["direction", "caller_number", "line", "started_at", "answered_at", "operator",
               "answered_by_external", "queue", "linkedid"],
        {"call_id": "id"}, request_number={"type": ["integer", "null"]}, history=history)
    missed_call = _missed_call_schema(history)
    callback = {"allOf": [_ref("RequestSummary"),
                          {"type": "object", "required": ["overdue"],
                           "properties": {"overdue": {"type": "boolean"}}}]}
    audit_entry = object_schema(
        AuditEntry, ["id", "at", "action", "request_number", "remote"],
        {"user": "user_login"}, detail={"type": "object"})
    user = object_schema(User, ["id", "login", "smo", "extension", "full_name", "locked",
                                "locked_until", "failed_logins", "created_at"],
                         role={"type": "string", "enum": list(ROLES)})
    topic = {"type": "object", "required": ["code", "label", "version", "active", "position"],
             "properties": {"code": {"type": "string"}, "label": {"type": "string"},
                            "version": {"type": "integer"}, "active": {"type": "boolean"},
                            "position": {"type": ["integer", "null"]}}}
    report = {"type": "object",
              "required": ["period", "from", "to", "smo", "requests", "calls", "callbacks"],
              "properties": {"period": {"type": "string"},
                             "from": {"type": "string", "format": "date-time"},
                             "to": {"type": "string", "format": "date-time"},
                             "smo": {"type": ["string", "null"]},
                             "requests": {"type": "object"}, "calls": {"type": "object"},
                             "callbacks": {"type": "object"},
                             "previous": {"type": "object"}, "change": {"type": "object"}}}
    health = {"type": "object", "required": ["status", "database", "ami"],
              "properties": {"status": {"type": "string", "enum": ["ok", "degraded"]},
                             "database": {"type": "string", "enum": ["ok", "unavailable"]},
                             "ami": {"type": "object", "required": ["state"],
                                     "properties": {"state": {"type": "string"}}},
                             "pipeline": {"type": "object"}, "intake": {"type": "object"},
                             "active_calls": {"type": "integer"},
                             "instance": {"type": "object", "description":
                                          "HOTLINE_BUS, whether this instance ingests its "
                                          "PBX (standby: another one does)"}}}
    ui_config = {"type": "object",
                 "required": ["smo", "redirect_targets", "kinds", "hotline_numbers", "timezone"],
                 "properties": {
                     "smo": {"type": "array", "items": {
                         "type": "object", "required": ["code", "name"],
                         "properties": {"code": {"type": "string"},
                                        "name": {"type": ["string", "null"]}}}},
                     "redirect_targets": {"type": "array", "items": {
                         "type": "object", "required": ["code", "name"],
                         "properties": {"code": {"type": "string"},
                                        "name": {"type": "string"}}}},
                     "kinds": {"type": "array", "items": {"type": "string"}},
                     "hotline_numbers": {"type": "array", "items": {"type": "string"}},
                     "timezone": {"type": "string"}}}
    mismatch = {"type": "object",
                "required": ["kind", "linkedid", "started_at", "caller", "request_number"],
                "properties": {
                    "kind": {"type": "string", "enum": ["no_request", "no_recording",
                                                        "not_in_cel"]},
                    "linkedid": {"type": "string"},
                    "started_at": {"type": "string", "format": "date-time"},
                    "caller": {"type": "string"},
                    "request_number": {"type": ["integer", "null"]}}}
    completeness = {"type": "object",
                    "required": ["date", "cel_calls", "requests", "answered",
                                 "recordings_linked", "missing", "complete", "mismatches"],
                    "properties": {"date": {"type": "string", "format": "date"},
                                   "cel_calls": {"type": "integer"},
                                   "requests": {"type": "integer"},
                                   "answered": {"type": "integer"},
                                   "recordings_linked": {"type": "integer"},
                                   "missing": {"type": "integer"},
                                   "complete": {"type": "boolean"},
                                   "mismatches": {"type": "array", "items": mismatch}}}
    error = {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {
            "code": {"type": "string"}, "message": {"type": "string"},
            "fields": {"type": "object", "additionalProperties": {"type": "string"},
                       "description": "422: сообщение по каждому неверному полю"},
            "current": {**_ref("RequestDetail"),
                        "description": "409 version_conflict: заявка, как она сохранена"}}}}}
    return {
        "Error": error, "User": principal, "RequestSummary": _request_summary(),
        "RequestDetail": _request_detail(), "RequestPatch": _request_patch(), "Call": call,
        "Recording": recording, "ActiveCall": active_call, "Callback": callback,
        "AuditEntry": audit_entry, "UserAccount": user, "Topic": topic, "Report": report,
        "Health": health, "UiConfig": ui_config, "Card": _card(), "Completeness": completeness,
        "MissedCall": missed_call,
        "MissedCalls": {"type": "object",
                        "required": ["items", "total", "overdue", "deadline_hours",
                                     "max_attempts"],
                        "properties": {"items": {"type": "array", "items": _ref("MissedCall")},
                                       "total": {"type": "integer"},
                                       "overdue": {"type": "integer"},
                                       "deadline_hours": {"type": "number"},
                                       "max_attempts": {"type": "integer"}}},
        **_analytics_schemas(),
    }


def _missed_call_schema(history: Schema) -> Schema:
    nullable_text = {"type": ["string", "null"]}
    attempt = {"type": "object", "required": ["at", "result", "source", "user", "note"],
               "properties": {"at": {"type": "string", "format": "date-time"},
                              "result": {"type": "string", "enum": list(CALLBACK_RESULTS)},
                              "source": {"type": "string", "enum": ["call", "manual"]},
                              "user": nullable_text, "note": nullable_text}}
    properties: Schema = {
        "number": {"type": "integer"}, "created_at": {"type": "string", "format": "date-time"},
        "caller_number": {"type": "string"}, "contact_phone": nullable_text,
        "line": {"type": "string"}, "queue": nullable_text,
        "wait_s": {"type": ["number", "null"]},
        "status": {"type": "string", "enum": list(STATUSES)}, "version": {"type": "integer"},
        "result": nullable_text,
        "state": {"type": "string", "enum": list(MISSED_STATES)},
        "due_at": {"type": "string", "format": "date-time"}, "overdue": {"type": "boolean"},
        "attempts": {"type": "array", "items": attempt},
        "failed_attempts": {"type": "integer"}, "max_attempts": {"type": "integer"},
        "answered_later": {"type": ["object", "null"], "required": ["number", "created_at"],
                           "properties": {"number": {"type": "integer"},
                                          "created_at": {"type": "string",
                                                         "format": "date-time"}}},
        "history": history,
    }
    return {"type": "object", "required": sorted(properties), "properties": properties}


def _analytics_schemas() -> dict[str, Schema]:
    """The analytical reports (journal.analytics) and the register (journal.register)."""
    figure = {"type": ["number", "string", "null"]}
    column = {"type": "object", "required": ["key", "title", "kind"],
              "properties": {"key": {"type": "string"}, "title": {"type": "string"},
                             "kind": {"type": "string", "enum": [
                                 "text", "int", "percent", "seconds", "days", "hours"]}}}
    section = {"type": "object", "required": ["key", "title", "columns", "rows", "totals",
                                              "chart"],
               "properties": {
                   "key": {"type": "string"}, "title": {"type": "string"},
                   "columns": {"type": "array", "items": column},
                   "rows": {"type": "array", "items": {
                       "type": "object", "additionalProperties": figure}},
                   "totals": {"type": ["object", "null"], "additionalProperties": figure},
                   "chart": {"type": ["string", "null"],
                             "description": "Столбец, который показывает диаграмма"}}}
    headline = {"type": "object", "additionalProperties": {"type": ["number", "null"]}}
    compared = {"oneOf": [{"type": "null"}, {
        "type": "object", "required": ["period", "headline"],
        "properties": {"period": {"type": "string"}, "headline": headline}}]}
    report = {"type": "object",
              "required": ["report", "title", "period", "from", "to", "smo", "headline",
                           "headline_titles", "compare", "sections"],
              "properties": {
                  "report": {"type": "string", "enum": list(REPORTS)},
                  "title": {"type": "string"}, "period": {"type": "string"},
                  "from": {"type": "string", "format": "date-time"},
                  "to": {"type": "string", "format": "date-time"},
                  "smo": {"type": ["string", "null"]}, "headline": headline,
                  "headline_titles": {"type": "object",
                                      "additionalProperties": {"type": "string"}},
                  "compare": {"type": "object", "required": ["previous", "year_ago"],
                              "properties": {"previous": compared, "year_ago": compared}},
                  "sections": {"type": "array", "items": section}}}
    register = {"type": "object",
                "required": ["report", "title", "period", "columns", "items", "total"],
                "properties": {
                    "report": {"const": "register"}, "title": {"type": "string"},
                    "period": {"type": "string"},
                    "columns": {"type": "array", "items": column},
                    "items": {"type": "array", "items": {
                        "type": "object", "additionalProperties": figure}},
                    "total": {"type": "integer", "minimum": 0}}}
    return {"AnalyticsReport": report, "Register": register}


def _analytics_paths(file_ok: Schema, xlsx: str) -> dict[str, Schema]:
    who = "admin, auditor, smo (своя СМО)"
    xlsx_ok = {"description": "Файл", "content": {xlsx: {"schema": {
        "type": "string", "contentEncoding": "binary"}}}}
    smo = _query("smo", {"type": "string"}, "Администратор и аудитор: срез по СМО")
    params = [{**PERIOD, "required": True}, smo]
    compared = ("С показателями предыдущего периода и того же периода годом ранее.")
    paths: dict[str, Schema] = {}
    for key, (title, _) in REPORTS.items():
        paths[f"/api/v1/reports/{key}"] = {"get": _op(
            title, _json(_ref("AnalyticsReport")), {400, 403}, who=who, tag="reports",
            parameters=params, description=compared)}
        paths[f"/api/v1/reports/{key}.csv"] = {"get": _op(
            f"{title}: CSV", file_ok, {400, 403}, who=who, tag="reports", parameters=params)}
        paths[f"/api/v1/reports/{key}.xlsx"] = {"get": _op(
            f"{title}: XLSX с диаграммой", xlsx_ok, {400, 403}, who=who, tag="reports",
            parameters=params)}
    paths["/api/v1/reports/quarterly.xlsx"] = {"get": _op(
        "Аналитические материалы: книга XLSX, лист на каждый отчёт", xlsx_ok, {400, 403},
        who=who, tag="reports", parameters=params,
        description="Наименование фонда и период на каждом листе, итоги, диаграммы.")}
    register_params = [*params, _query("status", {"type": "string", "enum": list(STATUSES)}),
                       _query("level", {"type": "string", "enum": list(LEVELS)}),
                       _query("caller", {"type": "string"})]
    paths["/api/v1/reports/register"] = {"get": _op(
        "Реестр обращений за период (страница)", _json(_ref("Register")), {400, 403}, who=who,
        tag="reports", parameters=[*register_params, LIMIT, OFFSET])}
    paths["/api/v1/reports/register.csv"] = {"get": _op(
        "Реестр обращений: CSV (потоком)", file_ok, {400, 403}, who=who, tag="reports",
        parameters=register_params)}
    paths["/api/v1/reports/register.xlsx"] = {"get": _op(
        "Реестр обращений: XLSX", xlsx_ok, {400, 403}, who=who, tag="reports",
        parameters=register_params)}
    return paths


# ------------------------------------------------------------------ operations
def _json(schema: Schema, description: str = "OK") -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(summary: str, ok: Schema | None, errors: Iterable[int], *, who: str = "",
        ok_status: int = 200, public: bool = False, parameters: list[Schema] | None = None,
        body: Schema | None = None, body_required: bool = False, tag: str = "journal",
        headers: Schema | None = None, description: str = "") -> Schema:
    responses: Schema = {}
    if ok is not None:
        responses[str(ok_status)] = ok
        if headers:
            responses[str(ok_status)] = {**ok, "headers": headers}
    codes = set(errors) | ({400, 413} if body is not None else set())
    if not public:
        codes |= {401}
    for status in sorted(codes):
        responses[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    operation: Schema = {"summary": summary, "tags": [tag], "responses": responses}
    text = " ".join(part for part in (f"Кто: {who}." if who else "", description) if part)
    if text:
        operation["description"] = text
    if public:
        operation["security"] = []
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {"required": body_required,
                                    "content": {"application/json": {"schema": body}}}
    return operation


def _query(name: str, schema: Schema, description: str = "") -> Schema:
    parameter: Schema = {"name": name, "in": "query", "required": False, "schema": schema}
    if description:
        parameter["description"] = description
    return parameter


def _path(name: str, schema: Schema) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema}


NUMBER = _path("number", {"type": "integer", "minimum": 0, "maximum": MAX_NUMBER}) | {"example": 1}
RECORDING_ID = _path("recording_id", {"type": "integer", "minimum": 0,
                                      "maximum": MAX_NUMBER}) | {"example": 1}
DATE_PARAM = {"type": "string", "description": "ГГГГ-ММ-ДД или ISO 8601 (без пояса — UTC)"}
LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50})
OFFSET = _query("offset", {"type": "integer", "minimum": 0, "maximum": 10**9, "default": 0})
ETAG_HEADER = {"ETag": {"description": 'Версия заявки, например "3": для If-Match',
                        "schema": {"type": "string"}}}
IF_MATCH = {"name": "If-Match", "in": "header", "required": False,
            "description": 'ETag из GET (например "3") или *: при устаревшей версии — 409 '
                           "version_conflict", "schema": {"type": "string"}}
PERIOD = _query("period", {"type": "string", "pattern": r"^\d{4}-(0[1-9]|1[0-2]|Q[1-4])$"},
                "ГГГГ-ММ (месяц) или ГГГГ-QN (квартал)")
REPORT_PARAMS = [PERIOD, _query("compare", {"type": "string", "enum": ["1", "true", "0"]}),
                 _query("smo", {"type": "string"}, "Администратор и аудитор: срез по СМО")]


def _write(summary: str, who: str, body: Schema | None, errors: Iterable[int] = (),
           ok_status: int = 200, description: str = "") -> Schema:
    """A write on one request: answers with the request as it now is, and its ETag."""
    return _op(summary, _json(_ref("RequestDetail")), {403, 404, 409, 422, *errors},
               who=who, ok_status=ok_status, parameters=[NUMBER, IF_MATCH], body=body,
               headers=ETAG_HEADER, description=description)


def _paths() -> dict[str, Schema]:
    signed_in = "любой вошедший пользователь"
    roles_see = "по роли (admin — всё, operator — заявки фонда, smo — своей СМО, auditor — чтение)"
    route_targets = sorted(ROUTE_TARGETS)
    file_ok = {"description": "Файл", "content": {
        "text/csv": {"schema": {"type": "string"}}}}
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return {
        **_analytics_paths(file_ok, xlsx),
        "/api/v1/auth/login": {"post": _op(
            "Вход: токен и cookie сессии", _json({
                "type": "object", "required": ["token", "csrf_token", "user"],
                "properties": {"token": {"type": "string"}, "csrf_token": {"type": "string"},
                               "user": _ref("User")}}),
            {401, 422, 429}, public=True, tag="auth", body_required=True,
            body=_body({"login": {"type": "string"}, "password": {"type": "string"}},
                       ["login", "password"]))},
        "/api/v1/auth/logout": {"post": _op(
            "Выход: сессия закрывается", _json({
                "type": "object", "required": ["ok"], "properties": {"ok": {"const": True}}}),
            {403}, who=signed_in, tag="auth")},
        "/api/v1/auth/me": {"get": _op(
            "Текущий пользователь", _json({"type": "object", "required": ["user"],
                                           "properties": {"user": _ref("User")}}),
            (), who=signed_in, tag="auth")},
        "/api/v1/requests": {"get": _op(
            "Заявки, новые первыми", _json(_list_of("RequestSummary")), {400},
            who=roles_see, parameters=[
                _query("caller", {"type": "string"}, "Номер звонившего (в любой записи)"),
                _query("status", {"type": "string", "enum": list(STATUSES)}),
                _query("level", {"type": "string", "enum": list(LEVELS)}),
                _query("smo", {"type": "string"}),
                _query("number", {"type": "integer", "minimum": 0, "maximum": MAX_NUMBER}),
                _query("from", DATE_PARAM, "Создана не раньше"),
                _query("to", DATE_PARAM, "Создана раньше"),
                LIMIT, OFFSET])},
        "/api/v1/requests/{number}": {
            "get": _op("Заявка со звонками, записями и историей",
                       _json(_ref("RequestDetail")), {400, 404}, who=roles_see,
                       parameters=[NUMBER], headers=ETAG_HEADER),
            "patch": _write(
                "Изменить поля заявки", "operator, smo, admin (в пределах видимости)",
                _ref("RequestPatch"), description=(
                    "Достаточно одних полей (последняя запись побеждает). С If-Match (ETag из "
                    "GET) или version устаревшее изменение получает 409 version_conflict "
                    "с текущей заявкой в error.current; закрытая заявка — 409 closed.")),
        },
        "/api/v1/requests/{number}/close": {"post": _write(
            "Закрыть заявку (далее только чтение)", "admin",
            _body({"version": _version_field()}))},
        "/api/v1/requests/{number}/correction": {"post": _write(
            "Исправление закрытой заявки: новая заявка со ссылкой на исходную",
            "operator, smo, admin", _ref("RequestPatch"), ok_status=201)},
        "/api/v1/requests/{number}/route": {"post": _write(
            "Направить: 2-й уровень, СМО, переадресация, письменное обращение, коррупция",
            "operator, admin; smo — кроме передачи в другую СМО", _body({
                "to": {"type": "string", "enum": route_targets},
                "smo": {"type": "string", "description": "Код СМО (to=smo)"},
                "redirected_to": {"type": "string", "enum": sorted(REDIRECT_TARGETS)},
                "note": _text(text_limit("redirect_note")), "version": _version_field()},
                ["to"]))},
        "/api/v1/requests/{number}/defer": {"post": _write(
            "Отсроченный ответ: телефон и срок перезвона", "operator, smo, admin", _body({
                "contact_phone": {"type": ["string", "null"]}, "due_at": TIME_INPUT,
                "version": _version_field()}))},
        "/api/v1/requests/{number}/callback": {"post": _write(
            "Перезвонить гражданину через АТС (звонит телефон оператора)",
            "operator, smo, admin с внутренним номером",
            _body({"number": {"type": ["string", "null"]}}), errors={502, 503})},
        "/api/v1/requests/{number}/callback/done": {"post": _write(
            "Отсроченный ответ дан", "operator, smo, admin", _body({
                "result": _text(text_limit("result")), "version": _version_field()}))},
        "/api/v1/requests/{number}/callback/attempt": {"post": _write(
            "Попытка перезвонить по пропущенному вызову (набрано вручную)",
            "operator, admin", _body({
                "result": {"type": "string", "enum": list(CALLBACK_RESULTS)},
                "note": _text(2000), "version": _version_field()}, ["result"]),
            description="409 not_missed — заявка не пропущенный вызов. Перезвон со страницы "
                        "(POST …/callback) записывает попытку сам, по исходу звонка.")},
        "/api/v1/missed": {"get": _op(
            "Пропущенные вызовы (новые первыми)", _json(_ref("MissedCalls")), {400, 403},
            who="operator, admin (state=overdue — только admin)", tag="calls", parameters=[
                _query("state", {"type": "string", "enum": list(MISSED_FILTERS),
                                 "default": "open"}),
                _query("days", {"type": "integer", "minimum": 1, "maximum": 92, "default": 7}),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 500,
                                 "default": 100})])},
        "/api/v1/requests/{number}/urgent": {"post": _write(
            "Неотложное вмешательство: связь с ответственным лицом МО", "operator, smo, admin",
            _body({"medical_org": _text(text_limit("medical_org"), nullable=False),
                   "contact_person": _text(300, nullable=False),
                   "action": _text(text_limit("urgent_action")),
                   "feedback": _text(5000), "contacted_at": TIME_INPUT,
                   "version": _version_field()}, ["medical_org", "contact_person"]))},
        "/api/v1/requests/{number}/recordings": {"get": _op(
            "Записи разговоров заявки", _json(_list_of("Recording", total=False)), {400, 404},
            who=roles_see, parameters=[NUMBER], tag="recordings")},
        "/api/v1/requests/{number}/recordings/{recording_id}": {"get": _op(
            "Звук записи (Range, ETag, If-None-Match)", {
                "description": "Весь файл", "headers": {"ETag": {"schema": {"type": "string"}}},
                "content": {"audio/wav": {"schema": {"type": "string",
                                                     "contentEncoding": "binary"}}}},
            {400, 404, 410, 416, 503}, who=roles_see, tag="recordings", parameters=[
                NUMBER, RECORDING_ID,
                {"name": "Range", "in": "header", "required": False,
                 "schema": {"type": "string"}, "description": "bytes=START-END"}],
            description="206 — часть файла по Range; 304 — If-None-Match совпал.")},
        "/api/v1/calls/active": {"get": _op(
            "Звонки в процессе", _json(_list_of("ActiveCall", total=False)), {403},
            who="operator, smo, admin, auditor", tag="calls")},
        "/api/v1/callbacks": {"get": _op(
            "Отсроченные ответы к выполнению", _json(_list_of("Callback")), {400, 403},
            who="operator, smo (свои), admin (все или mine=1)", parameters=[
                _query("due", {"type": "string", "enum": ["overdue", "today", "all"],
                               "default": "all"}),
                _query("mine", {"type": "string", "enum": ["0", "1"]})])},
        "/api/v1/classifier/topics": {"get": _op(
            "Классификатор тем", _json(_list_of("Topic", total=False)), (), who=signed_in,
            tag="classifier", parameters=[_query("all", {"type": "string", "enum": ["0", "1"]},
                                                 "1 — и неактивные")])},
        "/api/v1/classifier/topics/{code}": {"put": _op(
            "Добавить или изменить тему (новая версия)", _json(_ref("Topic")), {403, 422},
            who="admin", tag="classifier",
            parameters=[_path("code", {"type": "string", "pattern": "^[A-Za-z0-9_]{1,80}$"})],
            body=_body({"label": {"type": "string", "minLength": 1, "maxLength": 300},
                        "active": {"type": "boolean", "default": True},
                        "position": {"type": ["integer", "null"]}}, ["label"]),
            body_required=True)},
        "/api/v1/reports/summary": {"get": _op(
            "Отчёт за месяц или квартал", _json(_ref("Report")), {400, 403},
            who="admin, auditor, smo (своя СМО)", tag="reports", parameters=REPORT_PARAMS)},
        "/api/v1/reports/summary.csv": {"get": _op(
            "Отчёт в CSV", file_ok, {400, 403}, who="admin, auditor, smo (своя СМО)",
            tag="reports", parameters=REPORT_PARAMS)},
        "/api/v1/reports/summary.xlsx": {"get": _op(
            "Отчёт в XLSX", {"description": "Файл", "content": {xlsx: {"schema": {
                "type": "string", "contentEncoding": "binary"}}}},
            {400, 403}, who="admin, auditor, smo (своя СМО)", tag="reports",
            parameters=REPORT_PARAMS)},
        "/api/v1/audit": {"get": _op(
            "Журнал аудита, новые первыми", _json(_list_of("AuditEntry")), {400, 403},
            who="admin, auditor", tag="admin", parameters=[
                _query("request", {"type": "integer", "minimum": 0, "maximum": MAX_NUMBER}),
                _query("user", {"type": "string"}), _query("action", {"type": "string"}),
                _query("from", DATE_PARAM), _query("to", DATE_PARAM), LIMIT, OFFSET])},
        "/api/v1/users": {"get": _op(
            "Пользователи", _json(_list_of("UserAccount")), {403}, who="admin", tag="admin")},
        "/api/v1/users/{login}/unlock": {"post": _op(
            "Разблокировать пользователя", _json({
                "type": "object", "required": ["user"],
                "properties": {"user": _ref("UserAccount")}}),
            {403, 404}, who="admin", tag="admin",
            parameters=[_path("login", {"type": "string"})])},
        "/api/v1/completeness": {"get": _op(
            "Полнота журнала за день: звонки на 8-800 по CEL, заявки, записи",
            _json(_ref("Completeness")), {400, 403, 409, 503}, who="admin, auditor",
            tag="admin", parameters=[_query(
                "date", {"type": "string", "format": "date"},
                "ГГГГ-ММ-ДД, местный день АТС (по умолчанию вчера)")])},
        "/api/v1/ui/config": {"get": _op(
            "Что страницам нужно из настроек", _json(_ref("UiConfig")), (), who=signed_in,
            tag="pages")},
        "/api/v1/card": {"get": _op(
            "Карточка обращения: поля, подписи, типы, ограничения, группы формы",
            _json(_ref("Card")), (), who=signed_in, tag="pages")},
        "/api/v1/events": {"get": _op(
            "Поток событий (websocket)", None, {400, 403}, who=signed_in, tag="events",
            parameters=[
                _query("token", {"type": "string"}, "Токен, если нет заголовка и cookie"),
                _query("last_event_id", {"type": "integer", "minimum": 0,
                                         "maximum": MAX_NUMBER},
                       "Продолжить после этого события")],
            description=("Websocket: сначала кадр hello, затем события call.* и request.* "
                         "(DESIGN §5). Без Upgrade: websocket — 400.")) | {
            "responses": {"101": {"description": "Переход на websocket"},
                          **{str(s): {"$ref": f"#/components/responses/E{s}"}
                             for s in (400, 401, 403)}}}},
        "/api/v1/openapi.json": {"get": _op(
            "Это описание (OpenAPI 3.1)", _json({"type": "object"}), (), public=True,
            tag="meta")},
        "/healthz": {"get": _op(
            "Состояние: АТС и база данных", _json(_ref("Health")), (), public=True,
            tag="meta") | {"responses": {"200": _json(_ref("Health")),
                                         "503": _json(_ref("Health"), "База недоступна")}}},
        "/api/v1/health": {"get": _op(
            "Состояние с подробностями: ошибка АМИ, счётчики приёма событий",
            _json(_ref("Health")), {403}, who="admin", tag="admin") | {
            "responses": {"200": _json(_ref("Health")),
                          "503": _json(_ref("Health"), "База недоступна"),
                          **{str(s): {"$ref": f"#/components/responses/E{s}"}
                             for s in (401, 403)}}}},
        "/metrics": {"get": _op(
            "Метрики Prometheus", {"description": "Текстовый формат Prometheus", "content": {
                "text/plain": {"schema": {"type": "string"}}}}, (), public=True,
            tag="meta")},
    }


@cache
def build_spec() -> dict[str, Any]:
    """The OpenAPI document (built once; it depends on code only, not on settings)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hotline",
            "version": "1",
            "description": (
                "Журнал обращений горячей линии ТФОМС (DESIGN §5). Ошибки: "
                '{"error": {"code", "message"}}. Вход: Bearer-токен из /api/v1/auth/login '
                "или cookie hotline_session; при входе по cookie изменяющим запросам нужен "
                "заголовок X-CSRF-Token со значением cookie hotline_csrf."),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "hotline_session"},
            },
            "schemas": _schemas(),
            "responses": {f"E{status}": _json(_ref("Error"), text)
                          for status, text in ERROR_STATUSES.items()},
        },
    }


async def openapi_json(_request: web.Request) -> web.Response:
    return web.json_response(build_spec())


def attach(app: web.Application) -> None:
    app.router.add_get(PATH, openapi_json)
