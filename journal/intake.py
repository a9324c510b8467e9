"""Intake: call events → requests, calls, legs, transfers, recordings, notifications.

This is where an inbound 8-800 call gets its request number. Call events are applied in
batches, one transaction per batch (group commit, never reordered). The request number comes
from the ``counters`` row, updated in the same transaction as the insert, so numbers are
gap-free and never reused; the (pbx, Linkedid) unique key makes replay, reconnect and restart
idempotent, and a concurrent writer that lost the race simply retries the batch.
Notifications are published only after the commit: a screen pop never names an uncommitted
request.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

import structlog
from sqlalchemy import insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from journal.bus import Bus, Notification
from journal.db import REQUEST_COUNTER, Database
from journal.models import Call, CallLeg, CallLogEntry, Counter, Recording, Request, Transfer
from journal.models import Notification as StoredNotification
from journal.phones import normalize_phone
from telephony.buffer import SpillingBuffer
from telephony.callevents import (
    CallAnswered,
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

HISTORY_LIMIT = 10


@dataclass(slots=True)
class KnownCall:
    """What intake remembers of a stored call while it is in progress."""

    call_id: int
    request_id: int | None
    request_number: int | None
    caller_normalized: str
    ended: bool = False
    caller_number: str = ""


class Intake:
    """Applies call events from the buffer to the journal, one ordered consumer."""

    def __init__(
        self,
        db: Database,
        bus: Bus,
        *,
        pbx_id: str,
        recordings_pbx_dir: str = "/var/spool/asterisk/monitor",
        batch_size: int = 500,
        on_committed: Callable[[Sequence[CallEvent]], Awaitable[None]] | None = None,
    ) -> None:
        self.db = db
        self.bus = bus
        self.pbx_id = pbx_id
        self.recordings_pbx_dir = recordings_pbx_dir.rstrip("/")
        self.batch_size = batch_size
        self.on_committed = on_committed
        self._known: dict[str, KnownCall | None] = {}
        self.committed_batches = 0
        self.committed_events = 0
        self.retries = 0
        self.dropped_events = 0
        self.busy = False
        # Call log rows of the batch in progress: inserted in one statement at its end (they
        # are never read back by intake, and one INSERT per event would dominate the batch).
        self._logs: list[dict[str, Any]] = []
        self.last_commit_at: datetime | None = None
        # Optional probe (benchmarks): called with each batch right after its commit.
        self.commit_observer: Callable[[Sequence[CallEvent]], None] | None = None
        # Originations requested through the service: dialled number → request id.
        self.pending_callbacks: dict[str, int] = {}

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

    async def open_calls(self) -> list[tuple[str, str, list[str]]]:
        """(linkedid, direction, answered_by) of stored calls not yet ended — for a restart."""
        async with self.db.session() as session:
            rows = await session.execute(
                select(Call.linkedid, Call.direction, Call.operator)
                .where(Call.pbx_id == self.pbx_id, Call.ended_at.is_(None))
            )
            return [(lid, direction, [op] if op else []) for lid, direction, op in rows]

    async def apply(self, batch: Sequence[CallEvent]) -> None:
        """Apply one batch in one transaction; retry on a lost race or a dropped connection.

        A batch the database keeps refusing is split and applied event by event (order kept),
        so one poisoned event costs only itself, never the calls around it.
        """
        if await self._commit(batch):
            return
        if len(batch) == 1:
            self.dropped_events += 1
            log.error("intake.event_dropped", event=type(batch[0]).__name__,
                      linkedid=batch[0].linkedid)
            return
        log.error("intake.batch_split", size=len(batch))
        for event in batch:
            await self.apply([event])

    async def _commit(self, batch: Sequence[CallEvent], attempts: int = 5) -> bool:
        for attempt in range(attempts):
            notes: list[Notification] = []
            known_before = dict(self._known)
            self._logs = []
            try:
                async with self.db.sessions.begin() as session:
                    for event in batch:
                        await self._apply_one(session, event, notes)
                    if self._logs:
                        await session.execute(insert(CallLogEntry), self._logs)
                    await self._store_notifications(session, notes)
                break
            except (IntegrityError, DBAPIError) as exc:
                # A concurrent writer took the same Linkedid, or a deadlock / dropped
                # connection: the transaction rolled back (the counter with it), try again.
                self._known = known_before
                self.retries += 1
                log.warning("intake.retry", attempt=attempt + 1, error=str(exc.orig)[:200])
                await asyncio.sleep(min(2.0, 0.05 * 2 ** attempt) * random.uniform(0.5, 1.0))
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

    # ------------------------------------------------------------------ events
    async def _apply_one(self, session: AsyncSession, event: CallEvent,
                         notes: list[Notification]) -> None:
        if isinstance(event, CallStarted):
            await self._call_started(session, event, notes)
            return
        known = await self._lookup(session, event.linkedid)
        if known is None or known.ended:
            if isinstance(event, CallEnded):
                self._known.pop(event.linkedid, None)
            return
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            await handler(self, session, known, event, notes)

    async def _lookup(self, session: AsyncSession, linkedid: str) -> KnownCall | None:
        if linkedid in self._known:
            return self._known[linkedid]
        row = (await session.execute(
            select(Call.id, Call.request_id, Request.number, Request.caller_normalized,
                   Call.ended_at, Request.caller_number)
            .outerjoin(Request, Request.id == Call.request_id)
            .where(Call.pbx_id == self.pbx_id, Call.linkedid == linkedid)
        )).first()
        known = KnownCall(row[0], row[1], row[2], row[3] or "", row[4] is not None,
                          row[5] or "") if row else None
        self._known[linkedid] = known
        return known

    async def _call_started(self, session: AsyncSession, event: CallStarted,
                            notes: list[Notification]) -> None:
        if await self._lookup(session, event.linkedid) is not None:
            return  # replay, reconnect or restart: the call is already in the journal
        if event.direction == "inbound":
            request = await self._new_request(session, event)
            notes.append(self._note("request.created", request.number, event.at,
                                    caller_number=request.caller_number, line=request.line,
                                    status=request.status, level=request.level, smo=None))
        else:
            request = await self._callback_request(session, event)
            if request is None:
                return  # an outbound call nobody asked the journal to follow
        call = Call(request_id=request.id, pbx_id=self.pbx_id, linkedid=event.linkedid,
                    direction=event.direction, caller_number=event.caller_number,
                    line=event.line, started_at=event.at)
        session.add(call)
        await session.flush()
        session.add(CallLeg(call_id=call.id, uniqueid=event.uniqueid, channel=event.channel,
                            extension=event.caller_number if event.direction == "outbound"
                            else None))
        self._log(session, call.id, event.at, "started", direction=event.direction,
                  caller=event.caller_number, line=event.line)
        self._known[event.linkedid] = KnownCall(call.id, request.id, request.number,
                                                request.caller_normalized,
                                                caller_number=request.caller_number)

    async def _new_request(self, session: AsyncSession, event: CallStarted) -> Request:
        number = await next_request_number(session)
        request = Request(
            number=number, pbx_id=self.pbx_id, linkedid=event.linkedid, created_at=event.at,
            line=event.line, caller_number=event.caller_number,
            caller_normalized=normalize_phone(event.caller_number), status="new", level="1",
            registered_by="auto", version=1, updated_at=event.at,
        )
        session.add(request)
        await session.flush()
        return request

    async def _callback_request(self, session: AsyncSession,
                                event: CallStarted) -> Request | None:
        """The open request a call-back belongs to: originated through the service, or dialling
        the number of an open request awaiting a deferred answer."""
        number = normalize_phone(event.line)
        request_id = self.pending_callbacks.pop(number, None)
        if request_id is not None:
            return await session.get(Request, request_id)
        return await session.scalar(
            select(Request)
            .where(Request.status == "deferred", Request.closed_at.is_(None),
                   (Request.caller_normalized == number)
                   | (Request.contact_phone == number))
            .order_by(Request.number.desc()).limit(1)
        )

    async def _queue_joined(self, session: AsyncSession, known: KnownCall, event: QueueJoined,
                            notes: list[Notification]) -> None:
        await session.execute(
            update(Call).where(Call.id == known.call_id, Call.queued_at.is_(None))
            .values(queued_at=event.at, queue=event.queue)
        )
        self._log(session, known.call_id, event.at, "queued", queue=event.queue)

    async def _ringing(self, session: AsyncSession, known: KnownCall, event: LegRinging,
                       notes: list[Notification]) -> None:
        leg_id = await session.scalar(
            select(CallLeg.id).where(CallLeg.call_id == known.call_id,
                                     CallLeg.uniqueid == event.uniqueid))
        if leg_id is not None:
            return  # the same ringing seen again after a reconnect
        session.add(CallLeg(call_id=known.call_id, uniqueid=event.uniqueid,
                            channel=event.channel, extension=event.extension,
                            queue=event.queue or None, rang_at=event.at))
        self._log(session, known.call_id, event.at, "ringing", extension=event.extension,
                  queue=event.queue)
        if known.request_number is not None:
            history = await self._history(session, known)
            notes.append(self._note("call.ringing", known.request_number, event.at,
                                    caller_number=known.caller_number, extension=event.extension,
                                    queue=event.queue, history=history))

    async def _history(self, session: AsyncSession, known: KnownCall) -> list[dict[str, Any]]:
        if not known.caller_normalized:
            return []
        rows = await session.execute(
            select(Request.number, Request.created_at, Request.status, Request.topic)
            .where(Request.caller_normalized == known.caller_normalized,
                   Request.number != known.request_number)
            # Newest by created_at: walks the (caller_normalized, created_at) index and stops
            # after HISTORY_LIMIT rows; ordering by number made a frequent caller's every
            # screen pop sort all of their requests.
            .order_by(Request.created_at.desc()).limit(HISTORY_LIMIT)
        )
        found = sorted(rows, key=lambda row: row[0], reverse=True)
        return [{"number": n, "created_at": _iso(c), "status": s, "topic": t}
                for n, c, s, t in found]

    async def _ring_no_answer(self, session: AsyncSession, known: KnownCall,
                              event: LegRingNoAnswer, notes: list[Notification]) -> None:
        self._log(session, known.call_id, event.at, "ring_no_answer", extension=event.extension)

    async def _answered(self, session: AsyncSession, known: KnownCall, event: CallAnswered,
                        notes: list[Notification]) -> None:
        answered_leg = await session.execute(
            update(CallLeg).where(CallLeg.call_id == known.call_id,
                                  CallLeg.uniqueid == event.uniqueid)
            .values(answered_at=event.at)
        )
        if not answered_leg.rowcount:
            session.add(CallLeg(call_id=known.call_id, uniqueid=event.uniqueid,
                                extension=event.extension, queue=event.queue or None,
                                answered_at=event.at))
        await session.execute(
            update(Call).where(Call.id == known.call_id, Call.answered_at.is_(None))
            .values(answered_at=event.at, operator=event.extension)
        )
        if known.request_id is not None:
            await session.execute(
                update(Request).where(Request.id == known.request_id, Request.operator.is_(None))
                .values(operator=event.extension)
            )
            await session.execute(
                update(Request).where(Request.id == known.request_id, Request.status == "new")
                .values(status="in_progress", assigned_to=event.extension,
                        version=Request.version + 1, updated_at=event.at)
            )
        self._log(session, known.call_id, event.at, "answered", extension=event.extension,
                  queue=event.queue)
        if known.request_number is not None:
            notes.append(self._note("call.answered", known.request_number, event.at,
                                    extension=event.extension))

    async def _held(self, session: AsyncSession, known: KnownCall, event: CallHeld,
                    notes: list[Notification]) -> None:
        self._log(session, known.call_id, event.at, "held", extension=event.extension)
        if known.request_number is not None:
            notes.append(self._note("call.held", known.request_number, event.at,
                                    extension=event.extension))

    async def _unheld(self, session: AsyncSession, known: KnownCall, event: CallUnheld,
                      notes: list[Notification]) -> None:
        self._log(session, known.call_id, event.at, "unheld", extension=event.extension)
        if known.request_number is not None:
            notes.append(self._note("call.unheld", known.request_number, event.at,
                                    extension=event.extension))

    async def _transferred(self, session: AsyncSession, known: KnownCall,
                           event: CallTransferred, notes: list[Notification]) -> None:
        seen = await session.scalar(
            select(Transfer.id).where(Transfer.call_id == known.call_id,
                                      Transfer.kind == event.kind,
                                      Transfer.from_extension == event.from_extension,
                                      Transfer.to == event.to).limit(1))
        if seen is not None:
            return  # the same transfer from a second writer or a replay
        session.add(Transfer(call_id=known.call_id, kind=event.kind,
                             from_extension=event.from_extension, to=event.to,
                             target=event.target, smo=event.smo, at=event.at))
        self._log(session, known.call_id, event.at, "transferred", kind=event.kind,
                  from_extension=event.from_extension, to=event.to, target=event.target,
                  smo=event.smo)
        if known.request_number is None:
            return
        notes.append(self._note("call.transferred", known.request_number, event.at,
                                kind=event.kind, to=event.to, target=event.target,
                                smo=event.smo, from_extension=event.from_extension))
        if event.target in ("l2", "smo") and known.request_id is not None:
            level = "2" if event.target == "l2" else "smo"
            values: dict[str, Any] = {"level": level, "status": "transferred",
                                      "version": Request.version + 1, "updated_at": event.at}
            if event.target == "smo":
                values["smo"] = event.smo
            await session.execute(
                update(Request)
                .where(Request.id == known.request_id, Request.closed_at.is_(None))
                .values(**values)
            )
            notes.append(self._note("request.routed", known.request_number, event.at,
                                    level=level, smo=event.smo if level == "smo" else None,
                                    via="telephone_transfer"))

    async def _recording(self, session: AsyncSession, known: KnownCall,
                         event: RecordingStarted, notes: list[Notification]) -> None:
        exists = await session.scalar(
            select(Recording.id).where(Recording.pbx_id == self.pbx_id,
                                       Recording.pbx_path == event.pbx_path))
        if exists is not None:
            return
        session.add(Recording(
            request_id=known.request_id, call_id=known.call_id, pbx_id=self.pbx_id,
            leg_uniqueid=event.uniqueid, pbx_path=event.pbx_path,
            relative_path=self.relative_recording_path(event.pbx_path), status="pending",
            started_at=event.at,
        ))
        self._log(session, known.call_id, event.at, "recording", path=event.pbx_path)

    async def _leg_ended(self, session: AsyncSession, known: KnownCall, event: LegEnded,
                         notes: list[Notification]) -> None:
        await session.execute(
            update(CallLeg).where(CallLeg.call_id == known.call_id,
                                  CallLeg.uniqueid == event.uniqueid, CallLeg.ended_at.is_(None))
            .values(ended_at=event.at)
        )

    async def _ended(self, session: AsyncSession, known: KnownCall, event: CallEnded,
                     notes: list[Notification]) -> None:
        result = await session.execute(
            update(Call).where(Call.id == known.call_id, Call.ended_at.is_(None))
            .values(ended_at=event.at, outcome=event.outcome, end_reason=event.reason)
        )
        self._known.pop(event.linkedid, None)
        if not result.rowcount:
            return
        await session.execute(
            update(CallLeg).where(CallLeg.call_id == known.call_id, CallLeg.ended_at.is_(None))
            .values(ended_at=event.at)
        )
        if known.request_id is not None:
            await session.execute(
                update(Request).where(Request.id == known.request_id, Request.outcome.is_(None))
                .values(outcome=event.outcome)
            )
        self._log(session, known.call_id, event.at, "ended", outcome=event.outcome,
                  reason=event.reason)
        if known.request_number is not None:
            notes.append(self._note("call.ended", known.request_number, event.at,
                                    outcome=event.outcome, reason=event.reason))

    # ------------------------------------------------------------------ helpers
    def relative_recording_path(self, pbx_path: str) -> str:
        """The recording's path below RECORDINGS_DIR (as Asterisk named it below its own dir)."""
        path = PurePosixPath(pbx_path)
        base = PurePosixPath(self.recordings_pbx_dir)
        try:
            return str(path.relative_to(base))
        except ValueError:
            return path.name

    def _log(self, session: AsyncSession, call_id: int, at: datetime, entry_type: str,
             **data: Any) -> None:
        self._logs.append({"call_id": call_id, "at": at, "type": entry_type,
                           "data": {k: v for k, v in data.items() if v not in (None, "")}})

    @staticmethod
    def _note(note_type: str, request_number: int | None, at: datetime,
              **data: Any) -> Notification:
        return {"type": note_type, "at": _iso(at), "request_number": request_number, **data}

    @staticmethod
    async def _store_notifications(session: AsyncSession, notes: list[Notification]) -> None:
        """Keep notifications so a reconnecting page can ask for what it missed.

        One multi-row INSERT … RETURNING for the whole batch (not one per notification); the
        ids come back in parameter order.
        """
        if not notes:
            return
        rows = [{"at": datetime.fromisoformat(n["at"]), "type": n["type"],
                 "request_number": n.get("request_number"), "payload": n} for n in notes]
        ids = await session.scalars(
            insert(StoredNotification).returning(StoredNotification.id,
                                                 sort_by_parameter_order=True), rows)
        for note, row_id in zip(notes, ids, strict=True):
            note["id"] = row_id


async def next_request_number(session: AsyncSession) -> int:
    """Take the next request number inside the caller's transaction (row-locked, gap-free)."""
    value = await session.scalar(
        update(Counter).where(Counter.name == REQUEST_COUNTER)
        .values(value=Counter.value + 1).returning(Counter.value)
    )
    if value is None:
        raise RuntimeError("the request counter row is missing; run create_schema")
    return int(value)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


_HANDLERS: dict[type, Callable[..., Awaitable[None]]] = {
    QueueJoined: Intake._queue_joined,
    LegRinging: Intake._ringing,
    LegRingNoAnswer: Intake._ring_no_answer,
    CallAnswered: Intake._answered,
    CallHeld: Intake._held,
    CallUnheld: Intake._unheld,
    CallTransferred: Intake._transferred,
    RecordingStarted: Intake._recording,
    LegEnded: Intake._leg_ended,
    CallEnded: Intake._ended,
}
