"""Who may see and change which request (seed regulation §23) — the one place that decides.

- admin: every request (under the fund's review or handed to an SMO); closes requests;
- operator (fund level 1/2): requests under the fund's review (not handed to an SMO);
- smo: only requests routed to that user's SMO;
- auditor: reads everything, changes nothing (reports);
- anticorruption: only requests flagged as corruption reports.
The JSON API, the websocket stream and recordings all ask this module.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, false, true

from journal.models import Request
from journal.users import Principal

WRITE_ROLES = frozenset({"admin", "operator", "smo"})


def visible_clause(user: Principal) -> ColumnElement[bool]:
    """SQL condition on Request for what ``user`` may see."""
    if user.role in ("admin", "auditor"):
        return true()
    if user.role == "operator":
        return Request.level != "smo"
    if user.role == "smo":
        return (Request.level == "smo") & (Request.smo == user.smo)
    if user.role == "anticorruption":
        return Request.corruption.is_(True)
    return false()


def can_see(user: Principal, level: str, smo: str | None, corruption: bool = False) -> bool:
    if user.role in ("admin", "auditor"):
        return True
    if user.role == "operator":
        return level != "smo"
    if user.role == "smo":
        return level == "smo" and smo == user.smo
    if user.role == "anticorruption":
        return corruption
    return False


def can_see_request(user: Principal, request: Request) -> bool:
    return can_see(user, request.level, request.smo, bool(request.corruption))


def can_edit(user: Principal, request: Request) -> bool:
    return user.role in WRITE_ROLES and can_see_request(user, request)


def can_close(user: Principal) -> bool:
    return user.role == "admin"


def can_see_notification(user: Principal, note: dict[str, Any], level: str | None,
                         smo: str | None, corruption: bool = False) -> bool:
    """Websocket: the request's current routing decides; a screen pop also reaches the user
    bound to the ringing extension."""
    if note.get("type") == "call.ringing" and user.extension and \
            note.get("extension") == user.extension and user.role in ("operator", "smo", "admin"):
        return True
    if level is None:
        return user.role in ("admin", "auditor")
    return can_see(user, level, smo, corruption)
