"""Intake: call events → requests, calls, legs, transfers, recordings, notifications.

This is where an inbound 8-800 call gets its request number. Call events are applied in
batches, one transaction per batch (group commit, never reordered). The request number comes
from the ``counters`` row, updated in the same transaction as the insert, so numbers are
gap-free and never reused; the (pbx, Linkedid) unique key makes replay, reconnect and restart
idempotent, and a concurrent writer that lost the race simply retries the batch.
Notifications are published only after the commit: a screen pop never names an uncommitted
request (a phone that rings once its request is committed is popped at once by
journal/intake/early.py, which the intake tells what each commit wrote). The transaction is
synchronous SQLAlchemy Core run by ``Database.transact`` in the database writer's own thread
(journal/writer.py), one hand-over from the busy event loop.

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
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import fields, replace
from datetime import UTC, datetime
from functools import partial

import structlog
from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from journal.db import Database
from journal.intake.early import EarlyPops
from journal.intake.rows import Rows
from journal.intake.rules import EventRules
from journal.intake.state import Batch
from journal.models import Call, CallLeg, Recording, Transfer
from journal.notes import Note
from journal.numbering import take_numbers
from journal.outbox import Outbox
from journal.pending_callbacks import PendingCallbacks
from telephony.buffer import SpillingBuffer
from telephony.callevents import EVENT_TYPES, CallEvent, CallStarted, LegRinging

log = structlog.get_logger(__name__)

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


class Intake:
    """Applies call events from the buffer to the journal, one ordered consumer."""

    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        *,
        pbx_id: str,
        recordings_pbx_dir: str = "/var/spool/asterisk/monitor",
        batch_size: int = 5000,
        on_committed: Callable[[Sequence[CallEvent]], Awaitable[None]] | None = None,
        missed_callback_attempts: int = 3,
        callbacks: PendingCallbacks | None = None,
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.pbx_id = pbx_id
        self.rules = EventRules(pbx_id, recordings_pbx_dir.rstrip("/"))
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
        # Told each committed batch's calls, so their ringing phones pop at once.
        self.early: EarlyPops | None = None
        # Originations requested through the service (the web layer registers them).
        self.callbacks = callbacks if callbacks is not None else PendingCallbacks()
        self.rows = Rows(pbx_id, db.is_sqlite, self.callbacks, missed_callback_attempts)

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
        early = self.early
        claimed = frozenset(e.uniqueid for e in batch if type(e) is LegRinging
                            and early.claimed(e.uniqueid)) if early is not None else frozenset()
        for attempt in range(attempts):
            notes: list[Note] = []
            state = Batch(amend=set(amend), claimed=claimed)
            try:
                await self.db.transact(partial(self._transaction, st=state, batch=batch,
                                               notes=notes))
                break
            except (IntegrityError, DBAPIError) as exc:
                # A concurrent writer took the same Linkedid, or a deadlock / dropped
                # connection: the transaction rolled back (the counter with it), try again.
                self.callbacks.give_back(state.taken_callbacks)
                self.retries += 1
                log.warning("intake.retry", attempt=attempt + 1, error=str(exc.orig)[:200])
                await asyncio.sleep(min(2.0, 0.05 * 2 ** attempt) * random.uniform(0.5, 1.0))
            except BaseException:
                self.callbacks.give_back(state.taken_callbacks)
                raise
        else:
            return False
        self.committed_batches += 1
        self.committed_events += len(batch)
        self.last_commit_at = datetime.now(UTC)
        if self.commit_observer is not None:
            self.commit_observer(batch)
        if early is not None:
            early.remember(state)
            if claimed:
                await early.published(claimed)
        self.outbox.publish(notes)
        if self.on_committed is not None:
            await self.on_committed(batch)
        return True

    def _transaction(self, conn: Connection, st: Batch, batch: Sequence[CallEvent],
                     notes: list[Note]) -> None:
        """The whole batch, inside one transaction (run by ``Database.transact``: on SQLite in
        the database's writer thread, in one hop from the event loop)."""
        self._apply_batch(conn, st, batch, notes)
        self.outbox.store(conn, notes)

    def _apply_batch(self, conn: Connection, st: Batch,
                     batch: Sequence[CallEvent], notes: list[Note]) -> None:
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
        self.rows.write_logs(conn, st)

    def _outbound_started(self, conn: Connection, st: Batch, event: CallStarted) -> None:
        """An outbound call: stored only when it belongs to a request (a call-back)."""
        self.rows.lock(conn, st)
        self.rows.load(conn, st, [event])
        if st.calls.get(event.linkedid) is not None:
            return  # replay, reconnect or restart: the call is already in the journal
        req = self.rows.callback_request(conn, st, event)
        if req is None:
            return  # an outbound call nobody asked the journal to follow
        self.rules.new_call(st, event, req)

    # ------------------------------------------------------------------ one run of events
    def _run(self, conn: Connection, st: Batch, events: list[CallEvent],
             notes: list[Note]) -> None:
        """Apply a run of events (no outbound CallStarted among them) and write it."""
        if not events:
            return
        self.rows.lock(conn, st)
        self.rows.load(conn, st, events)
        # New requests of this run, counted exactly as the rules will create them; their numbers
        # come from one counter UPDATE (row-locked until the commit: gap-free, never reused).
        seen: set[str] = set()
        new = 0
        for event in events:
            if type(event) is CallStarted and st.calls.get(event.linkedid) is None \
                    and event.linkedid not in seen:
                seen.add(event.linkedid)
                new += 1
        if new:
            st.next_number = take_numbers(conn, new)
        for event in events:
            self.rules.apply(st, event, notes)
        self.rows.write(conn, st)

