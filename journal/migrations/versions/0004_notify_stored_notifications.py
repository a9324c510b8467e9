"""notifications: NOTIFY hotline_notes for every stored row (PostgreSQL)

Revision 0004. Several service instances on one PostgreSQL (HOTLINE_BUS=postgresql) learn of
each other's notifications by LISTEN (journal/pgbus.py): the trigger sends the row's schema and
id at commit, so no writer (intake, workflow API, a CLI) can forget to. SQLite: nothing to do.
"""

from __future__ import annotations

from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

# The payload names the table's schema: instances of other journals on the same database
# (a schema each) ignore it.
CREATE = (
    "CREATE OR REPLACE FUNCTION hotline_notify_note() RETURNS trigger "
    "LANGUAGE plpgsql AS $fn$ BEGIN "
    "PERFORM pg_notify('hotline_notes', TG_TABLE_SCHEMA || ' ' || NEW.id::text); "
    "RETURN NULL; END $fn$",
    "CREATE TRIGGER trg_notifications_notify AFTER INSERT ON notifications "
    "FOR EACH ROW EXECUTE FUNCTION hotline_notify_note()",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in CREATE:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS trg_notifications_notify ON notifications")
        op.execute("DROP FUNCTION IF EXISTS hotline_notify_note()")
