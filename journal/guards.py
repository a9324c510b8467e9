"""A closed request is read-only (regulation §24) — enforced below the API too.

Three layers, so no code path (API, intake, a script with a bare session) can alter a closed
record: the workflow checks and answers 409; the ORM ``before_flush`` guard refuses to flush
a change to a loaded closed request; database triggers (SQLite and PostgreSQL) refuse any
UPDATE or DELETE of a closed request row, and any change of a closed request's recording that
would alter what was recorded (its link, path or checksum, or deleting it). Finishing a
recording's metadata (size, duration, status) and the retention purge stay possible. The
triggers are part of the schema: migration 0001 (journal/migrations/versions) creates them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from journal.models import Request

CLOSED_MESSAGE = "closed request is read-only"


class ClosedRequestError(Exception):
    """A write touched a closed request."""


def _was_closed(obj: Request) -> bool:
    history = inspect(obj).attrs.closed_at.history
    before = list(history.deleted or ()) + list(history.unchanged or ())
    return any(value is not None for value in before)


@event.listens_for(Session, "before_flush")
def _refuse_closed_writes(session: Session, _context: Any, _instances: Any) -> None:
    for obj in session.dirty:
        if isinstance(obj, Request) and _was_closed(obj) and session.is_modified(obj):
            raise ClosedRequestError(f"request {obj.number}: {CLOSED_MESSAGE}")
    for obj in session.deleted:
        if isinstance(obj, Request) and _was_closed(obj):
            raise ClosedRequestError(f"request {obj.number}: {CLOSED_MESSAGE}")
