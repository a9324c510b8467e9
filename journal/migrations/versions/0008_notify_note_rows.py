"""notifications: NOTIFY hotline_note_rows with the row itself (PostgreSQL)

Revision 0008. Another instance's screen pop no longer waits for reads of the outbox and of
the request's scope: the trigger also sends ``'<schema> <id> <row and scope as JSON>'`` on
``hotline_note_rows`` (only ``'<schema> <id>'`` when the row would not fit a NOTIFY payload,
which stops at 8000 bytes; the listener then reads it). ``hotline_notes`` keeps its old
payload, so an instance still running the previous release carries on during a rolling
upgrade. SQLite: nothing to do.
"""

from __future__ import annotations

from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# The row comes with its request's routing scope as the transaction left it (what another
# instance's hub would otherwise read from the database before it may judge the note). 7,000
# bytes of row at most: the schema and the id must fit beside it under 8,000. The function
# keeps the schema it was made in, whatever the writing session's search_path.
WITH_ROWS = (
    "CREATE OR REPLACE FUNCTION hotline_notify_note() RETURNS trigger "
    "LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$ "
    "DECLARE row_json text; scope json; BEGIN "
    "PERFORM pg_notify('hotline_notes', TG_TABLE_SCHEMA || ' ' || NEW.id::text); "
    "IF NEW.request_number IS NOT NULL THEN "
    "SELECT json_build_array(r.level, r.smo, r.corruption) INTO scope FROM requests r "
    "WHERE r.number = NEW.request_number; END IF; "
    "row_json := json_build_object('at', NEW.at, 'type', NEW.type, "
    "'request_number', NEW.request_number, 'payload', NEW.payload, 'scope', scope)::text; "
    "IF octet_length(row_json) <= 7000 THEN "
    "PERFORM pg_notify('hotline_note_rows', "
    "TG_TABLE_SCHEMA || ' ' || NEW.id::text || ' ' || row_json); "
    "ELSE PERFORM pg_notify('hotline_note_rows', TG_TABLE_SCHEMA || ' ' || NEW.id::text); "
    "END IF; RETURN NULL; END $fn$"
)
IDS_ONLY = (
    "CREATE OR REPLACE FUNCTION hotline_notify_note() RETURNS trigger "
    "LANGUAGE plpgsql AS $fn$ BEGIN "
    "PERFORM pg_notify('hotline_notes', TG_TABLE_SCHEMA || ' ' || NEW.id::text); "
    "RETURN NULL; END $fn$"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(WITH_ROWS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(IDS_ONLY)
