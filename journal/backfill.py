"""CEL backfill: calls the live AMI stream never showed (the service was down, the link cut for
the whole call) are rebuilt from the PBX's CEL rows and become requests.

Each run reads the Linkedids with a CEL row since the stored high-water mark (less an overlap:
rows of one call can commit late), reads every row of those calls, groups them into calls
(:func:`telephony.cel.group_calls`) and feeds each through a fresh :class:`CallTracker` — the
same rules as a live call. For every ended inbound 8-800 call:

- not in the journal: its call events go through :class:`Intake` (the only numbering path,
  idempotent by (PBX, Linkedid), so concurrent instances and the live path never double it),
  marked ``source: cel``, with its recording found by the injected ``find_recording``;
- in the journal, not ended (the service went blind mid-call): the missing facts are filled
  (answers, transfers, the end); what the journal has is left as it is;
- in the journal and ended: nothing.

A call still in progress in CEL is left for a later run: the mark stays before its start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from journal.celsource import CelSource
from journal.intake import Intake
from journal.models import Call, CallLeg, CelMark, Transfer
from telephony.callevents import (
    CallAnswered,
    CallAnsweredElsewhere,
    CallEnded,
    CallEvent,
    CallStarted,
    CallTransferred,
    LegEnded,
    QueueJoined,
    RecordingStarted,
)
from telephony.cel import CelRow, group_calls, to_events
from telephony.routing import Routing
from telephony.tracker import CallTracker

log = structlog.get_logger(__name__)

# linkedid, call start → the recording's path as Asterisk named it, or None
RecordingFinder = Callable[[str, datetime], Awaitable[str | None]]
OVERLAP = timedelta(minutes=15)
# A call that ended this recently is left to the live path (its events may still be on the
# way to the journal): the request then keeps source "ami".
SETTLE = timedelta(seconds=60)
# How the live path ends a call it did not see end: what happened meanwhile may be in CEL.
BLIND_ENDS = frozenset({"reconciled", "pbx_restart"})
APPLY_CHUNK = 200  # calls per intake batch


@dataclass(frozen=True, slots=True)
class RebuiltCall:
    """An inbound 8-800 call as CEL tells it."""

    linkedid: str
    started_at: datetime
    caller: str
    line: str
    ended: bool
    answered: bool
    events: tuple[CallEvent, ...]
    ended_at: datetime | None = None


@dataclass(slots=True)
class BackfillReport:
    rows: int = 0
    calls: int = 0
    created: list[str] = field(default_factory=list)
    filled: list[str] = field(default_factory=list)
    known: int = 0
    in_progress: int = 0
    high_water: datetime | None = None


def rebuild(rows: Sequence[CelRow], routing: Routing) -> list[RebuiltCall]:
    """Every inbound 8-800 call in these rows, through the live tracker's rules."""
    found: list[RebuiltCall] = []
    for group in group_calls(rows):
        tracker = CallTracker(routing)
        events: list[CallEvent] = []
        for event, at in to_events(group):
            events.extend(tracker.handle(event, at))
        for started in events:
            if type(started) is not CallStarted or started.direction != "inbound":
                continue
            own = tuple(e for e in events if e.linkedid == started.linkedid)
            ends = [e.at for e in own if type(e) is CallEnded]
            answered = any(type(e) in (CallAnswered, CallAnsweredElsewhere) for e in own)
            found.append(RebuiltCall(started.linkedid, started.at, started.caller_number,
                                     started.line, bool(ends), answered, own,
                                     ends[-1] if ends else None))
    return found


