"""The call tracker: a deterministic, I/O-free state machine from AMI events to call events.

Channels are grouped into calls by Linkedid. A channel whose Linkedid changes (Asterisk gives
the younger Linkedid way to the older one when two calls are bridged, as in an attended
transfer by REFER/Replaces) moves to the call it joined. A call ends when its last channel
hangs up, when reconciliation (CoreShowChannels) shows its channels gone, or when Asterisk
restarted. The same AMI stream always yields the same call events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from telephony import events as ev
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
from telephony.routing import (
    Routing,
    dialled_number,
    endpoint_of,
    is_trunk_dial,
    local_exten,
)

ANSWERED = "answered"
ABANDONED = "abandoned"


@dataclass(slots=True)
class Leg:
    """One channel as the tracker knows it."""

    uniqueid: str
    name: str
    linkedid: str
    endpoint: str | None
    dialled: str | None = None
    rang: bool = False
    answered: bool = False
    held: bool = False
    bridge: str | None = None
    # Every bridge this leg entered (membership outlives BridgeLeave): dropping the leg
    # visits these instead of scanning all bridges.
    bridges: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Call:
    """Channels sharing a Linkedid; ``tracked`` calls are the ones the journal hears about."""

    linkedid: str
    legs: set[str] = field(default_factory=set)
    tracked: bool = False
    direction: str = ""
    answered_by: list[str] = field(default_factory=list)
    # MIXMONITOR_FILENAME → (uniqueid of the leg, when it was set), in arrival order: a file
    # named before the call is tracked is reported when tracking starts.
    recordings: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    transferred_from: set[tuple[str, str]] = field(default_factory=set)
    queues: list[str] = field(default_factory=list)


class CallTracker:
    """Feed it typed AMI events with their arrival time; it returns call events."""

    def __init__(self, routing: Routing) -> None:
        self.routing = routing
        self.legs: dict[str, Leg] = {}
        self.calls: dict[str, Call] = {}
        self.bridges: dict[str, set[str]] = {}
        self._uptime: int | None = None
        self._snapshot: dict[str, ev.CoreShowChannel] | None = None
        self.unknown_channel_events = 0

    # ----------------------------------------------------------------- public API
    @property
    def active_calls(self) -> list[Call]:
        """Calls the journal tracks that are still in progress."""
        return [call for call in self.calls.values() if call.tracked]

    def restore(self, linkedid: str, direction: str, answered_by: list[str]) -> None:
        """Re-adopt a call the journal still has open (after a service restart)."""
        call = self.calls.get(linkedid)
        if call is None:
            call = self.calls[linkedid] = Call(linkedid)
        call.tracked = True
        call.direction = direction
        call.answered_by = list(answered_by)

    def begin_snapshot(self) -> None:
        """A CoreShowChannels listing starts (after every login)."""
        self._snapshot = {}

    def handle(self, event: ev.Event, at: datetime) -> list[CallEvent]:
        """Apply one AMI event; return the call events it causes (often none)."""
        handler = _HANDLERS.get(type(event))
        if handler is None:
            return []
        out: list[CallEvent] = []
        handler(self, event, at, out)
        return out

    def end_snapshot(self, at: datetime) -> list[CallEvent]:
        """The listing is complete: channels missing from it hung up while we were blind."""
        snapshot, self._snapshot = self._snapshot or {}, None
        out: list[CallEvent] = []
        # Adopt first: a call restored after a service restart has no legs until the listing
        # shows them, and must not be closed out for that.
        for item in snapshot.values():
            self._adopt_from_snapshot(item, at, out)
        for uniqueid in [u for u in self.legs if u not in snapshot]:
            self._drop_leg(uniqueid, at, out, reason="reconciled")
        for call in [c for c in self.calls.values() if not c.legs]:
            self._end_call(call, at, out, reason="reconciled")
        # Answers are judged once every channel's bridge is known (listing order is arbitrary).
        for call in list(self.calls.values()):
            if call.tracked and not call.answered_by:
                self._answer_from_bridges(call, at, out)
        return out

    # ----------------------------------------------------------------- helpers
    def _leg(self, chan: ev.Chan, at: datetime, out: list[CallEvent]) -> Leg:
        """The leg for a channel snapshot, created on first sight, moved if Linkedid changed."""
        leg = self.legs.get(chan.uniqueid)
        if leg is None:
            leg = Leg(chan.uniqueid, chan.name, chan.linkedid, endpoint_of(chan.name))
            self.legs[chan.uniqueid] = leg
            self._call(chan.linkedid).legs.add(chan.uniqueid)
        elif chan.linkedid and leg.linkedid != chan.linkedid:
            self._move_leg(leg, chan.linkedid, at, out)
        return leg

    def _call(self, linkedid: str) -> Call:
        call = self.calls.get(linkedid)
        if call is None:
            call = self.calls[linkedid] = Call(linkedid)
        return call

    def _move_leg(self, leg: Leg, linkedid: str, at: datetime, out: list[CallEvent]) -> None:
        old = self.calls.get(leg.linkedid)
        leg.linkedid = linkedid
        self._call(linkedid).legs.add(leg.uniqueid)
        if old is not None:
            old.legs.discard(leg.uniqueid)
            if not old.legs:
                self._end_call(old, at, out, reason="hangup")

    def _tracked(self, linkedid: str) -> Call | None:
        call = self.calls.get(linkedid)
        return call if call is not None and call.tracked else None

    def _start(self, call: Call, chan: ev.Chan, direction: str, line: str, caller: str,
               at: datetime, out: list[CallEvent]) -> None:
        call.tracked = True
        call.direction = direction
        out.append(CallStarted(call.linkedid, chan.uniqueid, direction, caller, line,
                               chan.name, at))
        # MixMonitor may already run (a call-back: from-operators records before Dial).
        for path, (uniqueid, started) in call.recordings.items():
            out.append(RecordingStarted(call.linkedid, uniqueid, path, started))

    def _drop_leg(self, uniqueid: str, at: datetime, out: list[CallEvent], reason: str) -> None:
        leg = self.legs.pop(uniqueid, None)
        if leg is None:
            return
        for bridge_id in leg.bridges:
            members = self.bridges.get(bridge_id)
            if members is None:
                continue
            members.discard(uniqueid)
            if not members:
                del self.bridges[bridge_id]
        call = self.calls.get(leg.linkedid)
        if call is None:
            return
        call.legs.discard(uniqueid)
        if call.tracked:
            out.append(LegEnded(call.linkedid, uniqueid, leg.endpoint, at))
        if not call.legs:
            self._end_call(call, at, out, reason)

    def _end_call(self, call: Call, at: datetime, out: list[CallEvent], reason: str) -> None:
        self.calls.pop(call.linkedid, None)
        if call.tracked:
            outcome = ANSWERED if call.answered_by else ABANDONED
            out.append(CallEnded(call.linkedid, outcome, reason, at))

    def _answer(self, call: Call, leg: Leg, extension: str, queue: str, at: datetime,
                out: list[CallEvent]) -> None:
        if leg.answered:
            return
        leg.answered = True
        call.answered_by.append(extension)
        out.append(CallAnswered(call.linkedid, leg.uniqueid, extension, queue, at))

    def _ring(self, call: Call, leg: Leg, extension: str, queue: str, at: datetime,
              out: list[CallEvent]) -> None:
        if leg.rang:
            return
        leg.rang = True
        out.append(LegRinging(call.linkedid, leg.uniqueid, extension, leg.name, queue, at))

    def _transfer_target(self, event: ev.AttendedTransfer) -> str | None:
        """The number an attended transfer went to, from what the consultation dialled."""
        if event.target is not None:
            leg = self.legs.get(event.target.uniqueid)
            if leg is not None and leg.dialled:
                return leg.dialled
            if endpoint_of(event.target.name):
                return endpoint_of(event.target.name)
        transferers = {event.transferer.uniqueid}
        if event.second_transferer is not None:
            transferers.add(event.second_transferer.uniqueid)
        for uniqueid in sorted(self.bridges.get(event.second_bridge, set()) - transferers):
            leg = self.legs.get(uniqueid)
            if leg is None:
                continue
            number = local_exten(leg.name) or leg.dialled or leg.endpoint
            if number:
                return number
        second = event.second_transferer
        if second is not None and second.exten not in self.routing.hotline_numbers:
            return second.exten or None
        return None

    def _adopt_from_snapshot(self, item: ev.CoreShowChannel, at: datetime,
                             out: list[CallEvent]) -> None:
        chan = item.chan
        known = chan.uniqueid in self.legs
        leg = self._leg(chan, at, out)
        if item.bridge:
            leg.bridge = item.bridge
            leg.bridges.add(item.bridge)
            self.bridges.setdefault(item.bridge, set()).add(leg.uniqueid)
        call = self.calls[leg.linkedid]
        if (not known and not call.tracked and chan.uniqueid == chan.linkedid
                and chan.exten in self.routing.hotline_numbers):
            self._start(call, chan, "inbound", chan.exten, chan.caller_num, at, out)

    def _answer_from_bridges(self, call: Call, at: datetime, out: list[CallEvent]) -> None:
        """Answered while we were blind: an operator's phone sits in a bridge of the call."""
        for bridge_id in sorted({self.legs[u].bridge for u in call.legs
                                 if u in self.legs and self.legs[u].bridge}):
            # Membership is kept after BridgeLeave; only legs still in the bridge count.
            members = [self.legs[u] for u in sorted(self.bridges.get(bridge_id, ()))
                       if u in self.legs and self.legs[u].bridge == bridge_id]
            if len(members) < 2:
                continue
            for peer in members:
                if (peer.linkedid == call.linkedid
                        and peer.uniqueid != call.linkedid and peer.endpoint
                        and not peer.answered):
                    self._answer(call, peer, peer.endpoint, "", at, out)
                    return

    # ----------------------------------------------------------------- handlers
    def _on_newchannel(self, event: ev.NewChannel, at: datetime, out: list[CallEvent]) -> None:
        chan = event.chan
        leg = self._leg(chan, at, out)
        call = self.calls[leg.linkedid]
        if (chan.uniqueid == chan.linkedid and not call.tracked
                and chan.exten in self.routing.hotline_numbers and leg.endpoint):
            self._start(call, chan, "inbound", chan.exten, chan.caller_num, at, out)

    def _on_update(self, event: ev.ChannelUpdate, at: datetime, out: list[CallEvent]) -> None:
        self._leg(event.chan, at, out)

    def _on_varset(self, event: ev.VarSet, at: datetime, out: list[CallEvent]) -> None:
        leg = self._leg(event.chan, at, out)
        call = self.calls[leg.linkedid]
        if event.variable == "MIXMONITOR_FILENAME":
            if event.value and event.value not in call.recordings:
                call.recordings[event.value] = (leg.uniqueid, at)
                if call.tracked:
                    out.append(RecordingStarted(call.linkedid, leg.uniqueid, event.value, at))
        elif (not call.tracked and event.value in self.routing.hotline_numbers
              and event.chan.uniqueid == event.chan.linkedid):
            # The inherited DID variable: the Newchannel was missed (reconnect gap).
            self._start(call, event.chan, "inbound", event.value, event.chan.caller_num, at, out)

    def _on_hangup(self, event: ev.Hangup, at: datetime, out: list[CallEvent]) -> None:
        if event.chan.uniqueid not in self.legs:
            self.unknown_channel_events += 1
            return
        self._drop_leg(event.chan.uniqueid, at, out, reason="hangup")

    def _on_queue_join(self, event: ev.QueueCallerJoin, at: datetime,
                       out: list[CallEvent]) -> None:
        leg = self._leg(event.chan, at, out)
        call = self._tracked(leg.linkedid)
        if call is not None:
            call.queues.append(event.queue)
            out.append(QueueJoined(call.linkedid, event.queue, at))

    def _on_agent_called(self, event: ev.AgentCalled, at: datetime,
                         out: list[CallEvent]) -> None:
        self._leg(event.chan, at, out)
        dest = self._leg(event.dest, at, out)
        call = self._tracked(dest.linkedid)
        extension = endpoint_of(event.interface + "-00000000") or dest.endpoint
        if call is not None and extension:
            self._ring(call, dest, extension, event.queue, at, out)

    def _on_agent_connect(self, event: ev.AgentConnect, at: datetime,
                          out: list[CallEvent]) -> None:
        self._leg(event.chan, at, out)
        dest = self._leg(event.dest, at, out)
        call = self._tracked(dest.linkedid)
        extension = endpoint_of(event.interface + "-00000000") or dest.endpoint
        if call is not None and extension:
            self._answer(call, dest, extension, event.queue, at, out)

    def _on_ring_no_answer(self, event: ev.AgentRingNoAnswer, at: datetime,
                           out: list[CallEvent]) -> None:
        dest = self._leg(event.dest, at, out)
        call = self._tracked(dest.linkedid)
        extension = endpoint_of(event.interface + "-00000000") or dest.endpoint
        if call is not None and extension:
            out.append(LegRingNoAnswer(call.linkedid, dest.uniqueid, extension, at))

    def _on_dial_begin(self, event: ev.DialBegin, at: datetime, out: list[CallEvent]) -> None:
        caller = self._leg(event.chan, at, out) if event.chan is not None else None
        dest = self._leg(event.dest, at, out)
        number = dialled_number(event.dial_string)
        dest.dialled = number
        call = self.calls[dest.linkedid]
        trunk = is_trunk_dial(event.dial_string)
        if (not call.tracked and caller is not None and trunk and caller.endpoint
                and caller.uniqueid == call.linkedid and len(number) >= 10
                and self.routing.classify(number)[1] == "other"):
            # An operator's phone dialling out through a trunk: possibly a call-back.
            self._start(call, event.chan, "outbound", number, caller.endpoint, at, out)  # type: ignore[arg-type]
        if call.tracked and not trunk and dest.endpoint:
            self._ring(call, dest, dest.endpoint, "", at, out)

    def _on_dial_end(self, event: ev.DialEnd, at: datetime, out: list[CallEvent]) -> None:
        dest = self._leg(event.dest, at, out)
        call = self._tracked(dest.linkedid)
        if call is not None and call.direction == "outbound" and event.status == "ANSWER":
            caller = self.legs.get(call.linkedid)
            if caller is not None and caller.endpoint:
                # The citizen picked up the call-back; the operator who dialled talks.
                self._answer(call, caller, caller.endpoint, "", at, out)
            return
        if (call is not None and event.status == "ANSWER" and dest.endpoint
                and dest.dialled is not None and dest.dialled == dest.endpoint
                and call.direction == "inbound"):
            queue = call.queues[-1] if call.queues else ""
            self._answer(call, dest, dest.endpoint, queue, at, out)

    def _on_hold(self, event: ev.Hold, at: datetime, out: list[CallEvent]) -> None:
        leg = self._leg(event.chan, at, out)
        call = self._tracked(leg.linkedid)
        if not leg.held:
            leg.held = True
            if call is not None:
                out.append(CallHeld(call.linkedid, leg.endpoint or leg.name, at))

    def _on_unhold(self, event: ev.Unhold, at: datetime, out: list[CallEvent]) -> None:
        leg = self._leg(event.chan, at, out)
        call = self._tracked(leg.linkedid)
        if leg.held:
            leg.held = False
            if call is not None:
                out.append(CallUnheld(call.linkedid, leg.endpoint or leg.name, at))

    def _on_bridge_enter(self, event: ev.BridgeEnter, at: datetime,
                         out: list[CallEvent]) -> None:
        leg = self._leg(event.chan, at, out)
        leg.bridge = event.bridge
        leg.bridges.add(event.bridge)
        self.bridges.setdefault(event.bridge, set()).add(leg.uniqueid)

    def _on_bridge_leave(self, event: ev.BridgeLeave, at: datetime,
                         out: list[CallEvent]) -> None:
        leg = self._leg(event.chan, at, out)
        if leg.bridge == event.bridge:
            leg.bridge = None
        # Membership is kept until the leg hangs up: an attended transfer names the
        # consultation bridge after it has emptied.

    def _on_blind_transfer(self, event: ev.BlindTransfer, at: datetime,
                           out: list[CallEvent]) -> None:
        if not event.success:
            return
        linkedid = (event.transferee or event.transferer).linkedid
        call = self._tracked(linkedid)
        if call is None:
            return
        to, target, smo = self.routing.classify(event.extension)
        from_ext = endpoint_of(event.transferer.name) or event.transferer.name
        self._transferred(call, "blind", from_ext, to, target, smo, at, out)

    def _on_attended_transfer(self, event: ev.AttendedTransfer, at: datetime,
                              out: list[CallEvent]) -> None:
        if not event.success:
            return
        linkedid = (event.transferee or event.transferer).linkedid
        call = self._tracked(linkedid)
        if call is None:
            return
        number = self._transfer_target(event)
        if number is None:
            return
        to, target, smo = self.routing.classify(number)
        from_ext = endpoint_of(event.transferer.name) or event.transferer.name
        self._transferred(call, "attended", from_ext, to, target, smo, at, out)

    def _transferred(self, call: Call, kind: str, from_ext: str, to: str, target: str,
                     smo: str | None, at: datetime, out: list[CallEvent]) -> None:
        key = (from_ext, to)
        if key in call.transferred_from:
            return
        call.transferred_from.add(key)
        out.append(CallTransferred(call.linkedid, kind, from_ext, to, target, smo, at))

    def _on_mixmonitor(self, event: ev.MixMonitorStart, at: datetime,
                       out: list[CallEvent]) -> None:
        self._leg(event.chan, at, out)

    def _on_fully_booted(self, event: ev.FullyBooted, at: datetime,
                         out: list[CallEvent]) -> None:
        previous, self._uptime = self._uptime, event.uptime_s
        if previous is not None and event.uptime_s is not None and event.uptime_s < previous:
            # Asterisk restarted: every channel we knew is gone.
            for uniqueid in list(self.legs):
                self._drop_leg(uniqueid, at, out, reason="pbx_restart")
            for call in list(self.calls.values()):
                self._end_call(call, at, out, reason="pbx_restart")

    def _on_core_show_channel(self, event: ev.CoreShowChannel, at: datetime,
                              out: list[CallEvent]) -> None:
        if self._snapshot is not None:
            self._snapshot[event.chan.uniqueid] = event

    def _on_core_show_complete(self, event: ev.CoreShowChannelsComplete, at: datetime,
                               out: list[CallEvent]) -> None:
        if self._snapshot is not None:
            out.extend(self.end_snapshot(at))


