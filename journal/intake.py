"""Intake: call events → requests, calls, legs, transfers, recordings, notifications.

This is where an inbound 8-800 call gets its request number. Call events are applied in
batches, one transaction per batch (group commit, never reordered). The request number comes
from the ``counters`` row, updated in the same transaction as the insert, so numbers are
gap-free and never reused; the (pbx, Linkedid) unique key makes replay, reconnect and restart
idempotent, and a concurrent writer that lost the race simply retries the batch.
Notifications are published only after the commit: a screen pop never names an uncommitted
request. The transaction is synchronous SQLAlchemy Core run by ``Database.transact`` in the
database writer's own thread (journal/writer.py), one hand-over from the busy event loop.

How a batch is applied (the speed comes from here, the result is the same as applying the
events one by one): the rows the batch touches are read once (calls by Linkedid, their legs,
transfers and recording paths; the requests locked ``FOR UPDATE`` on PostgreSQL, the write lock
taken first on SQLite), then every event is applied *in order* to that in-memory state — the
same conditions the one-by-one statements had (``answered_at IS NULL``, ``status = 'new'``,
"leg already there"…) are decided there — and the net effect is written with one statement per
table and kind: one counter UPDATE for all new requests, multi-row INSERTs, ``executemany``
UPDATEs by key, one history query for all screen pops. An outbound call-back ``CallStarted``
(rare; it looks the request up in the database) closes the run of events before it, which is
written first, so that look-up sees exactly what it saw before.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import PurePosixPath
from typing import Any

import structlog
from sqlalchemy import ColumnElement, and_, bindparam, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from journal.bus import Bus, Notification
from journal.callback_attempts import (
    MISSED_OUTCOME,
    result_of_call,
    result_to_fill,
    settlement,
)
from journal.db import REQUEST_COUNTER, Database
from journal.history import HISTORY_CHUNK, HISTORY_LIMIT, grouped, histories_select, pick
from journal.models import (
    Call,
    CallbackAttempt,
    CallLeg,
    CallLogEntry,
    Counter,
    Recording,
    Request,
    Transfer,
)
from journal.models import Notification as StoredNotification
from journal.notify import SCOPE_KEY, Scope
from journal.phones import normalize_phone
from telephony.buffer import SpillingBuffer
from telephony.callevents import (
    EVENT_TYPES,
    CallAnswered,
    CallAnsweredElsewhere,
    CallEnded,
    CallEvent,
    CallHeld,
    CallStarted,
    CallTransferred,
    CallUnheld,
    LegEnded,
    LegRinging,
    LegRingNoAnswer,
    QueueJoined,
    RecordingStarted,
)

log = structlog.get_logger(__name__)

NEW_REQUEST_SCOPE = Scope("1", None, False)
# Keys per IN (...) list and per UNION ALL: below SQLite's variable and compound-select limits.
CHUNK = 400
_REQUESTS = Request.__table__
# What a batch reads of a stored request, in ``Intake._known_request``'s argument order.
_REQUEST_FACTS = (Request.number, Request.caller_normalized, Request.caller_number,
                  Request.operator, Request.status, Request.closed_at.is_not(None),
                  Request.outcome, Request.level, Request.smo, Request.corruption)
_CALLS = Call.__table__
_LEGS = CallLeg.__table__
# The column each PBX-given field of a call event is written to (its length is the limit).
_COLUMNS = {
    "linkedid": Call.linkedid, "uniqueid": CallLeg.uniqueid, "caller_number": Call.caller_number,
    "line": Call.line, "channel": CallLeg.channel, "extension": CallLeg.extension,
    "queue": CallLeg.queue, "number": Call.answered_by_external,
    "from_extension": Transfer.from_extension, "to": Transfer.to, "smo": Transfer.smo,
    "pbx_path": Recording.pbx_path,
}
_LIMITS: dict[type, tuple[tuple[str, int], ...]] = {
    cls: tuple((f.name, _COLUMNS[f.name].type.length) for f in fields(cls)
               if f.name in _COLUMNS)
    for cls in EVENT_TYPES.values()
}


# --------------------------------------------------------------------------- batch state
def _stage(pending: _Req | _Leg | _Call, values: dict[str, Any]) -> None:
    """Record column values on a batch object: into its pending INSERT row if it is new in
    this batch, else into the UPDATE of its stored row."""
    target = pending.row if pending.row is not None else pending.changes
    target.update(values)


@dataclass(slots=True, eq=False)
class _Req:
    """A request as the batch sees it: identity, plus the columns intake may change."""

    id: int | None
    number: int | None
    caller_normalized: str
    caller_number: str
    operator: str | None = None
    status: str = "new"
    closed: bool = False
    outcome: str | None = None
    # Who may see it (level, SMO, corruption flag); told to the websocket hub with each note.
    scope: Scope = NEW_REQUEST_SCOPE
    row: dict[str, Any] | None = None  # pending INSERT (a request new in this batch)
    changes: dict[str, Any] = field(default_factory=dict)  # pending UPDATE of a stored row
    version_inc: int = 0

    def bump_version(self) -> None:
        if self.row is not None:
            self.row["version"] += 1
        else:
            self.version_inc += 1


@dataclass(slots=True, eq=False)
class _Leg:
    uniqueid: str
    ended: bool
    row: dict[str, Any] | None = None  # pending INSERT
    changes: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class _Call:
    """A stored (or about to be stored) call and what the batch knows of its rows."""

    id: int | None
    linkedid: str
    request: _Req | None
    queued: bool = False
    answered: bool = False
    ended: bool = False
    outbound: bool = False
    legs: dict[str, _Leg] = field(default_factory=dict)
    transfers: set[tuple[str, str, str]] | None = None  # loaded on demand
    row: dict[str, Any] | None = None  # pending INSERT
    changes: dict[str, Any] = field(default_factory=dict)

    @property
    def request_id(self) -> int | None:
        return self.request.id if self.request is not None else None

    @property
    def request_number(self) -> int | None:
        return self.request.number if self.request is not None else None


@dataclass(slots=True, eq=False)
class _Pop:
    """A screen pop whose history is filled in when its run of events is written."""

    note: Notification
    caller: str
    own_number: int | None
    last_new_number: int  # requests new in this batch with a higher number came later
    statuses: dict[int, str]  # status of batch-known requests of this caller at ring time


@dataclass(slots=True)
class _Batch:
    """Everything one batch has read and decided, until it is written."""

    calls: dict[str, _Call | None] = field(default_factory=dict)
    reqs: dict[int, _Req] = field(default_factory=dict)  # stored requests, by id
    by_caller: dict[str, list[_Req]] = field(default_factory=lambda: defaultdict(list))
    new_reqs: list[_Req] = field(default_factory=list)  # not yet inserted
    new_calls: list[_Call] = field(default_factory=list)
    new_legs: list[tuple[_Call, _Leg]] = field(default_factory=list)
    dirty_calls: dict[int, _Call] = field(default_factory=dict)
    dirty_legs: list[tuple[_Call, _Leg]] = field(default_factory=list)
    dirty_reqs: dict[int, _Req] = field(default_factory=dict)
    transfers: list[tuple[_Call, dict[str, Any]]] = field(default_factory=list)
    recordings: list[tuple[_Call, dict[str, Any]]] = field(default_factory=list)
    known_paths: set[str] = field(default_factory=set)
    logs: list[tuple[_Call, datetime, str, dict[str, Any]]] = field(default_factory=list)
    pops: list[_Pop] = field(default_factory=list)
    # Call-back calls on missed calls that ended: (call, request, result, at).
    attempts: list[tuple[_Call, _Req, str, datetime]] = field(default_factory=list)
    new_numbers: set[int] = field(default_factory=set)
    new_per_caller: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    last_new_number: int = 0
    next_number: int = 0
    locked: bool = False
    # pending_callbacks entries taken by this attempt: given back if it rolls back.
    taken_callbacks: dict[str, int] = field(default_factory=dict)
    # Ended calls that may still learn facts (CEL backfill of a call the live path closed
    # by reconciliation, blind to its end).
    amend: set[str] = field(default_factory=set)


class Intake:
    """Applies call events from the buffer to the journal, one ordered consumer."""

    def __init__(
        self,
        db: Database,
        bus: Bus,
        *,
        pbx_id: str,
        recordings_pbx_dir: str = "/var/spool/asterisk/monitor",
        batch_size: int = 5000,
        on_committed: Callable[[Sequence[CallEvent]], Awaitable[None]] | None = None,
        missed_callback_attempts: int = 3,
    ) -> None:
        self.db = db
        self.bus = bus
        self.pbx_id = pbx_id
        self.recordings_pbx_dir = recordings_pbx_dir.rstrip("/")
        # The cap of one batch: the consumer takes whatever is buffered up to it, so batches
        # are small (fast screen pops) when calls are few and large (cheap) under load.
        self.batch_size = batch_size
        self.on_committed = on_committed
        self.committed_batches = 0
        self.committed_events = 0
        self.retries = 0
        self.dropped_events = 0
        self.clipped_values = 0
        self.busy = False
        self.last_commit_at: datetime | None = None
        # Optional probe (benchmarks): called with each batch right after its commit.
        self.commit_observer: Callable[[Sequence[CallEvent]], None] | None = None
        # Originations requested through the service: dialled number → request id.
        self.pending_callbacks: dict[str, int] = {}
        # Failed call-back attempts on a missed call before the request's result says so.
        self.missed_callback_attempts = missed_callback_attempts

    # ------------------------------------------------------------------ running
    async def run(self, buffer: SpillingBuffer) -> None:
        """Consume the buffer forever."""
        while True:
            batch = await buffer.get_batch(self.batch_size)
            # Taken from the buffer but not committed yet: drain() must wait for it too.
            self.busy = True
            try:
                await self.apply(batch)
            finally:
                self.busy = False

    async def open_calls(self) -> list[tuple[str, str, list[str], str | None]]:
        """(linkedid, direction, answered_by, answered elsewhere by) of stored calls not yet
        ended — for a restart."""
        async with self.db.session() as session:
            rows = await session.execute(
                select(Call.linkedid, Call.direction, Call.operator, Call.answered_by_external)
                .where(Call.pbx_id == self.pbx_id, Call.ended_at.is_(None))
            )
            return [(lid, direction, [op] if op else [], elsewhere)
                    for lid, direction, op, elsewhere in rows]

    async def apply(self, batch: Sequence[CallEvent], *,
                    amend: Collection[str] = ()) -> None:
        """Apply one batch in one transaction; retry on a lost race or a dropped connection.

        A batch the database keeps refusing is split and applied event by event (order kept),
        so one poisoned event costs only itself, never the calls around it. ``amend``: ended
        calls (by Linkedid) that still take answers and transfers (CEL backfill).
        """
        batch = [self._fit(event) for event in batch]
        if await self._commit(batch, amend=amend):
            return
        if len(batch) == 1:
            self.dropped_events += 1
            # (structlog's own first argument is called ``event``)
            log.error("intake.event_dropped", call_event=type(batch[0]).__name__,
                      linkedid=batch[0].linkedid)
            return
        log.error("intake.batch_split", size=len(batch))
        for event in batch:
            await self.apply([event], amend=amend)

    def _fit(self, event: CallEvent) -> CallEvent:
        """A PBX value must never fail a write: NULs dropped, text clipped to its column (the
        original logged, truncated)."""
        changes: dict[str, str] = {}
        for name, limit in _LIMITS.get(type(event), ()):
            value = getattr(event, name)
            if isinstance(value, str) and (len(value) > limit or "\x00" in value):
                changes[name] = value.replace("\x00", "")[:limit]
        if not changes:
            return event
        self.clipped_values += len(changes)
        log.warning("intake.value_clipped", call_event=type(event).__name__,
                    fields=sorted(changes), linkedid=event.linkedid[:80])
        return replace(event, **changes)  # type: ignore[arg-type]  # str fields only

    async def _commit(self, batch: Sequence[CallEvent], attempts: int = 5,
                      amend: Collection[str] = ()) -> bool:
        for attempt in range(attempts):
            notes: list[Notification] = []
            state = _Batch(amend=set(amend))
            try:
                await self.db.transact(partial(self._transaction, st=state, batch=batch,
                                               notes=notes))
                break
            except (IntegrityError, DBAPIError) as exc:
                # A concurrent writer took the same Linkedid, or a deadlock / dropped
                # connection: the transaction rolled back (the counter with it), try again.
                for number, request_id in state.taken_callbacks.items():
                    self.pending_callbacks.setdefault(number, request_id)
                self.retries += 1
                log.warning("intake.retry", attempt=attempt + 1, error=str(exc.orig)[:200])
                await asyncio.sleep(min(2.0, 0.05 * 2 ** attempt) * random.uniform(0.5, 1.0))
            except BaseException:
                for number, request_id in state.taken_callbacks.items():
                    self.pending_callbacks.setdefault(number, request_id)
                raise
        else:
            return False
        self.committed_batches += 1
        self.committed_events += len(batch)
        self.last_commit_at = datetime.now(UTC)
        if self.commit_observer is not None:
            self.commit_observer(batch)
        for note in notes:
            self.bus.publish(note)
        if self.on_committed is not None:
            await self.on_committed(batch)
        return True

    def _transaction(self, conn: Connection, st: _Batch, batch: Sequence[CallEvent],
                     notes: list[Notification]) -> None:
        """The whole batch, inside one transaction (run by ``Database.transact``: on SQLite in
        the database's writer thread, in one hop from the event loop)."""
        self._apply_batch(conn, st, batch, notes)
        self._store_notifications(conn, notes)

    def _apply_batch(self, conn: Connection, st: _Batch,
                     batch: Sequence[CallEvent], notes: list[Notification]) -> None:
        run: list[CallEvent] = []
        for event in batch:
            if type(event) is CallStarted and event.direction != "inbound":
                # The call-back look-up reads requests: write what came before it first.
                self._run(conn, st, run, notes)
                run = []
                self._outbound_started(conn, st, event)
            else:
                run.append(event)
        self._run(conn, st, run, notes)
        if st.logs:
            conn.execute(insert(CallLogEntry), [
                {"call_id": call.id, "at": at, "type": kind, "data": data}
                for call, at, kind, data in st.logs])

    # ------------------------------------------------------------------ reading
    def _lock(self, conn: Connection, st: _Batch) -> None:
        """SQLite: take the write lock before reading, so what is read stays true until the
        commit (pysqlite begins the transaction only at the first write). PostgreSQL locks the
        request rows it reads instead (``FOR UPDATE``)."""
        if st.locked:
            return
        st.locked = True
        if self.db.is_sqlite:
            conn.execute(update(Counter).where(Counter.name == REQUEST_COUNTER)
                         .values(value=Counter.value))

    def _load(self, conn: Connection, st: _Batch, events: Iterable[CallEvent]) -> None:
        """Read, once, the stored state of every call the events name that the batch does not
        know yet: the call, its request (locked), its legs; transfers and recording paths."""
        missing = list(dict.fromkeys(e.linkedid for e in events if e.linkedid not in st.calls))
        transfer_calls: set[str] = {e.linkedid for e in events if type(e) is CallTransferred}
        paths = [e.pbx_path for e in events if type(e) is RecordingStarted
                 and e.pbx_path not in st.known_paths]
        with_legs: ColumnElement[bool] = Call.ended_at.is_(None)
        if st.amend:
            with_legs = or_(with_legs, Call.linkedid.in_(sorted(st.amend)))
        if missing:
            for chunk in _chunks(missing):
                if not self.db.is_sqlite:
                    conn.execute(
                        select(Request.id).join(Call, Call.request_id == Request.id)
                        .where(Call.pbx_id == self.pbx_id, Call.linkedid.in_(chunk))
                        .order_by(Request.id).with_for_update(of=Request))
                # One row per leg of a call still in progress (one, leg-less, for an ended
                # call): the legs come with their call rather than in a query of their own.
                rows = conn.execute(
                    select(Call.id, Call.linkedid, Call.request_id, Call.queued_at.is_not(None),
                           Call.answered_at.is_not(None), Call.ended_at.is_not(None),
                           Call.direction, CallLeg.uniqueid, CallLeg.ended_at.is_not(None),
                           *_REQUEST_FACTS)
                    .outerjoin(Request, Request.id == Call.request_id)
                    .outerjoin(CallLeg, and_(CallLeg.call_id == Call.id, with_legs))
                    .where(Call.pbx_id == self.pbx_id, Call.linkedid.in_(chunk)))
                for (call_id, linkedid, request_id, queued, answered, ended, direction,
                     leg_uniqueid, leg_ended, *request_columns) in rows:
                    call = st.calls.get(linkedid)
                    if call is None:
                        req = None
                        if request_id is not None:
                            req = st.reqs.get(request_id)
                            if req is None:
                                req = self._known_request(st, request_id, *request_columns)
                        call = _Call(call_id, linkedid, req, bool(queued), bool(answered),
                                     bool(ended), direction == "outbound")
                        st.calls[linkedid] = call
                    if leg_uniqueid is not None:
                        call.legs[leg_uniqueid] = _Leg(leg_uniqueid, bool(leg_ended))
            for linkedid in missing:
                st.calls.setdefault(linkedid, None)
        wanted = {c.id: c for lid in transfer_calls
                  if (c := st.calls.get(lid)) is not None and c.transfers is None}
        for call in wanted.values():
            call.transfers = set()
        stored = [call_id for call_id in wanted if call_id is not None]
        for chunk in _chunks(stored):
            rows = conn.execute(
                select(Transfer.call_id, Transfer.kind, Transfer.from_extension, Transfer.to)
                .where(Transfer.call_id.in_(chunk)))
            for row in rows:
                wanted[row.call_id].transfers.add(  # type: ignore[union-attr]
                    (str(row.kind), str(row.from_extension), str(row.to)))
        for chunk in _chunks(list(dict.fromkeys(paths))):
            st.known_paths.update(conn.scalars(
                select(Recording.pbx_path).where(Recording.pbx_id == self.pbx_id,
                                                 Recording.pbx_path.in_(chunk))))

    @staticmethod
    def _known_request(st: _Batch, request_id: int, number: int | None, caller_n: str | None,
                       caller: str | None, operator: str | None, status: str, closed: Any,
                       outcome: str | None, level: str | None, smo: str | None,
                       corruption: Any) -> _Req:
        req = _Req(request_id, number, caller_n or "", caller or "", operator, status,
                   bool(closed), outcome, Scope(level, smo, bool(corruption)))
        st.reqs[request_id] = req
        st.by_caller[req.caller_normalized].append(req)
        return req

    def _outbound_started(self, conn: Connection, st: _Batch, event: CallStarted) -> None:
        """An outbound call: stored only when it belongs to a request (a call-back)."""
        self._lock(conn, st)
        self._load(conn, st, [event])
        if st.calls.get(event.linkedid) is not None:
            return  # replay, reconnect or restart: the call is already in the journal
        req = self._callback_request(conn, st, event)
        if req is None:
            return  # an outbound call nobody asked the journal to follow
        self._new_call(st, event, req)

    def _callback_request(self, conn: Connection, st: _Batch,
                          event: CallStarted) -> _Req | None:
        """The open request a call-back belongs to: originated through the service, or dialling
        the number of an open request awaiting a deferred answer."""
        number = normalize_phone(event.line)
        columns = (Request.id, *_REQUEST_FACTS)
        request_id = self.pending_callbacks.pop(number, None)
        if request_id is not None:
            st.taken_callbacks[number] = request_id
            query = select(*columns).where(Request.id == request_id)
        else:
            query = (select(*columns)
                     .where(Request.status == "deferred", Request.closed_at.is_(None),
                            (Request.caller_normalized == number)
                            | (Request.contact_phone == number))
                     .order_by(Request.number.desc()).limit(1))
        if not self.db.is_sqlite:
            query = query.with_for_update(of=Request)
        row = conn.execute(query).first()
        if row is None:
            return None
        known = st.reqs.get(row[0])
        return known if known is not None else self._known_request(st, *row)

    # ------------------------------------------------------------------ one run of events
    def _run(self, conn: Connection, st: _Batch, events: list[CallEvent],
             notes: list[Notification]) -> None:
        """Apply a run of events (no outbound CallStarted among them) and write it."""
        if not events:
            return
        self._lock(conn, st)
        self._load(conn, st, events)
        # New requests of this run, counted exactly as _apply will create them; their numbers
        # come from one counter UPDATE (row-locked until the commit: gap-free, never reused).
        seen: set[str] = set()
        new = 0
        for event in events:
            if type(event) is CallStarted and st.calls.get(event.linkedid) is None \
                    and event.linkedid not in seen:
                seen.add(event.linkedid)
                new += 1
        if new:
            top = conn.scalar(
                update(Counter).where(Counter.name == REQUEST_COUNTER)
                .values(value=Counter.value + new).returning(Counter.value))
            if top is None:
                raise RuntimeError("the request counter row is missing; run `hotline db upgrade`")
            st.next_number = int(top) - new + 1
        for event in events:
            self._apply(st, event, notes)
        self._write(conn, st)

    def _apply(self, st: _Batch, event: CallEvent, notes: list[Notification]) -> None:
        kind = type(event)
        if kind is CallStarted:
            self._call_started(st, event, notes)  # type: ignore[arg-type]
            return
        call = st.calls.get(event.linkedid)
        if call is None or (call.ended and event.linkedid not in st.amend):
            return
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, st, call, event, notes)

    # ------------------------------------------------------------------ events
    def _call_started(self, st: _Batch, event: CallStarted, notes: list[Notification]) -> None:
        if st.calls.get(event.linkedid) is not None:
            return  # replay, reconnect or restart: the call is already in the journal
        number = st.next_number
        st.next_number += 1
        st.new_numbers.add(number)
        st.last_new_number = number
        caller_normalized = normalize_phone(event.caller_number)
        req = _Req(None, number, caller_normalized, event.caller_number, row={
            "number": number, "pbx_id": self.pbx_id, "linkedid": event.linkedid,
            "created_at": event.at, "line": event.line, "caller_number": event.caller_number,
            "caller_normalized": caller_normalized, "status": "new", "level": "1",
            "registered_by": "auto", "version": 1, "updated_at": event.at,
            # Every column intake may change, so all rows of the multi-row INSERT match.
            "operator": None, "assigned_to": None, "outcome": None, "smo": None,
            "source": event.source,
        })
        st.new_reqs.append(req)
        st.by_caller[caller_normalized].append(req)
        st.new_per_caller[caller_normalized] += 1
        notes.append(self._note("request.created", number, event.at,
                                caller_number=event.caller_number, line=event.line,
                                status="new", level="1", smo=None))
        self._new_call(st, event, req)

    def _new_call(self, st: _Batch, event: CallStarted, req: _Req) -> None:
        call = _Call(None, event.linkedid, req, row={
            "request": req, "pbx_id": self.pbx_id, "linkedid": event.linkedid,
            "direction": event.direction, "caller_number": event.caller_number,
            "line": event.line, "started_at": event.at, "queued_at": None,
            "answered_at": None, "ended_at": None, "outcome": None, "end_reason": None,
            "operator": None, "queue": None, "answered_by_external": None,
            "source": event.source,
        })
        call.transfers = set()
        call.outbound = event.direction == "outbound"
        st.calls[event.linkedid] = call
        st.new_calls.append(call)
        self._add_leg(st, call, event.uniqueid, channel=event.channel,
                      extension=event.caller_number if event.direction == "outbound" else None)
        self._log(st, call, event.at, "started", direction=event.direction,
                  caller=event.caller_number, line=event.line,
                  source=event.source if event.source != "ami" else None)

    @staticmethod
    def _add_leg(st: _Batch, call: _Call, uniqueid: str, *, channel: str = "",
                 extension: str | None = None, queue: str | None = None,
                 rang_at: datetime | None = None, answered_at: datetime | None = None) -> None:
        leg = _Leg(uniqueid, False, row={
            "uniqueid": uniqueid, "channel": channel, "extension": extension, "queue": queue,
            "rang_at": rang_at, "answered_at": answered_at, "ended_at": None})
        call.legs[uniqueid] = leg
        st.new_legs.append((call, leg))

    def _queue_joined(self, st: _Batch, call: _Call, event: QueueJoined,
                      notes: list[Notification]) -> None:
        if not call.queued:
            call.queued = True
            self._touch_call(st, call, queued_at=event.at, queue=event.queue)
        self._log(st, call, event.at, "queued", queue=event.queue)

    def _ringing(self, st: _Batch, call: _Call, event: LegRinging,
                 notes: list[Notification]) -> None:
        if event.uniqueid in call.legs:
            return  # the same ringing seen again after a reconnect
        self._add_leg(st, call, event.uniqueid, channel=event.channel,
                      extension=event.extension, queue=event.queue or None, rang_at=event.at)
        self._log(st, call, event.at, "ringing", extension=event.extension, queue=event.queue)
        req = call.request
        if req is not None and req.number is not None:
            note = self._call_note("call.ringing", req, event.at,
                                   caller_number=req.caller_number, extension=event.extension,
                                   queue=event.queue, history=[])
            notes.append(note)
            if req.caller_normalized:
                # The history is read when this run is written; what it must not show yet
                # (requests of later calls in the batch) and the statuses as they are now
                # are noted here.
                st.pops.append(_Pop(note, req.caller_normalized, req.number,
                                    st.last_new_number,
                                    {r.number: r.status for r in st.by_caller[req.caller_normalized]
                                     if r.number is not None}))

    def _ring_no_answer(self, st: _Batch, call: _Call, event: LegRingNoAnswer,
                        notes: list[Notification]) -> None:
        self._log(st, call, event.at, "ring_no_answer", extension=event.extension)

    def _answered(self, st: _Batch, call: _Call, event: CallAnswered,
                  notes: list[Notification]) -> None:
        leg = call.legs.get(event.uniqueid)
        if leg is not None:
            self._touch_leg(st, call, leg, answered_at=event.at)
        else:
            self._add_leg(st, call, event.uniqueid, extension=event.extension,
                          queue=event.queue or None, answered_at=event.at)
        if not call.answered:
            call.answered = True
            self._touch_call(st, call, answered_at=event.at, operator=event.extension,
                             **self._amended_outcome(st, call))
        req = call.request
        if req is not None:
            if req.operator is None:
                req.operator = event.extension
                self._touch_req(st, req, operator=event.extension)
            if req.status == "new":
                req.status = "in_progress"
                self._touch_req(st, req, status="in_progress", assigned_to=event.extension,
                                updated_at=event.at)
                req.bump_version()
        self._log(st, call, event.at, "answered", extension=event.extension, queue=event.queue)
        if call.request_number is not None:
            notes.append(self._call_note("call.answered", call.request, event.at,
                                         extension=event.extension))

    def _answered_elsewhere(self, st: _Batch, call: _Call, event: CallAnsweredElsewhere,
                            notes: list[Notification]) -> None:
        """Answered by an outside number (follow-me, forwarding): no fund operator."""
        if not call.answered:
            call.answered = True
            self._touch_call(st, call, answered_at=event.at, answered_by_external=event.number,
                             **self._amended_outcome(st, call))
        self._log(st, call, event.at, "answered_elsewhere", number=event.number)
        if call.request_number is not None:
            notes.append(self._call_note("call.answered", call.request, event.at,
                                         extension=None, answered_by_external=event.number))

    def _held(self, st: _Batch, call: _Call, event: CallHeld,
              notes: list[Notification]) -> None:
        self._log(st, call, event.at, "held", extension=event.extension)
        if call.request_number is not None:
            notes.append(self._call_note("call.held", call.request, event.at,
                                         extension=event.extension))

    def _unheld(self, st: _Batch, call: _Call, event: CallUnheld,
                notes: list[Notification]) -> None:
        self._log(st, call, event.at, "unheld", extension=event.extension)
        if call.request_number is not None:
            notes.append(self._call_note("call.unheld", call.request, event.at,
                                         extension=event.extension))

    def _transferred(self, st: _Batch, call: _Call, event: CallTransferred,
                     notes: list[Notification]) -> None:
        key = (event.kind, event.from_extension, event.to)
        assert call.transfers is not None  # loaded by _load
        if key in call.transfers:
            return  # the same transfer from a second writer or a replay
        call.transfers.add(key)
        st.transfers.append((call, {
            "kind": event.kind, "from_extension": event.from_extension, "to": event.to,
            "target": event.target, "smo": event.smo, "at": event.at}))
        self._log(st, call, event.at, "transferred", kind=event.kind,
                  from_extension=event.from_extension, to=event.to, target=event.target,
                  smo=event.smo)
        req = call.request
        if req is None or req.number is None:
            return
        notes.append(self._call_note("call.transferred", req, event.at,
                                     kind=event.kind, to=event.to, target=event.target,
                                     smo=event.smo, from_extension=event.from_extension))
        if event.target in ("l2", "smo"):
            level = "2" if event.target == "l2" else "smo"
            if not req.closed:
                req.status = "transferred"
                values: dict[str, Any] = {"level": level, "status": "transferred",
                                          "updated_at": event.at}
                if event.target == "smo":
                    values["smo"] = event.smo
                req.scope = Scope(level, event.smo if level == "smo" else None,
                                  req.scope.corruption)
                self._touch_req(st, req, **values)
                req.bump_version()
            notes.append(self._note("request.routed", req.number, event.at,
                                    level=level, smo=event.smo if level == "smo" else None,
                                    via="telephone_transfer"))

    def _recording(self, st: _Batch, call: _Call, event: RecordingStarted,
                   notes: list[Notification]) -> None:
        if event.pbx_path in st.known_paths:
            return
        st.known_paths.add(event.pbx_path)
        st.recordings.append((call, {
            "pbx_id": self.pbx_id, "leg_uniqueid": event.uniqueid, "pbx_path": event.pbx_path,
            "relative_path": self.relative_recording_path(event.pbx_path),
            "status": "pending", "started_at": event.at}))
        self._log(st, call, event.at, "recording", path=event.pbx_path)

    def _leg_ended(self, st: _Batch, call: _Call, event: LegEnded,
                   notes: list[Notification]) -> None:
        leg = call.legs.get(event.uniqueid)
        if leg is not None and not leg.ended:
            leg.ended = True
            self._touch_leg(st, call, leg, ended_at=event.at)

    def _ended(self, st: _Batch, call: _Call, event: CallEnded,
               notes: list[Notification]) -> None:
        call.ended = True
        self._touch_call(st, call, ended_at=event.at, outcome=event.outcome,
                         end_reason=event.reason)
        for leg in call.legs.values():
            if not leg.ended:
                leg.ended = True
                self._touch_leg(st, call, leg, ended_at=event.at)
        req = call.request
        if req is not None and req.outcome is None:
            req.outcome = event.outcome
            self._touch_req(st, req, outcome=event.outcome)
        elif req is not None and call.outbound and req.outcome == MISSED_OUTCOME:
            # A call-back on a missed call: its outcome is a call-back attempt.
            st.attempts.append((call, req, result_of_call(event.outcome), event.at))
        self._log(st, call, event.at, "ended", outcome=event.outcome, reason=event.reason)
        if call.request_number is not None:
            notes.append(self._call_note("call.ended", call.request, event.at,
                                         outcome=event.outcome, reason=event.reason))

    def _amended_outcome(self, st: _Batch, call: _Call) -> dict[str, Any]:
        """An ended call closed as abandoned that CEL shows answered: the outcome, on the call
        and on its request, becomes "answered"."""
        if not call.ended:
            return {}
        req = call.request
        if req is not None and req.outcome == "abandoned":
            req.outcome = "answered"
            self._touch_req(st, req, outcome="answered")
        return {"outcome": "answered"}

    # ------------------------------------------------------------------ pending changes
    @staticmethod
    def _touch_call(st: _Batch, call: _Call, **values: Any) -> None:
        _stage(call, values)
        if call.row is None and call.id is not None:
            st.dirty_calls[call.id] = call

    @staticmethod
    def _touch_leg(st: _Batch, call: _Call, leg: _Leg, **values: Any) -> None:
        if leg.row is None and not leg.changes:
            st.dirty_legs.append((call, leg))
        _stage(leg, values)

    @staticmethod
    def _touch_req(st: _Batch, req: _Req, **values: Any) -> None:
        if req.closed:
            return  # a closed request is read-only (the database refuses it too); calls still log
        _stage(req, values)
        if req.row is None and req.id is not None:
            st.dirty_reqs[req.id] = req

    # ------------------------------------------------------------------ writing
    def _write(self, conn: Connection, st: _Batch) -> None:
        """Write what the run decided: inserts first (ids for what hangs off them), the
        screen-pop histories, then updates, transfers and recordings."""
        if st.new_reqs:
            new_rows = [req.row for req in st.new_reqs if req.row is not None]
            ids = list(conn.scalars(
                insert(Request).returning(Request.id, sort_by_parameter_order=True), new_rows))
            for req, request_id in zip(st.new_reqs, ids, strict=True):
                req.id = request_id
                req.row = None
                st.reqs[request_id] = req
            st.new_reqs.clear()
        if st.pops:
            self._histories(conn, st)
        if st.new_calls:
            rows: list[dict[str, Any]] = []
            for call in st.new_calls:
                row = dict(call.row)  # type: ignore[arg-type]
                row["request_id"] = row.pop("request").id
                rows.append(row)
            ids = list(conn.scalars(
                insert(Call).returning(Call.id, sort_by_parameter_order=True), rows))
            for call, call_id in zip(st.new_calls, ids, strict=True):
                call.id = call_id
                call.row = None
            st.new_calls.clear()
        if st.attempts:
            self._write_attempts(conn, st)
        if st.new_legs:
            rows = []
            for call, leg in st.new_legs:
                rows.append({"call_id": call.id, **leg.row})  # type: ignore[dict-item]
                leg.row = None
            conn.execute(insert(CallLeg), rows)
            st.new_legs.clear()
        if st.dirty_legs:
            _update_many(conn, _LEGS, (
                ({"_call_id": call.id, "_uniqueid": leg.uniqueid}, leg.changes)
                for call, leg in st.dirty_legs),
                lambda: (_LEGS.c.call_id == bindparam("_call_id"))
                & (_LEGS.c.uniqueid == bindparam("_uniqueid")))
            for _call, leg in st.dirty_legs:
                leg.changes = {}
            st.dirty_legs.clear()
        if st.dirty_calls:
            _update_many(conn, _CALLS, (
                ({"_id": call.id}, call.changes) for call in st.dirty_calls.values()),
                lambda: _CALLS.c.id == bindparam("_id"))
            for call in st.dirty_calls.values():
                call.changes = {}
            st.dirty_calls.clear()
        if st.dirty_reqs:
            _update_many(conn, _REQUESTS, (
                ({"_id": req.id}, {**req.changes, **({"_version_inc": req.version_inc}
                                                     if req.version_inc else {})})
                for req in st.dirty_reqs.values()),
                lambda: _REQUESTS.c.id == bindparam("_id"))
            for req in st.dirty_reqs.values():
                req.changes = {}
                req.version_inc = 0
            st.dirty_reqs.clear()
        if st.transfers:
            conn.execute(insert(Transfer), [
                {"call_id": call.id, **row} for call, row in st.transfers])
            st.transfers.clear()
        if st.recordings:
            conn.execute(insert(Recording), [
                {"request_id": call.request_id, "call_id": call.id, **row}
                for call, row in st.recordings])
            st.recordings.clear()

    def _write_attempts(self, conn: Connection, st: _Batch) -> None:
        """Store the call-back attempts of the run and fill their requests' result
        ("Перезвонили", "Не дозвонились после N попыток") — before the requests' UPDATEs."""
        conn.execute(insert(CallbackAttempt), [
            {"request_id": req.id, "call_id": call.id, "at": at, "result": result,
             "source": "call", "user_login": None, "note": None}
            for call, req, result, at in st.attempts])
        reqs: dict[int, tuple[_Req, datetime]] = {
            req.id: (req, at) for _call, req, _result, at in st.attempts if req.id is not None}
        results: dict[int, list[str]] = defaultdict(list)
        current: dict[int, str | None] = {}
        for chunk in _chunks(list(reqs)):
            for request_id, result in conn.execute(
                    select(CallbackAttempt.request_id, CallbackAttempt.result)
                    .where(CallbackAttempt.request_id.in_(chunk))
                    .order_by(CallbackAttempt.id)):
                results[request_id].append(result)
            for request_id, written in conn.execute(select(Request.id, Request.result)
                                                    .where(Request.id.in_(chunk))):
                current[request_id] = written
        for request_id, (req, at) in reqs.items():
            _state, text = settlement(results[request_id], self.missed_callback_attempts)
            fill = result_to_fill(current.get(request_id), text)
            if fill is not None and not req.closed:
                self._touch_req(st, req, result=fill, updated_at=at)
                req.bump_version()
        st.attempts.clear()

    def _histories(self, conn: Connection, st: _Batch) -> None:
        """Fill the screen pops' ``history``: that caller's other requests, newest first.

        One query for every caller of the run (a UNION ALL of per-caller ``ORDER BY created_at
        DESC LIMIT n``, each walking the (caller_normalized, created_at) index), asking for as
        many more rows as the batch has new requests of that caller, so that leaving out the
        ones created after the ring still leaves HISTORY_LIMIT.
        """
        callers = list(dict.fromkeys(pop.caller for pop in st.pops))
        found: dict[str, list[Any]] = {}
        for chunk in _chunks(callers, HISTORY_CHUNK):
            statement, params = histories_select(
                [(caller, HISTORY_LIMIT + 1 + st.new_per_caller.get(caller, 0), None)
                 for caller in chunk])
            rows = grouped(conn.execute(statement, params))
            for index, caller in enumerate(chunk):
                found[caller] = rows.get(index, [])
        for pop in st.pops:
            def later_or_own(number: int, pop: _Pop = pop) -> bool:
                return number == pop.own_number or (number in st.new_numbers
                                                    and number > pop.last_new_number)
            pop.note["history"] = pick(found.get(pop.caller, ()), later_or_own, pop.statuses)
        st.pops.clear()

    # ------------------------------------------------------------------ helpers
    def relative_recording_path(self, pbx_path: str) -> str:
        """The recording's path below RECORDINGS_DIR (as Asterisk named it below its own dir)."""
        path = PurePosixPath(pbx_path)
        base = PurePosixPath(self.recordings_pbx_dir)
        try:
            return str(path.relative_to(base))
        except ValueError:
            return path.name

    @staticmethod
    def _log(st: _Batch, call: _Call, at: datetime, entry_type: str, **data: Any) -> None:
        st.logs.append((call, at, entry_type,
                        {k: v for k, v in data.items() if v is not None and v != ""}))

    @staticmethod
    def _note(note_type: str, request_number: int | None, at: datetime,
              **data: Any) -> Notification:
        return {"type": note_type, "at": at.isoformat(), "request_number": request_number,
                **data}

    @classmethod
    def _call_note(cls, note_type: str, req: _Req | None, at: datetime,
                   **data: Any) -> Notification:
        """A ``call.*`` note, telling the hub who may see it (no database look-up there)."""
        note = cls._note(note_type, req.number if req is not None else None, at, **data)
        if req is not None:
            note[SCOPE_KEY] = req.scope
        return note

    @staticmethod
    def _store_notifications(conn: Connection, notes: list[Notification]) -> None:
        """Keep notifications so a reconnecting page can ask for what it missed.

        One multi-row INSERT … RETURNING for the whole batch (not one per notification); the
        ids come back in parameter order.
        """
        if not notes:
            return
        rows = [{"at": datetime.fromisoformat(n["at"]), "type": n["type"],
                 "request_number": n.get("request_number"),
                 "payload": {k: v for k, v in n.items() if k != SCOPE_KEY}} for n in notes]
        ids = conn.scalars(
            insert(StoredNotification).returning(StoredNotification.id,
                                                 sort_by_parameter_order=True), rows)
        for note, row_id in zip(notes, ids, strict=True):
            note["id"] = row_id