class CelBackfill:
    def __init__(self, source: CelSource, intake: Intake, routing: Routing, *,
                 lookback: timedelta = timedelta(hours=24), overlap: timedelta = OVERLAP,
                 settle: timedelta = SETTLE,
                 find_recording: RecordingFinder | None = None) -> None:
        self.source = source
        self.intake = intake
        self.db = intake.db
        self.pbx_id = intake.pbx_id
        self.routing = routing
        self.lookback = lookback
        self.overlap = overlap
        self.settle = settle
        self.find_recording = find_recording
        self.runs = 0
        self.recovered = 0
        self.last_run_at: datetime | None = None
        self.last_error: str | None = None
        self._lock = asyncio.Lock()

    async def mark(self) -> datetime | None:
        async with self.db.session() as session:
            value = await session.scalar(
                select(CelMark.high_water).where(CelMark.pbx_id == self.pbx_id))
        return value

    async def _set_mark(self, value: datetime, now: datetime) -> None:
        try:
            async with self.db.sessions.begin() as session:
                done = await session.execute(
                    update(CelMark).where(CelMark.pbx_id == self.pbx_id)
                    .values(high_water=value, updated_at=now))
                if not done.rowcount:  # type: ignore[attr-defined]
                    session.add(CelMark(pbx_id=self.pbx_id, high_water=value, updated_at=now))
        except IntegrityError:
            pass  # another instance stored its mark first: the next run moves it on

    async def run(self, *, since: datetime | None = None,
                  now: datetime | None = None) -> BackfillReport:
        """One pass (runs of one process never overlap; other instances may)."""
        async with self._lock:
            try:
                report = await self._run(since, now or datetime.now(UTC))
            except Exception as exc:
                self.last_error = str(exc)[:300]
                raise
            self.last_error = None
            return report

    async def _run(self, since: datetime | None, now: datetime) -> BackfillReport:
        floor = now - self.lookback
        stored = await self.mark()
        if since is None:
            since = max(floor, stored - self.overlap) if stored is not None else floor
        linkedids, newest = await self.source.linkedids_between(since)
        rows = await self.source.rows_of(linkedids) if linkedids else []
        calls = rebuild(rows, self.routing)
        report = BackfillReport(rows=len(rows), calls=len(calls))
        settled = now - self.settle
        done = [c for c in calls if c.ended_at is not None and c.ended_at <= settled]
        waiting = [c for c in calls if c.ended_at is None or c.ended_at > settled]
        report.in_progress = len(waiting)
        for start in range(0, len(done), APPLY_CHUNK):
            await self._apply(done[start:start + APPLY_CHUNK], report)
        # The newest row read; a run that read only the overlap keeps the stored mark (it
        # must not creep back by the overlap at every quiet run).
        mark = max((t for t in (newest, stored) if t is not None), default=since)
        for call in waiting:
            if call.started_at >= floor:
                mark = min(mark, call.started_at)
        report.high_water = mark
        await self._set_mark(mark, now)
        self.runs += 1
        self.recovered += len(report.created)
        self.last_run_at = now
        if report.created or report.filled:
            log.info("cel.backfill", created=len(report.created), filled=len(report.filled),
                     calls=report.calls, rows=report.rows)
        return report

    async def _apply(self, calls: Sequence[RebuiltCall], report: BackfillReport) -> None:
        stored = await self._stored([c.linkedid for c in calls])
        batch: list[CallEvent] = []
        amend: list[str] = []
        for call in calls:
            state = stored.get(call.linkedid)
            if state is None:
                batch.extend(await self._new(call))
                report.created.append(call.linkedid)
                continue
            fill = state.missing(call.events)
            if state.ended:
                # Closed by reconciliation after a link cut: answers and transfers made while
                # the service was blind are still taken; its end is the journal's.
                fill = [e for e in fill if not isinstance(e, LegEnded | CallEnded)]
                if state.end_reason in BLIND_ENDS and state.lacks_facts(fill):
                    amend.append(call.linkedid)
                    batch.extend(fill)
                    report.filled.append(call.linkedid)
                else:
                    report.known += 1
            elif fill:
                batch.extend(fill)
                report.filled.append(call.linkedid)
        if batch:
            await self.intake.apply(batch, amend=amend)

    async def _new(self, call: RebuiltCall) -> list[CallEvent]:
        events: list[CallEvent] = []
        path = None
        if self.find_recording is not None:
            try:
                path = await self.find_recording(call.linkedid, call.started_at)
            except Exception:
                log.exception("cel.recording_lookup_failed", linkedid=call.linkedid)
        for event in call.events:
            if type(event) is CallStarted:
                events.append(replace(event, source="cel"))
                if path is not None:
                    events.append(RecordingStarted(call.linkedid, event.uniqueid, path,
                                                   event.at))
            else:
                events.append(event)
        return events

    async def _stored(self, linkedids: list[str]) -> dict[str, _Stored]:
        found: dict[str, _Stored] = {}
        async with self.db.session() as session:
            rows = await session.execute(
                select(Call.id, Call.linkedid, Call.ended_at, Call.answered_at, Call.queued_at,
                       Call.end_reason)
                .where(Call.pbx_id == self.pbx_id, Call.linkedid.in_(linkedids)))
            by_id = {}
            for call_id, linkedid, ended, answered, queued, reason in rows:
                state = _Stored(ended is not None, answered is not None, queued is not None,
                                reason)
                found[linkedid] = by_id[call_id] = state
            wanted = [i for i, s in by_id.items() if not s.ended or s.end_reason in BLIND_ENDS]
            if wanted:
                legs = await session.execute(
                    select(CallLeg.call_id, CallLeg.uniqueid)
                    .where(CallLeg.call_id.in_(wanted), CallLeg.answered_at.is_not(None)))
                for call_id, uniqueid in legs:
                    by_id[call_id].answered_legs.add(uniqueid)
                transfers = await session.execute(
                    select(Transfer.call_id, Transfer.kind, Transfer.from_extension, Transfer.to)
                    .where(Transfer.call_id.in_(wanted)))
                for call_id, kind, from_ext, to in transfers:
                    by_id[call_id].transfers.add((kind, from_ext, to))
        return found


@dataclass(slots=True)
class _Stored:
    ended: bool
    answered: bool
    queued: bool
    end_reason: str | None = None
    answered_legs: set[str] = field(default_factory=set)
    transfers: set[tuple[str, str, str]] = field(default_factory=set)

    def lacks_facts(self, fill: Sequence[CallEvent]) -> bool:
        """Anything here the journal does not have yet (an answer or a transfer)?"""
        return any(not isinstance(e, RecordingStarted | QueueJoined) for e in fill)

    def missing(self, events: Sequence[CallEvent]) -> list[CallEvent]:
        """The facts of a call the journal has open that it lacks (duplicates the intake
        drops anyway — transfers, recordings — pass through)."""
        return [event for event in events if self._lacks(event)]

    def _lacks(self, event: CallEvent) -> bool:
        if isinstance(event, QueueJoined):
            return not self.queued
        if isinstance(event, CallAnswered):
            return event.uniqueid not in self.answered_legs
        if isinstance(event, CallAnsweredElsewhere):
            return not self.answered
        if isinstance(event, CallTransferred):
            return (event.kind, event.from_extension, event.to) not in self.transfers
        return isinstance(event, RecordingStarted | LegEnded | CallEnded)
