"""The electronic journal's tables (DESIGN §4): requests and the calls, legs, transfers,
recordings, users and audit records that hang off them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")

STATUSES = ("new", "in_progress", "transferred", "deferred", "answered", "closed")
LEVELS = ("1", "2", "smo")
ROLES = ("admin", "operator", "smo", "auditor", "anticorruption")


class UtcDateTime(TypeDecorator[datetime]):
    """A point in time, aware UTC in and out on both backends.

    Stored as ``DateTime(timezone=True)`` (TIMESTAMPTZ on PostgreSQL, UTC wall time as text on
    SQLite), so the schema and the migrations are unchanged. SQLite gives stored values back
    naive: they are UTC by construction, and this type says so, so no reader has to.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        # Naive input is refused, not guessed: every time the journal makes is aware (clock,
        # CEL, parsed input), and a naive one could mean UTC or the fund's local time, hours
        # apart. SQLite's DateTime would also store an aware non-UTC value's local wall time,
        # hence the conversion.
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the journal stores aware times only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite: the UTC wall time that was stored
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON}


class Counter(Base):
    """Gap-free sequences: the row is updated in the same transaction that uses the value."""

    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class CelMark(Base):
    """How far CEL backfill has read, per PBX (the newest CEL eventtime it has seen)."""

    __tablename__ = "cel_marks"
    pbx_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    high_water: Mapped[datetime]
    updated_at: Mapped[datetime]


class Request(Base):
    """A numbered appeal (заявка) in the journal."""

    __tablename__ = "requests"
    __table_args__ = (
        UniqueConstraint("pbx_id", "linkedid", name="uq_requests_pbx_linkedid"),
        Index("ix_requests_caller_created", "caller_normalized", "created_at"),
        Index("ix_requests_created", "created_at"),
        # The missed-calls list: abandoned calls of the last days, newest first.
        Index("ix_requests_outcome_created", "outcome", "created_at"),
        # Deferred answers due in a period (reports) and overdue call-back lists.
        Index("ix_requests_deferred_due", "deferred_due_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    number: Mapped[int] = mapped_column(BigInteger, unique=True)
    pbx_id: Mapped[str | None] = mapped_column(String(40))
    linkedid: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    line: Mapped[str] = mapped_column(String(40), default="")
    caller_number: Mapped[str] = mapped_column(String(40), default="")
    caller_normalized: Mapped[str] = mapped_column(String(40), default="", index=True)
    status: Mapped[str] = mapped_column(String(20), default="new")
    level: Mapped[str] = mapped_column(String(8), default="1")
    smo: Mapped[str | None] = mapped_column(String(40), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)

    full_name: Mapped[str | None] = mapped_column(String(300))
    address_as: Mapped[str | None] = mapped_column(String(200))
    contact_phone: Mapped[str | None] = mapped_column(String(40))
    policy_number: Mapped[str | None] = mapped_column(String(16))
    snils: Mapped[str | None] = mapped_column(String(14))
    territory: Mapped[str | None] = mapped_column(String(200))
    medical_org: Mapped[str | None] = mapped_column(String(300))
    kind: Mapped[str | None] = mapped_column(String(40))
    topic: Mapped[str | None] = mapped_column(String(80))
    summary: Mapped[str | None] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(Text)
    typical: Mapped[bool | None] = mapped_column(Boolean)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    urgent_action: Mapped[str | None] = mapped_column(Text)
    deferred_due_at: Mapped[datetime | None]
    deferred_done_at: Mapped[datetime | None]
    written_appeal_advised: Mapped[bool] = mapped_column(Boolean, default=False)
    redirected_to: Mapped[str | None] = mapped_column(String(80))
    redirect_note: Mapped[str | None] = mapped_column(Text)
    corruption: Mapped[bool] = mapped_column(Boolean, default=False)
    recording_missing: Mapped[bool] = mapped_column(Boolean, default=False)
    registered_by: Mapped[str | None] = mapped_column(String(80))
    assigned_to: Mapped[str | None] = mapped_column(String(80))
    operator: Mapped[str | None] = mapped_column(String(40))
    outcome: Mapped[str | None] = mapped_column(String(20))
    corrects_number: Mapped[int | None] = mapped_column(BigInteger)
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(80))
    updated_at: Mapped[datetime | None]
    deferred_by: Mapped[str | None] = mapped_column(String(80))  # who owes the call-back
    # Where the request came from: the live AMI stream, or recovered from CEL by backfill.
    source: Mapped[str] = mapped_column(String(8), default="ami", server_default="ami")
    # A complaint's verdict for the quarterly material (§37): justified, not, not yet assessed.
    complaint_justified: Mapped[bool | None] = mapped_column(Boolean)

    calls: Mapped[list[Call]] = relationship(back_populates="request", order_by="Call.id")


class Call(Base):
    """One telephone call (all channels sharing a Linkedid) linked to a request."""

    __tablename__ = "calls"
    __table_args__ = (UniqueConstraint("pbx_id", "linkedid", name="uq_calls_pbx_linkedid"),
                      Index("ix_calls_started", "started_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("requests.id"), index=True)
    pbx_id: Mapped[str] = mapped_column(String(40))
    linkedid: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(10), default="inbound")
    caller_number: Mapped[str] = mapped_column(String(40), default="")
    line: Mapped[str] = mapped_column(String(40), default="")
    started_at: Mapped[datetime]
    queued_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(20))
    end_reason: Mapped[str | None] = mapped_column(String(20))
    operator: Mapped[str | None] = mapped_column(String(40))
    queue: Mapped[str | None] = mapped_column(String(80))
    # The outside number that answered (follow-me, forwarding to a mobile); no operator then.
    answered_by_external: Mapped[str | None] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(8), default="ami", server_default="ami")

    request: Mapped[Request | None] = relationship(back_populates="calls")
    legs: Mapped[list[CallLeg]] = relationship(order_by="CallLeg.id")
    transfers: Mapped[list[Transfer]] = relationship(order_by="Transfer.id")
    events: Mapped[list[CallLogEntry]] = relationship(order_by="CallLogEntry.id")


