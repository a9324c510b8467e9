"""Who may see and do what (seed regulation §23) — the one place that decides.

Two tables say it all: ``SEES`` (which requests a role sees) and ``MAY`` (what a role may
do); ``ROUTES`` says where a role may hand a request. Everything else here — the SQL clause,
the Python checks, the websocket verdict, the report slice — is derived from them, so the JSON
API, the websocket stream, recordings and reports cannot disagree.

- admin: every request (under the fund's review or handed to an SMO); closes requests and
  corrects closed ones;
- operator (fund level 1/2): requests under the fund's review (not handed to an SMO);
- smo: only requests routed to that user's SMO;
- auditor: reads everything, changes nothing (reports);
- anticorruption: only requests flagged as corruption reports.
"""

from __future__ import annotations

from enum import Enum, StrEnum

from sqlalchemy import ColumnElement, false, true

from journal.models import Request
from journal.notes import Note
from journal.refusal import Refusal
from journal.users import Principal


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    SMO = "smo"
    AUDITOR = "auditor"
    ANTICORRUPTION = "anticorruption"


class Scope(Enum):
    """Which requests a role sees."""

    ALL = "all"
    FUND = "fund"  # not handed to an SMO
    OWN_SMO = "own_smo"  # handed to the user's own SMO
    CORRUPTION = "corruption"  # flagged as a corruption report
    NONE = "none"


class Action(StrEnum):
    EDIT = "edit"  # the card, routing, deferral, call-backs of a request the user sees
    CLOSE = "close"
    CORRECT = "correct"
    LIST_CALLBACKS = "list_callbacks"
    SEE_ACTIVE_CALLS = "see_active_calls"
    READ_REPORTS = "read_reports"
    READ_AUDIT = "read_audit"
    MANAGE_USERS = "manage_users"
    EDIT_CLASSIFIER = "edit_classifier"
    HEALTH_DETAILS = "health_details"
    RECEIVE_OWN_POPS = "receive_own_pops"  # the screen pop of the phone bound to the user


SEES: dict[Role, Scope] = {
    Role.ADMIN: Scope.ALL,
    Role.AUDITOR: Scope.ALL,
    Role.OPERATOR: Scope.FUND,
    Role.SMO: Scope.OWN_SMO,
    Role.ANTICORRUPTION: Scope.CORRUPTION,
}

_WRITERS = frozenset({Role.ADMIN, Role.OPERATOR, Role.SMO})
MAY: dict[Action, frozenset[Role]] = {
    Action.EDIT: _WRITERS,
    # §24: a closed record is not edited, closing is the administrator's, so is a correction
    # (it changes what a closed request says, as a new linked request).
    Action.CLOSE: frozenset({Role.ADMIN}),
    Action.CORRECT: frozenset({Role.ADMIN}),
    # §26: deferred answers are made by whoever edits the request, SMO representatives
    # included; each lists their own, the administrator everyone's.
    Action.LIST_CALLBACKS: _WRITERS,
    Action.SEE_ACTIVE_CALLS: frozenset({Role.OPERATOR, Role.ADMIN, Role.SMO, Role.AUDITOR}),
    # §36-38: reports for the fund (admin, auditor); each SMO its own slice.
    Action.READ_REPORTS: frozenset({Role.ADMIN, Role.AUDITOR, Role.SMO}),
    Action.READ_AUDIT: frozenset({Role.ADMIN, Role.AUDITOR}),
    Action.MANAGE_USERS: frozenset({Role.ADMIN}),
    Action.EDIT_CLASSIFIER: frozenset({Role.ADMIN}),
    Action.HEALTH_DETAILS: frozenset({Role.ADMIN}),
    Action.RECEIVE_OWN_POPS: _WRITERS,
}

# Where a role may hand a request (§28, §30, §33 and the Arkhangelsk routing description).
ROUTE_TARGETS = frozenset({"l2", "smo", "redirect", "written_appeal", "corruption"})
ROUTES: dict[Role, frozenset[str]] = {
    Role.ADMIN: ROUTE_TARGETS,
    Role.OPERATOR: ROUTE_TARGETS,
    # An SMO representative hands a case back to the fund, never to another SMO.
    Role.SMO: ROUTE_TARGETS - {"smo"},
}


class NotAllowed(Refusal):
    """403: the user may not do this (the message is for the user)."""

    def __init__(self, message: str = "Недостаточно прав") -> None:
        super().__init__(403, "forbidden", message)


# A lookup, not ``Role(...)``: the hub asks this for every connection and note.
_ROLES: dict[str, Role] = {role.value: role for role in Role}


def role_of(user: Principal) -> Role | None:
    return _ROLES.get(user.role)  # an unknown role (None) may do nothing


def scope_of(user: Principal) -> Scope:
    role = role_of(user)
    return SEES.get(role, Scope.NONE) if role is not None else Scope.NONE


def may(user: Principal, action: Action) -> bool:
    role = role_of(user)
    return role is not None and role in MAY[action]


def require(user: Principal, action: Action, message: str = "Недостаточно прав") -> None:
    if not may(user, action):
        raise NotAllowed(message)


def may_route(user: Principal, target: str) -> bool:
    role = role_of(user)
    return role is not None and target in ROUTES.get(role, frozenset())


def visible_clause(user: Principal) -> ColumnElement[bool]:
    """SQL condition on Request for what ``user`` may see (the same rule as ``can_see``)."""
    scope = scope_of(user)
    if scope is Scope.ALL:
        return true()
    if scope is Scope.FUND:
        return Request.level != "smo"
    if scope is Scope.OWN_SMO:
        return (Request.level == "smo") & (Request.smo == user.smo)
    if scope is Scope.CORRUPTION:
        return Request.corruption.is_(True)
    return false()


def sees_everything(user: Principal) -> bool:
    """Whether visible_clause(user) is no restriction (reports then skip the join to requests)."""
    return scope_of(user) is Scope.ALL


def can_see(user: Principal, level: str, smo: str | None, corruption: bool = False) -> bool:
    scope = scope_of(user)
    if scope is Scope.ALL:
        return True
    if scope is Scope.FUND:
        return level != "smo"
    if scope is Scope.OWN_SMO:
        return level == "smo" and smo == user.smo
    if scope is Scope.CORRUPTION:
        return corruption
    return False


def can_see_request(user: Principal, request: Request) -> bool:
    return can_see(user, request.level, request.smo, bool(request.corruption))


def can_edit(user: Principal, request: Request) -> bool:
    return may(user, Action.EDIT) and can_see_request(user, request)


def report_slice(user: Principal, asked_smo: str | None) -> str | None:
    """The SMO a report covers: an SMO user always their own; others what they asked for
    (None = the whole journal). Raises NotAllowed for users who read no reports."""
    require(user, Action.READ_REPORTS, "Отчёты доступны администратору и аудитору")
    if scope_of(user) is Scope.OWN_SMO:
        if not user.smo:
            raise NotAllowed("Пользователь СМО не привязан к СМО")
        return user.smo
    return asked_smo or None


def receives(user: Principal, note: Note, level: str | None,
             smo: str | None, corruption: bool = False) -> bool:
    """Websocket: the request's current routing decides; a screen pop also reaches the user
    bound to the ringing extension. ``level`` None: the note names no request (fund-wide)."""
    if note.type == "call.ringing" and user.extension and \
            note.data.get("extension") == user.extension and may(user, Action.RECEIVE_OWN_POPS):
        return True
    if level is None:
        return scope_of(user) is Scope.ALL
    return can_see(user, level, smo, corruption)
