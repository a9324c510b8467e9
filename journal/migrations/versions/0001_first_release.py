"""The first release's schema: the tables its ``metadata.create_all`` made, the closed-request
triggers (SQLite and PostgreSQL) and the request counter row.

Written out in full, not taken from ``journal/models.py``: later model changes come as later
revisions and never change what 0001 makes. A journal made by the first release is adopted at
this revision (``journal.migrations.upgrade`` checks its tables and columns against it).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGSERIAL.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)

CLOSED_MESSAGE = "closed request is read-only"  # journal.guards.CLOSED_MESSAGE

# Closed requests are read-only in the database too (journal/guards.py explains the layers).
SQLITE_TRIGGERS = (
    "CREATE TRIGGER IF NOT EXISTS trg_requests_closed_update BEFORE UPDATE ON requests "
    "FOR EACH ROW WHEN OLD.closed_at IS NOT NULL "
    f"BEGIN SELECT RAISE(ABORT, '{CLOSED_MESSAGE}'); END",
    "CREATE TRIGGER IF NOT EXISTS trg_requests_closed_delete BEFORE DELETE ON requests "
    "FOR EACH ROW WHEN OLD.closed_at IS NOT NULL "
    f"BEGIN SELECT RAISE(ABORT, '{CLOSED_MESSAGE}'); END",
    "CREATE TRIGGER IF NOT EXISTS trg_recordings_closed_update BEFORE UPDATE ON recordings "
    "FOR EACH ROW WHEN (SELECT closed_at FROM requests WHERE requests.id = OLD.request_id) "
    "IS NOT NULL AND (NEW.request_id IS NOT OLD.request_id "
    "OR NEW.pbx_path IS NOT OLD.pbx_path OR NEW.relative_path IS NOT OLD.relative_path "
    "OR (OLD.sha256 IS NOT NULL AND NEW.sha256 IS NOT OLD.sha256)) "
    f"BEGIN SELECT RAISE(ABORT, '{CLOSED_MESSAGE}'); END",
    "CREATE TRIGGER IF NOT EXISTS trg_recordings_closed_delete BEFORE DELETE ON recordings "
    "FOR EACH ROW WHEN (SELECT closed_at FROM requests WHERE requests.id = OLD.request_id) "
    f"IS NOT NULL BEGIN SELECT RAISE(ABORT, '{CLOSED_MESSAGE}'); END",
)
POSTGRESQL_TRIGGERS = (
    "CREATE OR REPLACE FUNCTION hotline_refuse_closed_request() RETURNS trigger "
    "LANGUAGE plpgsql AS $fn$ BEGIN "
    f"RAISE EXCEPTION '{CLOSED_MESSAGE}' USING ERRCODE = 'check_violation'; END $fn$",
    "CREATE TRIGGER trg_requests_closed BEFORE UPDATE OR DELETE ON requests FOR EACH ROW "
    "WHEN (OLD.closed_at IS NOT NULL) EXECUTE FUNCTION hotline_refuse_closed_request()",
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


def _id() -> sa.Column[int]:
    return sa.Column("id", BIG_ID, primary_key=True, autoincrement=True)


def _fk(name: str, target: str, *, nullable: bool) -> sa.Column[int]:
    return sa.Column(name, BIG_ID, sa.ForeignKey(f"{target}.id"), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "counters",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("value", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "requests",
        _id(),
        sa.Column("number", sa.BigInteger(), nullable=False, unique=True),
        sa.Column("pbx_id", sa.String(40)),
        sa.Column("linkedid", sa.String(64)),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("line", sa.String(40), nullable=False),
        sa.Column("caller_number", sa.String(40), nullable=False),
        sa.Column("caller_normalized", sa.String(40), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("smo", sa.String(40)),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("full_name", sa.String(300)),
        sa.Column("address_as", sa.String(200)),
        sa.Column("contact_phone", sa.String(40)),
        sa.Column("policy_number", sa.String(16)),
        sa.Column("snils", sa.String(14)),
        sa.Column("territory", sa.String(200)),
        sa.Column("medical_org", sa.String(300)),
        sa.Column("kind", sa.String(40)),
        sa.Column("topic", sa.String(80)),
        sa.Column("summary", sa.Text()),
        sa.Column("result", sa.Text()),
        sa.Column("typical", sa.Boolean()),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("urgent_action", sa.Text()),
        sa.Column("deferred_due_at", TIMESTAMP),
        sa.Column("deferred_done_at", TIMESTAMP),
        sa.Column("written_appeal_advised", sa.Boolean(), nullable=False),
        sa.Column("redirected_to", sa.String(80)),
        sa.Column("redirect_note", sa.Text()),
        sa.Column("corruption", sa.Boolean(), nullable=False),
        sa.Column("recording_missing", sa.Boolean(), nullable=False),
        sa.Column("registered_by", sa.String(80)),
        sa.Column("assigned_to", sa.String(80)),
        sa.Column("operator", sa.String(40)),
        sa.Column("outcome", sa.String(20)),
        sa.Column("corrects_number", sa.BigInteger()),
        sa.Column("closed_at", TIMESTAMP),
        sa.Column("closed_by", sa.String(80)),
        sa.Column("updated_at", TIMESTAMP),
        sa.Column("deferred_by", sa.String(80)),
        sa.UniqueConstraint("pbx_id", "linkedid", name="uq_requests_pbx_linkedid"),
    )
    op.create_index("ix_requests_smo", "requests", ["smo"])
    op.create_index("ix_requests_caller_created", "requests", ["caller_normalized", "created_at"])
    op.create_index("ix_requests_caller_normalized", "requests", ["caller_normalized"])
    op.create_index("ix_requests_created", "requests", ["created_at"])

    op.create_table(
        "calls",
        _id(),
        _fk("request_id", "requests", nullable=True),
        sa.Column("pbx_id", sa.String(40), nullable=False),
        sa.Column("linkedid", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(10), nullable=False),
        sa.Column("caller_number", sa.String(40), nullable=False),
        sa.Column("line", sa.String(40), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("queued_at", TIMESTAMP),
        sa.Column("answered_at", TIMESTAMP),
        sa.Column("ended_at", TIMESTAMP),
        sa.Column("outcome", sa.String(20)),
        sa.Column("end_reason", sa.String(20)),
        sa.Column("operator", sa.String(40)),
        sa.Column("queue", sa.String(80)),
        sa.UniqueConstraint("pbx_id", "linkedid", name="uq_calls_pbx_linkedid"),
    )
    op.create_index("ix_calls_request_id", "calls", ["request_id"])
    op.create_index("ix_calls_started", "calls", ["started_at"])

    op.create_table(
        "call_legs",
        _id(),
        _fk("call_id", "calls", nullable=False),
        sa.Column("uniqueid", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(120), nullable=False),
        sa.Column("extension", sa.String(40)),
        sa.Column("queue", sa.String(80)),
        sa.Column("rang_at", TIMESTAMP),
        sa.Column("answered_at", TIMESTAMP),
        sa.Column("ended_at", TIMESTAMP),
        sa.UniqueConstraint("call_id", "uniqueid", name="uq_legs_call_uniqueid"),
    )
    op.create_index("ix_call_legs_call_id", "call_legs", ["call_id"])

    op.create_table(
        "transfers",
        _id(),
        _fk("call_id", "calls", nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("from_extension", sa.String(40), nullable=False),
        sa.Column("to", sa.String(40), nullable=False),
        sa.Column("target", sa.String(10), nullable=False),
        sa.Column("smo", sa.String(40)),
        sa.Column("at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_transfers_call_id", "transfers", ["call_id"])

    op.create_table(
        "call_log",
        _id(),
        _fk("call_id", "calls", nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
    )
    op.create_index("ix_call_log_call_id", "call_log", ["call_id"])

    op.create_table(
        "recordings",
        _id(),
        _fk("request_id", "requests", nullable=True),
        _fk("call_id", "calls", nullable=True),
        sa.Column("pbx_id", sa.String(40), nullable=False),
        sa.Column("leg_uniqueid", sa.String(64)),
        sa.Column("pbx_path", sa.String(500), nullable=False),
        sa.Column("relative_path", sa.String(500), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("linked_at", TIMESTAMP),
        sa.Column("bytes", sa.BigInteger()),
        sa.Column("duration_s", sa.Float()),
        sa.Column("sha256", sa.String(64)),
        sa.Column("content_type", sa.String(40), nullable=False),
        sa.Column("purged_at", TIMESTAMP),
        sa.UniqueConstraint("pbx_id", "pbx_path", name="uq_recordings_path"),
    )
    op.create_index("ix_recordings_request_id", "recordings", ["request_id"])
    op.create_index("ix_recordings_call_id", "recordings", ["call_id"])

    op.create_table(
        "users",
        _id(),
        sa.Column("login", sa.String(80), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("smo", sa.String(40)),
        sa.Column("extension", sa.String(40)),
        sa.Column("full_name", sa.String(200)),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_users_extension", "users", ["extension"])

    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        _fk("user_id", "users", nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])

    op.create_table(
        "audit_log",
        _id(),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("user_login", sa.String(80)),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("request_number", sa.BigInteger()),
        sa.Column("remote", sa.String(80)),
        sa.Column("detail", sa.JSON(), nullable=False),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_request_number", "audit_log", ["request_number"])

    op.create_table(
        "notifications",
        _id(),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("request_number", sa.BigInteger()),
        sa.Column("payload", sa.JSON(), nullable=False),
    )
    op.create_index("ix_notifications_at", "notifications", ["at"])

    op.create_table(
        "request_actions",
        _id(),
        _fk("request_id", "requests", nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("user_login", sa.String(80)),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
    )
    op.create_index("ix_request_actions_request_id", "request_actions", ["request_id"])

    op.create_table(
        "urgent_contacts",
        _id(),
        _fk("request_id", "requests", nullable=False),
        sa.Column("medical_org", sa.String(300), nullable=False),
        sa.Column("contact_person", sa.String(300), nullable=False),
        sa.Column("contacted_at", TIMESTAMP, nullable=False),
        sa.Column("action", sa.Text()),
        sa.Column("feedback", sa.Text()),
        sa.Column("recorded_by", sa.String(80)),
        sa.Column("recorded_at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_urgent_contacts_request_id", "urgent_contacts", ["request_id"])

    op.create_table(
        "topic_classifier",
        _id(),
        sa.Column("code", sa.String(80), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(300), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("changed_by", sa.String(80)),
        sa.Column("changed_at", TIMESTAMP, nullable=False),
        sa.UniqueConstraint("code", "version", name="uq_topic_code_version"),
    )

    dialect = op.get_bind().dialect.name
    for statement in SQLITE_TRIGGERS if dialect == "sqlite" else POSTGRESQL_TRIGGERS:
        op.execute(statement)
    # The request numbers' gap-free counter (journal.db.REQUEST_COUNTER).
    op.execute("INSERT INTO counters (name, value) VALUES ('request', 0)")


def downgrade() -> None:
    for table in ("topic_classifier", "urgent_contacts", "request_actions", "notifications",
                  "audit_log", "sessions", "users", "recordings", "call_log", "transfers",
                  "call_legs", "calls", "requests", "counters"):
        op.drop_table(table)  # its indexes and triggers go with it
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS hotline_refuse_closed_recording()")
        op.execute("DROP FUNCTION IF EXISTS hotline_refuse_closed_request()")
