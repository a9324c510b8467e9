"""The event rules: what each call event does to the batch's requests, calls and legs, and
which notifications it produces. No I/O here: journal/intake/rows.py reads the rows the events
name before the rules run, and writes what they decided after."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from journal.callback_attempts import MISSED_OUTCOME, result_of_call
from journal.intake.state import Batch, BatchCall, BatchRequest, Pop
from journal.notes import (
    Note,
    RequestScope,
    call_answered,
    call_ended,
    call_held,
    call_ringing,
    call_transferred,
    call_unheld,
    request_created,
    request_routed,
)
from journal.phones import normalize_phone
from journal.routing import route_of_transfer
from telephony.callevents import (
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


@dataclass(frozen=True, slots=True)
class EventRules:
    """The rules, for one PBX (its id and where it writes recordings)."""

    pbx_id: str
    recordings_pbx_dir: str = "/var/spool/asterisk/monitor"

    def apply(self, st: Batch, event: CallEvent, notes: list[Note]) -> None:
        kind = type(event)
        if kind is CallStarted:
            self._call_started(st, event, notes)  # type: ignore[arg-type]
            return
        call = st.calls.get(event.linkedid)
        if call is None or (call.ended and event.linkedid not in st.amend):
            return
        handler = _RULES.get(kind)
        if handler is not None:
            handler(self, st, call, event, notes)

    # ------------------------------------------------------------------ events
    def _call_started(self, st: Batch, event: CallStarted, notes: list[Note]) -> None:
        if st.calls.get(event.linkedid) is not None:
            return  # replay, reconnect or restart: the call is already in the journal
        number = st.next_number
        st.next_number += 1
        st.new_numbers.add(number)
        st.last_new_number = number
        caller_normalized = normalize_phone(event.caller_number)
        req = BatchRequest(None, number, caller_normalized, event.caller_number, row={
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
        notes.append(request_created(number, event.at, caller_number=event.caller_number,
                                     line=event.line))
        self.new_call(st, event, req)

    def new_call(self, st: Batch, event: CallStarted, req: BatchRequest) -> None:
        call = BatchCall(None, event.linkedid, req, row={
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
        st.add_leg(call, event.uniqueid, channel=event.channel,
                   extension=event.caller_number if event.direction == "outbound" else None)
        st.log(call, event.at, "started", direction=event.direction,
               caller=event.caller_number, line=event.line,
               source=event.source if event.source != "ami" else None)

    def _queue_joined(self, st: Batch, call: BatchCall, event: QueueJoined,
                      notes: list[Note]) -> None:
        if not call.queued:
            call.queued = True
            st.touch_call(call, queued_at=event.at, queue=event.queue)
        st.log(call, event.at, "queued", queue=event.queue)

    def _ringing(self, st: Batch, call: BatchCall, event: LegRinging,
                 notes: list[Note]) -> None:
        if event.uniqueid in call.legs:
            return  # the same ringing seen again after a reconnect
        st.add_leg(call, event.uniqueid, channel=event.channel,
                   extension=event.extension, queue=event.queue or None, rang_at=event.at)
        st.log(call, event.at, "ringing", extension=event.extension, queue=event.queue)
        req = call.request
        if req is not None and req.number is not None and event.uniqueid not in st.claimed:
            note = call_ringing(req.number, event.at, req.scope,
                                caller_number=req.caller_number, extension=event.extension,
                                queue=event.queue)
            notes.append(note)
            if req.caller_normalized:
                # The history is read when this run is written; what it must not show yet
                # (requests of later calls in the batch) and the statuses as they are now
                # are noted here.
                st.pops.append(Pop(note, req, st.last_new_number,
                                   {r.number: r.status for r in st.by_caller[req.caller_normalized]
                                    if r.number is not None}))

    def _ring_no_answer(self, st: Batch, call: BatchCall, event: LegRingNoAnswer,
                        notes: list[Note]) -> None:
        st.log(call, event.at, "ring_no_answer", extension=event.extension)

    def _answered(self, st: Batch, call: BatchCall, event: CallAnswered,
                  notes: list[Note]) -> None:
        leg = call.legs.get(event.uniqueid)
        if leg is not None:
            st.touch_leg(call, leg, answered_at=event.at)
        else:
            st.add_leg(call, event.uniqueid, extension=event.extension,
                       queue=event.queue or None, answered_at=event.at)
        if not call.answered:
            call.answered = True
            st.touch_call(call, answered_at=event.at, operator=event.extension,
                          **self._amended_outcome(st, call))
        req = call.request
        if req is not None:
            if req.operator is None:
                req.operator = event.extension
                st.touch_req(req, operator=event.extension)
            if req.status == "new":
                req.status = "in_progress"
                st.touch_req(req, status="in_progress", assigned_to=event.extension,
                             updated_at=event.at)
                req.bump_version()
        st.log(call, event.at, "answered", extension=event.extension, queue=event.queue)
        req = call.request
        if req is not None and req.number is not None:
            notes.append(call_answered(req.number, event.at, req.scope,
                                    extension=event.extension))

    def _answered_elsewhere(self, st: Batch, call: BatchCall, event: CallAnsweredElsewhere,
                            notes: list[Note]) -> None:
        """Answered by an outside number (follow-me, forwarding): no fund operator."""
        if not call.answered:
            call.answered = True
            st.touch_call(call, answered_at=event.at, answered_by_external=event.number,
                          **self._amended_outcome(st, call))
        st.log(call, event.at, "answered_elsewhere", number=event.number)
        req = call.request
        if req is not None and req.number is not None:
            notes.append(call_answered(req.number, event.at, req.scope,
                                    extension=None, answered_by_external=event.number))

    def _held(self, st: Batch, call: BatchCall, event: CallHeld,
              notes: list[Note]) -> None:
        st.log(call, event.at, "held", extension=event.extension)
        req = call.request
        if req is not None and req.number is not None:
            notes.append(call_held(req.number, event.at, req.scope,
                                    extension=event.extension))

    def _unheld(self, st: Batch, call: BatchCall, event: CallUnheld,
                notes: list[Note]) -> None:
        st.log(call, event.at, "unheld", extension=event.extension)
        req = call.request
        if req is not None and req.number is not None:
            notes.append(call_unheld(req.number, event.at, req.scope,
                                    extension=event.extension))

    def _transferred(self, st: Batch, call: BatchCall, event: CallTransferred,
                     notes: list[Note]) -> None:
        key = (event.kind, event.from_extension, event.to)
        assert call.transfers is not None  # loaded by Rows.load
        if key in call.transfers:
            return  # the same transfer from a second writer or a replay
        call.transfers.add(key)
        st.transfers.append((call, {
            "kind": event.kind, "from_extension": event.from_extension, "to": event.to,
            "target": event.target, "smo": event.smo, "at": event.at}))
        st.log(call, event.at, "transferred", kind=event.kind,
               from_extension=event.from_extension, to=event.to, target=event.target,
               smo=event.smo)
        req = call.request
        if req is None or req.number is None:
            return
        notes.append(call_transferred(req.number, event.at, req.scope,
                                kind=event.kind, to=event.to, target=event.target,
                                smo=event.smo, from_extension=event.from_extension))
        route = route_of_transfer(event.target, event.smo)
        if route is not None:
            if not req.closed:
                req.status = "transferred"
                req.scope = RequestScope(route.level, route.smo, req.scope.corruption)
                st.touch_req(req, **route.columns(), updated_at=event.at)
                req.bump_version()
            notes.append(request_routed(req.number, event.at, level=route.level, smo=route.smo,
                                        via="telephone_transfer"))

    def _recording(self, st: Batch, call: BatchCall, event: RecordingStarted,
                   notes: list[Note]) -> None:
        if event.pbx_path in st.known_paths:
            return
        st.known_paths.add(event.pbx_path)
        st.recordings.append((call, {
            "pbx_id": self.pbx_id, "leg_uniqueid": event.uniqueid, "pbx_path": event.pbx_path,
            "relative_path": self.relative_recording_path(event.pbx_path),
            "status": "pending", "started_at": event.at}))
        st.log(call, event.at, "recording", path=event.pbx_path)

    def _leg_ended(self, st: Batch, call: BatchCall, event: LegEnded,
                   notes: list[Note]) -> None:
        leg = call.legs.get(event.uniqueid)
        if leg is not None and not leg.ended:
            leg.ended = True
            st.touch_leg(call, leg, ended_at=event.at)

    def _ended(self, st: Batch, call: BatchCall, event: CallEnded,
               notes: list[Note]) -> None:
        call.ended = True
        st.touch_call(call, ended_at=event.at, outcome=event.outcome,
                      end_reason=event.reason)
        for leg in call.legs.values():
            if not leg.ended:
                leg.ended = True
                st.touch_leg(call, leg, ended_at=event.at)
        req = call.request
        if req is not None and req.outcome is None:
            req.outcome = event.outcome
            st.touch_req(req, outcome=event.outcome)
        elif req is not None and call.outbound and req.outcome == MISSED_OUTCOME:
            # A call-back on a missed call: its outcome is a call-back attempt.
            st.attempts.append((call, req, result_of_call(event.outcome), event.at))
        st.log(call, event.at, "ended", outcome=event.outcome, reason=event.reason)
        req = call.request
        if req is not None and req.number is not None:
            notes.append(call_ended(req.number, event.at, req.scope,
                                    outcome=event.outcome, reason=event.reason))

    def _amended_outcome(self, st: Batch, call: BatchCall) -> dict[str, Any]:
        """An ended call closed as abandoned that CEL shows answered: the outcome, on the call
        and on its request, becomes "answered"."""
        if not call.ended:
            return {}
        req = call.request
        if req is not None and req.outcome == "abandoned":
            req.outcome = "answered"
            st.touch_req(req, outcome="answered")
        return {"outcome": "answered"}

    # ------------------------------------------------------------------ helpers
    def relative_recording_path(self, pbx_path: str) -> str:
        """The recording's path below RECORDINGS_DIR (as Asterisk named it below its own dir)."""
        path = PurePosixPath(pbx_path)
        base = PurePosixPath(self.recordings_pbx_dir)
        try:
            return str(path.relative_to(base))
        except ValueError:
            return path.name

_RULES: dict[type, Callable[..., None]] = {
    QueueJoined: EventRules._queue_joined,
    LegRinging: EventRules._ringing,
    LegRingNoAnswer: EventRules._ring_no_answer,
    CallAnswered: EventRules._answered,
    CallAnsweredElsewhere: EventRules._answered_elsewhere,
    CallHeld: EventRules._held,
    CallUnheld: EventRules._unheld,
    CallTransferred: EventRules._transferred,
    RecordingStarted: EventRules._recording,
    LegEnded: EventRules._leg_ended,
    CallEnded: EventRules._ended,
}