class CallLeg(Base):
    """A channel of a call that rang or talked: the caller, an operator, an SMO line."""

    __tablename__ = "call_legs"
    __table_args__ = (UniqueConstraint("call_id", "uniqueid", name="uq_legs_call_uniqueid"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"), index=True)
    uniqueid: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(120), default="")
    extension: Mapped[str | None] = mapped_column(String(40))
    queue: Mapped[str | None] = mapped_column(String(80))
    rang_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]


class Transfer(Base):
    __tablename__ = "transfers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    from_extension: Mapped[str] = mapped_column(String(40))
    to: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(10))
    smo: Mapped[str | None] = mapped_column(String(40))
    at: Mapped[datetime]


class CallLogEntry(Base):
    """The call's timeline for the administrator: queue, ringing, answer, hold, transfer, end."""

    __tablename__ = "call_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"), index=True)
    at: Mapped[datetime]
    type: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Recording(Base):
    """A MixMonitor file linked to a request and a call leg."""

    __tablename__ = "recordings"
    __table_args__ = (UniqueConstraint("pbx_id", "pbx_path", name="uq_recordings_path"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("requests.id"), index=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"), index=True)
    pbx_id: Mapped[str] = mapped_column(String(40))
    leg_uniqueid: Mapped[str | None] = mapped_column(String(64))
    pbx_path: Mapped[str] = mapped_column(String(500))
    relative_path: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    started_at: Mapped[datetime]
    linked_at: Mapped[datetime | None]
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    duration_s: Mapped[float | None] = mapped_column(Float)
    sha256: Mapped[str | None] = mapped_column(String(64))
    # The file's modification time (ns) when it was linked: playback serves the file only
    # while its size and this time are unchanged (a replaced file is refused).
    file_mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(40), default="audio/wav")
    purged_at: Mapped[datetime | None]


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    login: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    smo: Mapped[str | None] = mapped_column(String(40))
    extension: Mapped[str | None] = mapped_column(String(40), index=True)
    full_name: Mapped[str | None] = mapped_column(String(200))
    # Failed sign-ins in a row; from journal.users.LOCKOUT_AFTER on each one sets
    # locked_until (a time-limited lockout, doubling). ``locked``: locked by an administrator
    # (or by the first release's permanent lockout) until unlocked.
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime]


class UserSession(Base):
    __tablename__ = "sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class AuditEntry(Base):
    """Append-only: who did or saw what, when, from where."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    user_login: Mapped[str | None] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(40))
    request_number: Mapped[int | None] = mapped_column(BigInteger, index=True)
    remote: Mapped[str | None] = mapped_column(String(80))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Notification(Base):
    """Websocket events kept for clients that reconnect with their last event id."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    type: Mapped[str] = mapped_column(String(40))
    request_number: Mapped[int | None] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class RequestAction(Base):
    """A request's workflow history: routing, deferral, call-backs, urgent contacts, closing."""

    __tablename__ = "request_actions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), index=True)
    at: Mapped[datetime]
    user_login: Mapped[str | None] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CallbackAttempt(Base):
    """A call-back attempt on a missed call: taken from the linked call-back call's outcome
    (``source="call"``) or recorded by hand (``source="manual"``)."""

    __tablename__ = "callback_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), index=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"), unique=True)
    at: Mapped[datetime]
    result: Mapped[str] = mapped_column(String(12))  # answered | no_answer | busy
    source: Mapped[str] = mapped_column(String(10))
    user_login: Mapped[str | None] = mapped_column(String(80))
    note: Mapped[str | None] = mapped_column(Text)


class UrgentContact(Base):
    """Regulation §31: the medical organisation contacted for an urgent case, and its feedback."""

    __tablename__ = "urgent_contacts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), index=True)
    medical_org: Mapped[str] = mapped_column(String(300))
    contact_person: Mapped[str] = mapped_column(String(300))
    contacted_at: Mapped[datetime]
    action: Mapped[str | None] = mapped_column(Text)
    feedback: Mapped[str | None] = mapped_column(Text)
    recorded_by: Mapped[str | None] = mapped_column(String(80))
    recorded_at: Mapped[datetime]


class TopicVersion(Base):
    """The editable topic classifier: each edit adds a version; the highest version is current."""

    __tablename__ = "topic_classifier"
    __table_args__ = (UniqueConstraint("code", "version", name="uq_topic_code_version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(80))
    version: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    changed_by: Mapped[str | None] = mapped_column(String(80))
    changed_at: Mapped[datetime]


# Closed requests are read-only in the database too (triggers + ORM flush guard).
from journal import guards as _guards  # noqa: E402, F401