_HANDLERS = {
    ev.NewChannel: CallTracker._on_newchannel,
    ev.ChannelUpdate: CallTracker._on_update,
    ev.VarSet: CallTracker._on_varset,
    ev.Hangup: CallTracker._on_hangup,
    ev.QueueCallerJoin: CallTracker._on_queue_join,
    ev.AgentCalled: CallTracker._on_agent_called,
    ev.AgentConnect: CallTracker._on_agent_connect,
    ev.AgentRingNoAnswer: CallTracker._on_ring_no_answer,
    ev.DialBegin: CallTracker._on_dial_begin,
    ev.DialEnd: CallTracker._on_dial_end,
    ev.Hold: CallTracker._on_hold,
    ev.Unhold: CallTracker._on_unhold,
    ev.BridgeEnter: CallTracker._on_bridge_enter,
    ev.BridgeLeave: CallTracker._on_bridge_leave,
    ev.BlindTransfer: CallTracker._on_blind_transfer,
    ev.AttendedTransfer: CallTracker._on_attended_transfer,
    ev.MixMonitorStart: CallTracker._on_mixmonitor,
    ev.FullyBooted: CallTracker._on_fully_booted,
    ev.CoreShowChannel: CallTracker._on_core_show_channel,
    ev.CoreShowChannelsComplete: CallTracker._on_core_show_complete,
}
