"""The regulation's access rules (seed regulation §23, §24, §26, §36-38) as a pure table: one row
per clause, checked against both faces of journal/access.py — the Python verdict and the SQL
clause (compiled, evaluated by SQLite in memory) — so the two cannot drift apart."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, insert, select

from journal.access import (
    MAY,
    Action,
    NotAllowed,
    Role,
    can_edit,
    can_see,
    may,
    may_route,
    receives,
    report_slice,
    visible_clause,
)
from journal.models import ROLES, Request
from journal.notes import Note
from journal.users import Principal

ADMIN = Principal(1, "admin", "admin", None, None)
OPERATOR = Principal(2, "op", "operator", None, "101")
SMO_A = Principal(3, "smo-a", "smo", "A", "201")
SMO_B = Principal(4, "smo-b", "smo", "B", None)
AUDITOR = Principal(5, "aud", "auditor", None, None)
ANTICORRUPTION = Principal(6, "ac", "anticorruption", None, None)
UNKNOWN = Principal(7, "x", "visitor", None, None)
T0 = datetime(2026, 12, 1, tzinfo=UTC)

# (where the request is, its SMO, corruption flag)
AT_FUND = ("l1", None, False)
AT_FUND_L2 = ("l2", None, False)
AT_SMO_A = ("smo", "A", False)
AT_SMO_B = ("smo", "B", False)
CORRUPT = ("l2", None, True)

# §23: (clause, user, request, sees)
SEES = [
    ("§23.1 admin sees requests under the fund's review", ADMIN, AT_FUND, True),
    ("§23.1 admin sees requests handed to an SMO", ADMIN, AT_SMO_A, True),
    ("§23.2 an SMO sees requests under its review", SMO_A, AT_SMO_A, True),
    ("§23.2 an SMO does not see another SMO's requests", SMO_A, AT_SMO_B, False),
    ("§23.2 an SMO does not see the fund's requests", SMO_B, AT_FUND, False),
    ("§23.3 the fund sees requests under its review (level 1)", OPERATOR, AT_FUND, True),
    ("§23.3 the fund sees requests under its review (level 2)", OPERATOR, AT_FUND_L2, True),
    ("§23.3 the fund does not see requests handed to an SMO", OPERATOR, AT_SMO_A, False),
    ("auditor reads the whole journal (reports)", AUDITOR, AT_SMO_B, True),
    ("anticorruption sees corruption reports", ANTICORRUPTION, CORRUPT, True),
    ("anticorruption sees nothing else", ANTICORRUPTION, AT_FUND, False),
    ("an unknown role sees nothing", UNKNOWN, AT_FUND, False),
]


def _request(where: tuple[str, str | None, bool]) -> Request:
    level, smo, corruption = where
    return Request(number=1, level=level, smo=smo, corruption=corruption)


@pytest.mark.parametrize(("clause", "user", "where", "sees"), SEES, ids=[r[0] for r in SEES])
def test_23_who_sees_which_request(clause: str, user: Principal,
                                   where: tuple[str, str | None, bool], sees: bool) -> None:
    assert can_see(user, *where) is sees, clause


def test_23_the_sql_clause_says_what_the_python_rule_says() -> None:
    """Every row of the table through ``visible_clause`` on a real (in-memory) database."""
    engine = create_engine("sqlite://")
    table = Request.__table__
    rows = {AT_FUND: 1, AT_FUND_L2: 2, AT_SMO_A: 3, AT_SMO_B: 4, CORRUPT: 5}
    with engine.begin() as conn:
        table.create(conn)
        for (level, smo, corruption), number in rows.items():
            conn.execute(insert(table), {
                "number": number, "level": level, "smo": smo, "corruption": corruption,
                "status": "new", "created_at": T0, "updated_at": T0, "version": 1})
        for clause, user, where, sees in SEES:
            visible = set(conn.scalars(select(table.c.number).where(visible_clause(user))))
            assert (rows[where] in visible) is sees, clause


# §24, §26, §36-38 and the service's own duties: (clause, action, roles allowed)
MAY_ROWS = [
    ("§24 the administrator closes", Action.CLOSE, {Role.ADMIN}),
    ("§24 a closed request is corrected by the administrator", Action.CORRECT, {Role.ADMIN}),
    ("§26 whoever works requests makes deferred answers", Action.LIST_CALLBACKS,
     {Role.ADMIN, Role.OPERATOR, Role.SMO}),
    ("requests are edited by the fund's and the SMOs' staff", Action.EDIT,
     {Role.ADMIN, Role.OPERATOR, Role.SMO}),
    ("§36-38 reports: administrator, auditor, each SMO its slice", Action.READ_REPORTS,
     {Role.ADMIN, Role.AUDITOR, Role.SMO}),
    ("the audit log is read by the administrator and the auditor", Action.READ_AUDIT,
     {Role.ADMIN, Role.AUDITOR}),
    ("users are managed by the administrator", Action.MANAGE_USERS, {Role.ADMIN}),
    ("the topic classifier is kept by the administrator", Action.EDIT_CLASSIFIER,
     {Role.ADMIN}),
    ("calls in progress are seen by staff", Action.SEE_ACTIVE_CALLS,
     {Role.ADMIN, Role.OPERATOR, Role.SMO, Role.AUDITOR}),
    ("service internals are the administrator's", Action.HEALTH_DETAILS, {Role.ADMIN}),
]
USERS = {Role.ADMIN: ADMIN, Role.OPERATOR: OPERATOR, Role.SMO: SMO_A, Role.AUDITOR: AUDITOR,
         Role.ANTICORRUPTION: ANTICORRUPTION}


@pytest.mark.parametrize(("clause", "action", "allowed"), MAY_ROWS,
                         ids=[r[0] for r in MAY_ROWS])
def test_who_may_do_what(clause: str, action: Action, allowed: set[Role]) -> None:
    assert {role for role, user in USERS.items() if may(user, action)} == allowed, clause
    assert not may(UNKNOWN, action)


def test_every_action_has_a_row_and_every_role_of_the_model_is_known() -> None:
    assert {row[1] for row in MAY_ROWS} | {Action.RECEIVE_OWN_POPS} == set(Action) == set(MAY)
    assert {str(role) for role in Role} == set(ROLES)


def test_editing_needs_both_the_role_and_the_sight_of_the_request() -> None:
    assert can_edit(SMO_A, _request(AT_SMO_A))
    assert not can_edit(SMO_A, _request(AT_SMO_B))
    assert not can_edit(AUDITOR, _request(AT_FUND))  # sees, may not change
    assert can_edit(OPERATOR, _request(AT_FUND_L2))


def test_an_smo_hands_a_case_back_to_the_fund_never_to_another_smo() -> None:
    assert not may_route(SMO_A, "smo")
    assert may_route(SMO_A, "l2")
    assert may_route(OPERATOR, "smo") and may_route(ADMIN, "corruption")
    assert not may_route(AUDITOR, "l2")


def test_reports_an_smo_user_gets_its_own_slice_whatever_it_asks() -> None:
    assert report_slice(SMO_A, "B") == "A"
    assert report_slice(ADMIN, "B") == "B"
    assert report_slice(AUDITOR, None) is None
    with pytest.raises(NotAllowed):
        report_slice(OPERATOR, None)
    with pytest.raises(NotAllowed):
        report_slice(Principal(8, "smo-x", "smo", None, None), None)


AT = "2026-01-01T00:00:00+00:00"


def test_websocket_a_pop_reaches_the_ringing_phone_and_the_request_decides_the_rest() -> None:
    pop = Note("call.ringing", AT, 1, {"extension": "201"})
    assert receives(SMO_A, pop, "l1", None)  # its own phone rings, even for a fund request
    assert not receives(SMO_B, pop, "l1", None)
    assert receives(OPERATOR, Note("request.updated", AT, 1), "l1", None)
    assert not receives(OPERATOR, Note("request.updated", AT, 1), "smo", "A")
    assert receives(ADMIN, Note("call.ended", AT, None), None, None)  # fund-wide notes
    assert not receives(OPERATOR, Note("call.ended", AT, None), None, None)