def _update_many(conn: Connection, table: Any,
                 items: Iterable[tuple[dict[str, Any], dict[str, Any]]],
                 where: Callable[[], Any]) -> None:
    """UPDATE rows by key with ``executemany``: one statement per set of changed columns.

    ``_version_inc`` in the changes becomes ``version = version + :_version_inc``.
    """
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for key, changes in items:
        if not changes:
            continue
        groups[tuple(sorted(changes))].append({**key, **{f"v_{k}": v for k, v in changes.items()}})
    for columns, rows in groups.items():
        values: dict[str, Any] = {}
        for column in columns:
            if column == "_version_inc":
                values["version"] = table.c.version + bindparam(f"v_{column}")
            else:
                values[column] = bindparam(f"v_{column}")
        conn.execute(update(table).where(where()).values(values), rows)


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


async def next_request_number(session: AsyncSession) -> int:
    """Take the next request number inside the caller's transaction (row-locked, gap-free)."""
    value = await session.scalar(
        update(Counter).where(Counter.name == REQUEST_COUNTER)
        .values(value=Counter.value + 1).returning(Counter.value)
    )
    if value is None:
        raise RuntimeError("the request counter row is missing; run `hotline db upgrade`")
    return int(value)


_HANDLERS: dict[type, Callable[..., None]] = {
    QueueJoined: Intake._queue_joined,
    LegRinging: Intake._ringing,
    LegRingNoAnswer: Intake._ring_no_answer,
    CallAnswered: Intake._answered,
    CallAnsweredElsewhere: Intake._answered_elsewhere,
    CallHeld: Intake._held,
    CallUnheld: Intake._unheld,
    CallTransferred: Intake._transferred,
    RecordingStarted: Intake._recording,
    LegEnded: Intake._leg_ended,
    CallEnded: Intake._ended,
}
