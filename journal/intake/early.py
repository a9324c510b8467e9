"""The screen pop as the phone starts ringing, not after the ringing's own batch is written.

A phone rings some time after its call started (greeting, IVR, queue: seconds on a hotline,
40 ms in the lab's dialplan), and by then the request the pop names is committed, with its
number, caller, scope and history (read as the request was written). Waiting for the ringing's
own batch (the batch before it, then that transaction) was most of a pop's delay. So the intake
remembers, after each commit, the committed request of every call in progress; a
``LegRinging`` of such a call (or one that came while its call's start was being written, at
that commit) is popped at once: its ``call.ringing`` note is stored on its own (one INSERT,
beside the intake's batch on PostgreSQL) and published, and the ringing's batch stores no
second note for that leg (``claimed``). DESIGN §2 holds: the request is committed before its
pop leaves, and the note before it is published.

A call with a transfer seen is not popped early any more: its routing may be changing in a
batch not yet written, so its pops wait for their own commit, as before.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

import structlog

from journal.db import Database
from journal.intake.state import Batch
from journal.notes import Note, RequestScope, call_ringing
from journal.outbox import Outbox
from telephony.callevents import CallEnded, CallEvent, CallTransferred, LegRinging

log = structlog.get_logger(__name__)

STORE_WAIT_S = 5.0
REMEMBERED = 5_000  # calls in progress, and rings, remembered (far above a hotline's load)


@dataclass(frozen=True, slots=True)
class Committed:
    """A call's request as committed."""

    number: int
    caller_number: str
    scope: RequestScope
    history: list[dict[str, Any]]


class EarlyPops:
    """Remembers committed requests of calls in progress; pops their ringing phones at once."""

    def __init__(self, db: Database, outbox: Outbox) -> None:
        self.db = db
        self.outbox = outbox
        self._calls: OrderedDict[str, Committed] = OrderedDict()
        self._held: OrderedDict[str, None] = OrderedDict()  # transferred: no early pops
        self._seen: OrderedDict[str, None] = OrderedDict()  # ringing legs' uniqueids
        self._claimed: OrderedDict[str, None] = OrderedDict()  # of those, popped here
        # Rings of calls whose start is not committed yet: popped when it is.
        self._waiting: OrderedDict[str, list[LegRinging]] = OrderedDict()
        self._storing: dict[str, asyncio.Future[None]] = {}  # by leg uniqueid
        # Pops waiting for the store in flight: stored together next (one INSERT), so a burst
        # of rings costs a round trip or two, not one each.
        self._queued: list[tuple[str, Note]] = []
        self._in_flight = False
        self.popped = 0
        self.failed = 0

    def claimed(self, uniqueid: str) -> bool:
        """Whether this leg's ringing was popped here (its batch then stores no note)."""
        return uniqueid in self._claimed

    async def published(self, uniqueids: Iterable[str]) -> None:
        """Until these legs' pops are published: the ring's batch publishes its own notes
        (an answer, say) only after the pop, as one transaction would have. A store that
        hangs holds the batch for at most ``STORE_WAIT_S``."""
        waits = [f for uid in uniqueids if (f := self._storing.get(uid)) is not None]
        if waits:
            await asyncio.wait(waits, timeout=STORE_WAIT_S)

    # ----------------------------------------------------------- the intake's side
    def remember(self, st: Batch) -> None:
        """After a commit: the committed request of each call the batch saw (the history is
        read when the request is written, so only calls that started in this process)."""
        calls, held = self._calls, self._held
        for linkedid, call in st.calls.items():
            if call is None:
                continue
            req = call.request
            if call.ended or req is None or req.number is None or req.closed \
                    or linkedid in held:
                calls.pop(linkedid, None)
                self._waiting.pop(linkedid, None)
                continue
            known = calls.get(linkedid)
            history = req.history if req.history is not None else \
                known.history if known is not None else None
            if history is None:
                continue
            committed = calls[linkedid] = Committed(req.number, req.caller_number, req.scope,
                                                    history)
            calls.move_to_end(linkedid)
            for ringing in self._waiting.pop(linkedid, ()):
                if ringing.uniqueid not in call.legs:  # else this batch stored its note
                    self._pop(ringing, committed)
        _bound(calls)

    # ----------------------------------------------------------- the pipeline's side
    def seen(self, event: CallEvent) -> None:
        """Every call event as the tracker makes it, before the intake can take it (in the
        AMI read callback: no I/O here)."""
        kind = type(event)
        if kind is LegRinging:
            assert isinstance(event, LegRinging)
            if event.uniqueid in self._seen:
                return  # seen again after a reconnect
            self._seen[event.uniqueid] = None
            _bound(self._seen)
            committed = self._calls.get(event.linkedid)
            if committed is not None:
                self._pop(event, committed)
            elif event.linkedid not in self._held:
                # Its start is still being written (or it is no hotline call): at that commit.
                self._waiting.setdefault(event.linkedid, []).append(event)
                _bound(self._waiting)
        elif kind is CallTransferred:
            self._held[event.linkedid] = None
            _bound(self._held)
            self._calls.pop(event.linkedid, None)
            self._waiting.pop(event.linkedid, None)
        elif kind is CallEnded:
            self._calls.pop(event.linkedid, None)
            self._waiting.pop(event.linkedid, None)

    def _pop(self, event: LegRinging, committed: Committed) -> Note:
        note = call_ringing(committed.number, event.at, committed.scope,
                            caller_number=committed.caller_number, extension=event.extension,
                            queue=event.queue)
        note.data["history"] = committed.history
        self._claimed[event.uniqueid] = None
        _bound(self._claimed)
        self._storing[event.uniqueid] = asyncio.get_running_loop().create_future()
        self._queued.append((event.uniqueid, note))
        if not self._in_flight:
            self._store_queued()
        return note

    def _store_queued(self) -> None:
        queued, self._queued = self._queued, []
        self._in_flight = True
        try:
            self.db.write_soon(partial(Outbox.store, notes=[note for _uid, note in queued]),
                               partial(self._stored, queued))
        except Exception as exc:  # the writer could not take it: the pops go out unstored
            self._stored(queued, exc)

    def _stored(self, stored: list[tuple[str, Note]], error: BaseException | None) -> None:
        self._in_flight = False
        notes = [note for _uid, note in stored]
        if error is not None:
            # The pages still get their pops (without an id to resume from); the rings
            # themselves are in the calls' logs and legs, written by their batches.
            self.failed += len(notes)
            log.error("pop.early_not_stored", pops=len(notes), error=str(error)[:200])
        self.popped += len(notes)
        self.outbox.publish(notes)
        for uniqueid, _note in stored:
            storing = self._storing.pop(uniqueid, None)
            if storing is not None:
                storing.set_result(None)
        if self._queued:
            self._store_queued()

    async def close(self) -> None:
        """Let the pops in flight be stored and published (service stop)."""
        if self._storing:
            await asyncio.wait(list(self._storing.values()), timeout=STORE_WAIT_S)


def _bound(items: OrderedDict[str, Any]) -> None:
    while len(items) > REMEMBERED:
        items.popitem(last=False)
