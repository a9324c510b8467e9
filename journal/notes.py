"""Notifications: what the journal tells the pages (DESIGN §5), typed and built here only.

A note is stored in the ``notifications`` table in the transaction that made it (so a page that
reconnects can ask for what it missed) and published after the commit (journal/outbox.py), so a
screen pop never names an uncommitted request. What is stored and sent is ``type``, ``at``,
``request_number`` and the type's own fields (``data``); ``scope`` is control data that never
leaves the process: the request's routing as of the note, from whoever wrote it, so the hub
need not ask the database who may see a ``call.*`` note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class RequestScope:
    """What access rules need to know of a request; level None = no such request."""

    level: str | None
    smo: str | None
    corruption: bool = False


UNKNOWN = RequestScope(None, None, False)
NEW_REQUEST_SCOPE = RequestScope("1", None, False)


@dataclass(slots=True, eq=False)
class Note:
    type: str
    at: str  # ISO 8601, UTC
    request_number: int | None
    data: dict[str, Any] = field(default_factory=dict)
    id: int | None = None  # the stored notification's id, once stored
    scope: RequestScope | None = None

    def payload(self) -> dict[str, Any]:
        """As stored (the ``payload`` column)."""
        return {"type": self.type, "at": self.at, "request_number": self.request_number,
                **self.data}

    def frame(self) -> dict[str, Any]:
        """The contract's frame: ``id``, ``type``, ``at``, ``request_number`` always present."""
        return {"id": self.id, "type": self.type, "at": self.at,
                "request_number": self.request_number, **self.data}


_OWN_KEYS = frozenset({"id", "type", "at", "request_number"})


def stored_note(note_id: int, note_type: str, request_number: int | None,
                payload: dict[str, Any] | None, at: datetime | str) -> Note:
    """A note read back from the ``notifications`` table (a resume, another instance's)."""
    data = {k: v for k, v in (payload or {}).items() if k not in _OWN_KEYS}
    stamp = (payload or {}).get("at")
    if not isinstance(stamp, str):
        stamp = at.isoformat() if isinstance(at, datetime) else str(at)
    return Note(note_type, stamp, request_number, data, id=note_id)


# ------------------------------------------------------------------ the calls (intake)
def _call(note_type: str, number: int | None, at: datetime, scope: RequestScope | None,
          **data: Any) -> Note:
    return Note(note_type, at.isoformat(), number, data, scope=scope)


def call_ringing(number: int | None, at: datetime, scope: RequestScope | None, *,
                 caller_number: str, extension: str, queue: str) -> Note:
    """The screen pop; ``history`` (the caller's earlier requests) is filled in at write."""
    return _call("call.ringing", number, at, scope, caller_number=caller_number,
                 extension=extension, queue=queue, history=[])


def call_answered(number: int | None, at: datetime, scope: RequestScope | None, *,
                  extension: str | None, answered_by_external: str | None = None) -> Note:
    if answered_by_external is None:
        return _call("call.answered", number, at, scope, extension=extension)
    return _call("call.answered", number, at, scope, extension=extension,
                 answered_by_external=answered_by_external)


def call_held(number: int | None, at: datetime, scope: RequestScope | None, *,
              extension: str) -> Note:
    return _call("call.held", number, at, scope, extension=extension)


def call_unheld(number: int | None, at: datetime, scope: RequestScope | None, *,
                extension: str) -> Note:
    return _call("call.unheld", number, at, scope, extension=extension)


def call_transferred(number: int | None, at: datetime, scope: RequestScope | None, *,
                     kind: str, to: str, target: str, smo: str | None,
                     from_extension: str) -> Note:
    return _call("call.transferred", number, at, scope, kind=kind, to=to, target=target,
                 smo=smo, from_extension=from_extension)


def call_ended(number: int | None, at: datetime, scope: RequestScope | None, *,
               outcome: str, reason: str) -> Note:
    return _call("call.ended", number, at, scope, outcome=outcome, reason=reason)


# ------------------------------------------------------------------ the requests
def request_created(number: int, at: datetime, *, caller_number: str, line: str) -> Note:
    return Note("request.created", at.isoformat(), number,
                {"caller_number": caller_number, "line": line, "status": "new", "level": "1",
                 "smo": None}, scope=NEW_REQUEST_SCOPE)


def request_routed(number: int, at: datetime, *, level: str, smo: str | None,
                   via: str) -> Note:
    """Handed to level 2 or an SMO (``via``: a telephone transfer, or the journal)."""
    return Note("request.routed", at.isoformat(), number, {"level": level, "smo": smo, "via": via})


def request_changed(note_type: str, number: int, at: datetime, *, level: str,
                    smo: str | None, **data: Any) -> Note:
    """``request.updated``, ``request.closed``, ``request.corruption``: a change made in the
    journal, with the request's routing after it."""
    return Note(note_type, at.isoformat(), number, {"level": level, "smo": smo, **data})
