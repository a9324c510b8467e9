"""A closed request is read-only (regulation §24) — enforced below the API too.

Three layers, so no code path (API, intake, a script with a bare session) can alter a closed
record: the workflow checks and answers 409; the ORM ``before_flush`` guard refuses to flush
a change to a loaded closed request; database triggers (SQLite and PostgreSQL) refuse any
UPDATE or DELETE of a closed request row, and any change of a closed request's recording that
would alter what was recorded (its link, path or checksum, or deleting it). Finishing a
recording's metadata (size, duration, status) and the retention purge stay possible.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import DDL, event, inspect
from sqlalchemy.orm import Session

from journal.models import Recording, Request

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


# --------------------------------------------------------------------------- SQLite triggers
_SQLITE_REQUESTS = (
    "CREATE TRIGGER IF NOT EXISTS trg_requests_closed_update BEFORE UPDATE ON requests "
    "FOR EACH ROW WHEN OLD.closed_at IS NOT NULL "
    f"BEGIN SELECT RAISE(ABORT, '{CLOSED_MESSAGE}'); END",
    "CREATE TRIGGER IF NOT EXISTS trg_requests_closed_delete BEFORE DELETE ON requests "
    "FOR EACH ROW WHEN OLD.closed_at IS NOT NULL "
    f"BEGIN SELECT RAISE(ABORT, '{CLOSED_MESSAGE}'); END",
)
_SQLITE_CLOSED_OF_OLD = ("(SELECT closed_at FROM requests WHERE requests.id = OLD.request_id) "
                         "IS NOT NULL")
_SQLITE_RECORDINGS = (
    "CREATE TRIGGER IF NOT EXISTS trg_recordings_closed_update BEFORE UPDATE ON recordings "
    f"FOR EACH ROW WHEN {_SQLITE_CLOSED_OF_OLD} AND (NEW.request_id IS NOT OLD.request_id "
    "OR NEW.pbx_path IS NOT OLD.pbx_path OR NEW.relative_path IS NOT OLD.relative_path "
    "OR (OLD.sha256 IS NOT NULL AND NEW.sha256 IS NOT OLD.sha256)) "
    f"BEGIN SELECT RAISE(ABORT, '{CLOSED_MESSAGE}'); END",
    "CREATE TRIGGER IF NOT EXISTS trg_recordings_closed_delete BEFORE DELETE ON recordings "
    f"FOR EACH ROW WHEN {_SQLITE_CLOSED_OF_OLD} "
    f"BEGIN SELECT RAISE(ABORT, '{CLOSED_MESSAGE}'); END",
)

# ----------------------------------------------------------------------- PostgreSQL triggers
_PG_REQUESTS = (
    "CREATE OR REPLACE FUNCTION hotline_refuse_closed_request() RETURNS trigger "
    "LANGUAGE plpgsql AS $fn$ BEGIN "
    f"RAISE EXCEPTION '{CLOSED_MESSAGE}' USING ERRCODE = 'check_violation'; END $fn$",
    "CREATE TRIGGER trg_requests_closed BEFORE UPDATE OR DELETE ON requests FOR EACH ROW "
    "WHEN (OLD.closed_at IS NOT NULL) EXECUTE FUNCTION hotline_refuse_closed_request()",
)
_PG_RECORDINGS = (
    "CREATE OR REPLACE FUNCTION hotline_refuse_closed_recording() RETURNS trigger "
    "LANGUAGE plpgsql AS $fn$ BEGIN "
    "IF EXISTS (SELECT 1 FROM requests r WHERE r.id = OLD.request_id "
    "AND r.closed_at IS NOT NULL) AND (TG_OP = 'DELETE' "
    "OR NEW.request_id IS DISTINCT FROM OLD.request_id "
    "OR NEW.pbx_path IS DISTINCT FROM OLD.pbx_path "
    "OR NEW.relative_path IS DISTINCT FROM OLD.relative_path "
    "OR (OLD.sha256 IS NOT NULL AND NEW.sha256 IS DISTINCT FROM OLD.sha256)) THEN "
    f"RAISE EXCEPTION '{CLOSED_MESSAGE}' USING ERRCODE = 'check_violation'; END IF; "
    "IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; RETURN NEW; END $fn$",
    "CREATE TRIGGER trg_recordings_closed BEFORE UPDATE OR DELETE ON recordings "
    "FOR EACH ROW EXECUTE FUNCTION hotline_refuse_closed_recording()",
)


def _install(table: Any, sqlite: tuple[str, ...], postgresql: tuple[str, ...]) -> None:
    # Only when the table is created: an existing database keeps what it has (additive schema).
    for statement in sqlite:
        event.listen(table, "after_create", DDL(statement).execute_if(dialect="sqlite"))
    for statement in postgresql:
        event.listen(table, "after_create", DDL(statement).execute_if(dialect="postgresql"))


_install(Request.__table__, _SQLITE_REQUESTS, _PG_REQUESTS)
_install(Recording.__table__, _SQLITE_RECORDINGS, _PG_RECORDINGS)
