"""The call tracker: a deterministic, I/O-free state machine from AMI events to call events.

Channels are grouped into calls by Linkedid. A channel whose Linkedid changes (Asterisk gives
the younger Linkedid way to the older one when two calls are bridged, as in an attended
transfer by REFER/Replaces) moves to the call it joined. A call ends when its last channel
hangs up, when reconciliation (CoreShowChannels) shows its channels gone, or when Asterisk
restarted. The same AMI stream always yields the same call events.

Who answered is read from bridges, whatever dialplan put the parties there: a call is answered
when its first channel (the trunk leg of an inbound call) is connected to an operator's phone
through bridges and Local channel pairs (``Local/…;1`` ↔ ``;2``). Queue, Dial, ring groups,
follow-me, pickup and transfers all end in such a connection, so app_queue's ``AgentConnect``
and ``DialEnd`` are not needed (and may be missing: the ``agent`` event class is optional).
A connection to a channel dialled out through a trunk is an answer elsewhere (a mobile, an
SMO line) with no operator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from telephony import events as ev
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
from telephony.routing import Routing, Target, endpoint_of, local_exten, parse_dial

ANSWERED = "answered"
RINGING = "5"  # AST_STATE_RINGING: the phone rings (a 180), not merely dialled
ABANDONED = "abandoned"
# A hung-up channel is remembered this long (and at most GONE_MAX of them): late events about
# it (NewCallerid after Hangup) must not bring it back, and a transfer may still name it.
GONE_KEEP_S = 120.0
GONE_MAX = 20_000
# Extensions that are dialplan plumbing, not a number anybody dialled.
_NOT_A_NUMBER = frozenset({"", "s", "h", "i", "t", "o", "a", "e"})


@dataclass(slots=True)
class Leg:
    """One channel as the tracker knows it."""

    uniqueid: str
    name: str
    linkedid: str
    endpoint: str | None  # the device: ``PJSIP/101-0000002a`` → ``101``; None for Local
    local: bool = False
    pair: str | None = None  # the other half of a Local channel
    first_exten: str = ""  # what the channel was created for (a phone's dialled number)
    caller: str = ""  # CallerID at first sight: what the trunk delivered, before any rewrite
    # Shown to exist by a Newchannel or a CoreShowChannels listing, not only named by others.
    listed: bool = False
    dialled: str | None = None  # what a Dial() towards this channel named
    # The one destination of the Dial() this channel runs, as a listing shows it: names what
    # it dials when the DialBegin was missed (a restart or a reconnect mid-dial); used once.
    dialling: str | None = None
    trunk: bool = False  # dialled out through a trunk: an outside party
    rang: bool = False
    answered: bool = False
    picked_up: bool = False  # DialEnd ANSWER: off the hook, maybe only for a consultation
    no_answer: bool = False
    held: bool = False
    bridge: str | None = None
    # Channels this one is talking to by an answered Dial (DialEnd ANSWER): the bridge follows
    # in a few ms, but may fall into a reconnect gap.
    links: set[str] = field(default_factory=set)
    # Every bridge this leg entered (membership outlives BridgeLeave: an attended transfer
    # names the consultation bridge after it has emptied); dropped with the leg.
    bridges: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Call:
    """Channels sharing a Linkedid; ``tracked`` calls are the ones the journal hears about.

    The call's first channel (``uniqueid == linkedid``) is its origin: the citizen's trunk
    leg of an inbound call, the operator's phone of an outbound one.
    """

    linkedid: str
    legs: set[str] = field(default_factory=set)
    tracked: bool = False
    direction: str = ""
    answered_by: list[str] = field(default_factory=list)
    answered_elsewhere: str | None = None
    # Operators the journal already had when the call was restored after a service restart.
    restored_answers: set[str] = field(default_factory=set)
    # MIXMONITOR_FILENAME → (uniqueid of the leg, when it was set), in arrival order: a file
    # named before the call is tracked is reported when tracking starts.
    recordings: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    transferred_from: set[tuple[str, str]] = field(default_factory=set)
    # A transfer event since the last answer: a redirected caller needs no inferred one.
    moved: bool = False
    queues: list[str] = field(default_factory=list)

    @property
    def answered(self) -> bool:
        return bool(self.answered_by) or self.answered_elsewhere is not None


class CallTracker:
    """Feed it typed AMI events with their arrival time; it returns call events."""

    def __init__(self, routing: Routing) -> None:
        self.routing = routing
        self.legs: dict[str, Leg] = {}
        self.calls: dict[str, Call] = {}
        # bridge id → uniqueids that entered it (a dict: insertion order keeps runs identical)
        self.bridges: dict[str, dict[str, None]] = {}
        self.gone: dict[str, tuple[Leg, datetime]] = {}
        self._halves: dict[str, str] = {}  # Local pair name → uniqueid of the half seen first
        self._uptime: int | None = None
        self._snapshot: dict[str, ev.CoreShowChannel] | None = None
        # A CoreShowChannels listing has completed: every channel up since then is either in
        # it or announced by its own Newchannel.
        self._listed_once = False
        self.unknown_channel_events = 0

    # ----------------------------------------------------------------- public API
    @property
    def active_calls(self) -> list[Call]:
        """Calls the journal tracks that are still in progress."""
        return [call for call in self.calls.values() if call.tracked]

    def restore(self, linkedid: str, direction: str, answered_by: list[str],
                answered_elsewhere: str | None = None) -> None:
        """Re-adopt a call the journal still has open (after a service restart)."""
        call = self._call(linkedid)
        call.tracked = True
        call.direction = direction
        call.answered_by = list(answered_by)
        call.restored_answers = set(answered_by)
        call.answered_elsewhere = answered_elsewhere

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
        self._listed_once = True
        out: list[CallEvent] = []
        # Adopt first: a call restored after a service restart has no legs until the listing
        # shows them, and must not be closed out for that.
        for item in snapshot.values():
            self._adopt_from_snapshot(item, at, out)
        for uniqueid in [u for u in self.legs if u not in snapshot]:
            self._drop_leg(uniqueid, at, out, reason="reconciled")
        for call in [c for c in self.calls.values() if not c.legs]:
            self._end_call(call, at, out, reason="reconciled")
        for bridge_id in list(self.bridges):
            self._dialled_in_bridge(bridge_id)
        # Connections are judged once every channel's bridge is known (listing order is
        # arbitrary).
        for call in list(self.calls.values()):
            origin = self.legs.get(call.linkedid)
            if call.tracked and origin is not None:
                self._judge(call, origin, self._component(origin), at, out)
        return out

    # ----------------------------------------------------------------- legs and calls
    def _leg(self, chan: ev.Chan, at: datetime, out: list[CallEvent], listed: bool = False,
             subject: bool = True) -> Leg | None:
        """The leg for a channel snapshot, created on first sight, moved if Linkedid changed;
        None for a channel that has already hung up. ``listed``: the event shows a channel
        that exists (Newchannel, CoreShowChannel), not one that merely names it; ``subject``:
        the event is about this channel's own progress, not a dialled or picked-up party
        (a masqueraded pickup channel shows the ringing leg's Exten as a DialEnd's Dest)."""
        leg = self.legs.get(chan.uniqueid)
        if leg is None:
            # Hung up a while ago; or, once a listing is complete, neither listed nor created
            # since: it hung up before the listing (a late NewCallerid after a Local half's
            # Hangup, the Hangup itself lost with a killed service or in a reconnect gap).
            if chan.uniqueid in self.gone or (
                    not listed and self._listed_once and self._snapshot is None):
                self.unknown_channel_events += 1
                return None
            leg = Leg(chan.uniqueid, chan.name, chan.linkedid, endpoint_of(chan.name),
                      first_exten=chan.exten, caller=chan.caller_num)
            self.legs[chan.uniqueid] = leg
            self._call(chan.linkedid).legs.add(chan.uniqueid)
            if chan.name.startswith("Local/") and chan.name[-2:] in (";1", ";2"):
                self._pair_local(leg)
        elif chan.linkedid and leg.linkedid != chan.linkedid:
            self._move_leg(leg, chan.linkedid, at, out)
        if listed:
            leg.listed = True
        if chan.exten in self.routing.hotline_numbers and leg.listed and subject:
            self._inbound(leg, chan.exten, chan, at, out)
        return leg

    def _inbound(self, leg: Leg, line: str, chan: ev.Chan, at: datetime,
                 out: list[CallEvent]) -> None:
        """The first channel of a call, from a device (a trunk), at the 8-800 number: an
        inbound call. Usually seen on its Newchannel; later (a DID found by the dialplan, a
        reconnect gap) on the first event that shows it there."""
        if leg.uniqueid != leg.linkedid or leg.endpoint is None:
            return
        call = self.calls[leg.linkedid]
        if not call.tracked:
            self._start(call, chan, "inbound", line, leg.caller or chan.caller_num, at, out)

    def _pair_local(self, leg: Leg) -> None:
        leg.local = True
        key = leg.name[:-2]
        other = self.legs.get(self._halves.get(key, ""))
        if other is None:
            self._halves[key] = leg.uniqueid
        else:
            leg.pair, other.pair = other.uniqueid, leg.uniqueid
            del self._halves[key]

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
        self._forget(leg, at)
        call = self.calls.get(leg.linkedid)
        if call is None:
            return
        call.legs.discard(uniqueid)
        if call.tracked:
            if leg.rang and not leg.answered and not leg.picked_up:
                self._no_answer(call, leg, at, out)
            out.append(LegEnded(call.linkedid, uniqueid, leg.endpoint, at))
        if not call.legs:
            self._end_call(call, at, out, reason)

    def _forget(self, leg: Leg, at: datetime) -> None:
        """Unlink a hung-up leg from bridges and its Local pair; remember it for a while."""
        for bridge_id in leg.bridges:
            members = self.bridges.get(bridge_id)
            if members is None:
                continue
            members.pop(leg.uniqueid, None)
            if not members:
                del self.bridges[bridge_id]
        if leg.local and self._halves.get(leg.name[:-2]) == leg.uniqueid:
            del self._halves[leg.name[:-2]]
        self._unlink(leg)
        leg.bridges = set()
        self.gone[leg.uniqueid] = (leg, at)
        gone = self.gone
        while gone:
            oldest = next(iter(gone))
            if len(gone) <= GONE_MAX and (at - gone[oldest][1]).total_seconds() < GONE_KEEP_S:
                break
            del gone[oldest]

    def _unlink(self, leg: Leg) -> None:
        """Forget the answered-dial hints of a leg (it is bridged now, or gone)."""
        for uniqueid in leg.links:
            other = self.legs.get(uniqueid)
            if other is not None:
                other.links.discard(leg.uniqueid)
        leg.links = set()

    def _end_call(self, call: Call, at: datetime, out: list[CallEvent], reason: str) -> None:
        self.calls.pop(call.linkedid, None)
        if call.tracked:
            outcome = ANSWERED if call.answered else ABANDONED
            out.append(CallEnded(call.linkedid, outcome, reason, at))

    def _known(self, uniqueid: str) -> Leg | None:
        """A live leg, or one that hung up a short while ago."""
        leg = self.legs.get(uniqueid)
        if leg is None and uniqueid in self.gone:
            leg = self.gone[uniqueid][0]
        return leg

    # ----------------------------------------------------------------- who is who
    def _is_phone(self, call: Call, leg: Leg) -> bool:
        """An operator's phone: a device channel that is neither the call's origin nor a
        channel towards the outside (dialled through a trunk, or on the origin's trunk)."""
        if leg.local or leg.endpoint is None or leg.trunk or leg.uniqueid == call.linkedid:
            return False
        origin = self._known(call.linkedid)
        return not (call.direction == "inbound" and origin is not None
                    and origin.endpoint == leg.endpoint)

    def _component(self, start: Leg) -> list[Leg]:
        """Every channel connected to ``start`` now: through bridges, Local pairs and answered
        dials."""
        seen = {start.uniqueid}
        found = [start]
        todo = [start]
        while todo:
            leg = todo.pop()
            neighbours = list(leg.links)
            if leg.pair is not None:
                neighbours.append(leg.pair)
            for uniqueid in neighbours:
                other = self.legs.get(uniqueid)
                if other is not None and uniqueid not in seen:
                    seen.add(uniqueid)
                    found.append(other)
                    todo.append(other)
            if leg.bridge is None:
                continue
            for uniqueid in self.bridges.get(leg.bridge, ()):
                other = self.legs.get(uniqueid)
                # Membership outlives BridgeLeave: only who is in the bridge now counts.
                if other is not None and uniqueid not in seen and other.bridge == leg.bridge:
                    seen.add(uniqueid)
                    found.append(other)
                    todo.append(other)
        return found

    def _operator_near(self, chan: ev.Chan) -> str:
        """The operator behind a channel that transferred: its phone's name, or the phone
        connected to it through Local channels (FreePBX queue members), else the channel."""
        leg = self._known(chan.uniqueid)
        name = endpoint_of(chan.name)
        if name is not None:
            return name
        if leg is not None:
            call = self.calls.get(leg.linkedid)
            if leg.uniqueid in self.legs:
                for other in self._component(leg):
                    if other.answered and other.endpoint and (
                            call is None or self._is_phone(call, other)):
                        return other.endpoint
            if call is not None and call.answered_by:
                return call.answered_by[-1]
        return chan.name

    def _outside_number(self, leg: Leg) -> str:
        number = leg.dialled or local_exten(leg.name) or leg.endpoint or leg.name
        return self.routing.classify(number)[0]

    # ----------------------------------------------------------------- what happened
    def _answer(self, call: Call, leg: Leg, at: datetime, out: list[CallEvent]) -> None:
        extension = leg.endpoint
        if leg.answered or extension is None:
            return
        # A phone that answered without ringing (auto-answer) still gets its screen pop.
        self._ring(call, leg, at, out)
        leg.answered = True
        call.answered_by.append(extension)
        call.moved = False
        queue = call.queues[-1] if call.queues else ""
        out.append(CallAnswered(call.linkedid, leg.uniqueid, extension, queue, at))

    def _ring(self, call: Call, leg: Leg, at: datetime, out: list[CallEvent]) -> None:
        if leg.rang or leg.endpoint is None:
            return
        leg.rang = True
        queue = call.queues[-1] if call.queues else ""
        out.append(LegRinging(call.linkedid, leg.uniqueid, leg.endpoint, leg.name, queue, at))

    def _no_answer(self, call: Call, leg: Leg, at: datetime, out: list[CallEvent]) -> None:
        if leg.no_answer or leg.answered or not leg.rang:
            return
        leg.no_answer = True
        out.append(LegRingNoAnswer(call.linkedid, leg.uniqueid, leg.endpoint or leg.name, at))

    def _judge(self, call: Call, origin: Leg, component: list[Leg], at: datetime,
               out: list[CallEvent]) -> None:
        """The origin is connected to ``component``: who of it answered the call?"""
        if call.direction == "outbound":
            # A call-back: the citizen picked up; the operator who dialled talks.
            if origin.endpoint and any(not leg.local for leg in component if leg is not origin):
                self._answer(call, origin, at, out)
            return
        outside: Leg | None = None
        for leg in component:
            if leg is origin or leg.local:
                continue
            if self._is_phone(call, leg):
                if leg.endpoint in call.restored_answers:
                    leg.answered = True  # the journal has it from before the restart
                    call.restored_answers.discard(leg.endpoint)
                self._answer(call, leg, at, out)
            elif outside is None:
                outside = leg
        if outside is not None and not call.answered:
            call.answered_elsewhere = self._outside_number(outside)
            out.append(CallAnsweredElsewhere(call.linkedid, outside.uniqueid,
                                             call.answered_elsewhere, at))

    def _connected(self, leg: Leg, at: datetime, out: list[CallEvent]) -> None:
        """A leg joined a bridge: judge every tracked call whose origin it now reaches."""
        component = self._component(leg)
        for member in component:
            call = self.calls.get(member.linkedid)
            if call is not None and call.tracked and member.uniqueid == call.linkedid:
                self._judge(call, member, component, at, out)

    def _transfer_target(self, event: ev.AttendedTransfer) -> str | None:
        """The number an attended transfer went to: what the consultation dialled."""
        second = event.second_transferer
        if (second is not None and second.uniqueid != event.transferer.uniqueid
                and second.exten not in self.routing.hotline_numbers):
            # The phone's own consultation call (REFER/Replaces): the number it dialled.
            leg = self._known(second.uniqueid)
            for number in (leg.first_exten if leg else "", second.exten):
                if number not in _NOT_A_NUMBER and number not in self.routing.hotline_numbers:
                    return number
        target = event.target
        if target is not None:
            exten = local_exten(target.name)
            if exten:
                return exten
            leg = self._known(target.uniqueid)
            if leg is not None and leg.dialled:
                return leg.dialled
            if endpoint_of(target.name):
                return endpoint_of(target.name)
        transferers = {event.transferer.uniqueid}
        if second is not None:
            transferers.add(second.uniqueid)
        for uniqueid in self.bridges.get(event.second_bridge, {}):
            leg = self._known(uniqueid)
            if leg is None or uniqueid in transferers:
                continue
            found = local_exten(leg.name) or leg.dialled or leg.endpoint
            if found:
                return found
        if second is not None and second.exten not in self.routing.hotline_numbers \
                and second.exten not in _NOT_A_NUMBER:
            return second.exten
        return None

    def _dialled_in_bridge(self, bridge_id: str) -> None:
        """A Dial() answered while we were blind: its destination shares the dialler's
        bridge, two channels alone."""
        members = [self.legs[u] for u in self.bridges.get(bridge_id, {}) if u in self.legs]
        if len(members) != 2:
            return
        for leg, other in (members, members[::-1]):
            if leg.dialling and other.dialled is None:
                self._dialled(other, leg.dialling)
                leg.dialling = None  # its one destination found: never a later partner

    @staticmethod
    def _dialled(dest: Leg, dial_string: str) -> str:
        """What a Dial() towards ``dest`` named: the number, and whether through a trunk."""
        target = parse_dial(dial_string)
        dialled = (local_exten(dest.name) if dest.local else None) or target.dialled
        dest.dialled = dialled
        if not dest.local:
            dest.trunk = target.trunk
        return dialled

    def _transferred(self, call: Call, kind: str, from_ext: str, number: str, at: datetime,
                     out: list[CallEvent]) -> None:
        call.moved = True
        to, target, smo = self.routing.classify(number)
        key = (from_ext, to)
        if key in call.transferred_from:
            return
        call.transferred_from.add(key)
        out.append(CallTransferred(call.linkedid, kind, from_ext, to, target, smo, at))

    def _redirected(self, call: Call, chan: ev.Chan, fallback: str, at: datetime,
                    out: list[CallEvent]) -> None:
        """The answered caller, out of every bridge, queues or dials anew with no transfer
        event: moved by the AMI Redirect action (or a dialplan Goto). A blind transfer."""
        origin = self.legs.get(call.linkedid)
        if (call.direction != "inbound" or not call.answered_by or call.moved
                or origin is None or origin.bridge is not None
                or chan.uniqueid != call.linkedid):
            return
        number = chan.exten
        if number in _NOT_A_NUMBER or number in self.routing.hotline_numbers:
            number = fallback
        if number:
            self._transferred(call, "blind", call.answered_by[-1], number, at, out)

    def _adopt_from_snapshot(self, item: ev.CoreShowChannel, at: datetime,
                             out: list[CallEvent]) -> None:
        leg = self._leg(item.chan, at, out, listed=True)
        if leg is not None and item.application == "Dial" and "&" not in item.application_data:
            leg.dialling = item.application_data or None
        if leg is not None and item.bridge:
            leg.bridge = item.bridge
            leg.bridges.add(item.bridge)
            self.bridges.setdefault(item.bridge, {})[leg.uniqueid] = None

    # ----------------------------------------------------------------- handlers
    def _on_newchannel(self, event: ev.NewChannel, at: datetime, out: list[CallEvent]) -> None:
        self._leg(event.chan, at, out, listed=True)

    def _on_update(self, event: ev.ChannelUpdate, at: datetime, out: list[CallEvent]) -> None:
        leg = self._leg(event.chan, at, out)
        if leg is not None and event.chan.state == RINGING and not leg.rang:
            call = self._tracked(leg.linkedid)
            if call is not None and self._is_phone(call, leg):
                self._ring(call, leg, at, out)

    def _on_varset(self, event: ev.VarSet, at: datetime, out: list[CallEvent]) -> None:
        leg = self._leg(event.chan, at, out)
        if leg is None:
            return
        call = self.calls[leg.linkedid]
        if event.variable == "MIXMONITOR_FILENAME":
            if event.value and event.value not in call.recordings:
                call.recordings[event.value] = (leg.uniqueid, at)
                if call.tracked:
                    out.append(RecordingStarted(call.linkedid, leg.uniqueid, event.value, at))
        elif event.value in self.routing.hotline_numbers:
            # The DID variable (FROM_DID): the DID came in a header the dialplan read, or the
            # Newchannel was missed (reconnect gap).
            self._inbound(leg, event.value, event.chan, at, out)

    def _on_hangup(self, event: ev.Hangup, at: datetime, out: list[CallEvent]) -> None:
        if event.chan.uniqueid not in self.legs:
            self.unknown_channel_events += 1
            return
        self._drop_leg(event.chan.uniqueid, at, out, reason="hangup")

    def _on_queue_join(self, event: ev.QueueCallerJoin, at: datetime,
                       out: list[CallEvent]) -> None:
        leg = self._leg(event.chan, at, out)
        call = self._tracked(leg.linkedid) if leg is not None else None
        if call is not None:
            self._redirected(call, event.chan, event.queue, at, out)
            call.queues.append(event.queue)
            out.append(QueueJoined(call.linkedid, event.queue, at))

    def _on_dial_begin(self, event: ev.DialBegin, at: datetime, out: list[CallEvent]) -> None:
        caller = self._leg(event.chan, at, out) if event.chan is not None else None
        dest = self._leg(event.dest, at, out, subject=False)
        if dest is None:
            return
        dialled = self._dialled(dest, event.dial_string)
        call = self.calls[dest.linkedid]
        if (not call.tracked and caller is not None and dest.trunk and caller.endpoint
                and caller.uniqueid == call.linkedid and len(dialled) >= 10
                and self.routing.classify(dialled)[1] is Target.OTHER):
            # An operator's phone dialling out through a trunk: possibly a call-back.
            assert event.chan is not None
            self._start(call, event.chan, "outbound", dialled, caller.endpoint, at, out)
        if not call.tracked:
            return
        if event.chan is not None and caller is not None:
            self._redirected(call, event.chan, dialled, at, out)

    def _on_dial_end(self, event: ev.DialEnd, at: datetime, out: list[CallEvent]) -> None:
        dest = self._leg(event.dest, at, out, subject=False)
        if dest is None:
            return
        if event.status == "ANSWER":
            dest.picked_up = True
            caller = self._leg(event.chan, at, out) if event.chan is not None else None
            if caller is not None:
                if dest.dialled is None and caller.dialling:
                    self._dialled(dest, caller.dialling)
                caller.dialling = None  # one destination, now known
                caller.links.add(dest.uniqueid)
                dest.links.add(caller.uniqueid)
                self._connected(dest, at, out)
            return
        call = self._tracked(dest.linkedid)
        if call is not None and event.status:
            self._no_answer(call, dest, at, out)

    def _on_hold(self, event: ev.Hold, at: datetime, out: list[CallEvent]) -> None:
        leg = self._leg(event.chan, at, out)
        if leg is None or leg.held:
            return
        leg.held = True
        call = self._tracked(leg.linkedid)
        if call is not None:
            out.append(CallHeld(call.linkedid, leg.endpoint or leg.name, at))

    def _on_unhold(self, event: ev.Unhold, at: datetime, out: list[CallEvent]) -> None:
        leg = self._leg(event.chan, at, out)
        if leg is None or not leg.held:
            return
        leg.held = False
        call = self._tracked(leg.linkedid)
        if call is not None:
            out.append(CallUnheld(call.linkedid, leg.endpoint or leg.name, at))

    def _on_bridge_enter(self, event: ev.BridgeEnter, at: datetime,
                         out: list[CallEvent]) -> None:
        leg = self._leg(event.chan, at, out)
        if leg is None:
            return
        leg.bridge = event.bridge
        leg.bridges.add(event.bridge)
        self.bridges.setdefault(event.bridge, {})[leg.uniqueid] = None
        if leg.links:
            self._unlink(leg)
        self._dialled_in_bridge(event.bridge)
        self._connected(leg, at, out)

    def _on_bridge_leave(self, event: ev.BridgeLeave, at: datetime,
                         out: list[CallEvent]) -> None:
        leg = self._leg(event.chan, at, out)
        if leg is not None and leg.bridge == event.bridge:
            leg.bridge = None

    def _on_blind_transfer(self, event: ev.BlindTransfer, at: datetime,
                           out: list[CallEvent]) -> None:
        if not event.success:
            return
        call = self._tracked((event.transferee or event.transferer).linkedid)
        if call is None:
            return
        self._transferred(call, "blind", self._operator_near(event.transferer),
                          event.extension, at, out)

    def _on_attended_transfer(self, event: ev.AttendedTransfer, at: datetime,
                              out: list[CallEvent]) -> None:
        if not event.success:
            return
        call = self._tracked((event.transferee or event.transferer).linkedid)
        if call is None:
            return
        number = self._transfer_target(event)
        if number is not None:
            self._transferred(call, "attended", self._operator_near(event.transferer),
                              number, at, out)

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
            # Uniqueids restart with it: what was remembered names nothing any more.
            self.gone.clear()
            self._halves.clear()

    def _on_core_show_channel(self, event: ev.CoreShowChannel, at: datetime,
                              out: list[CallEvent]) -> None:
        if self._snapshot is not None:
            self._snapshot[event.chan.uniqueid] = event

    def _on_core_show_complete(self, event: ev.CoreShowChannelsComplete, at: datetime,
                               out: list[CallEvent]) -> None:
        if self._snapshot is not None:
            out.extend(self.end_snapshot(at))


_Handler = Callable[[CallTracker, Any, datetime, list[CallEvent]], None]
_HANDLERS: dict[type, _Handler] = {
    ev.NewChannel: CallTracker._on_newchannel,
    ev.ChannelUpdate: CallTracker._on_update,
    ev.VarSet: CallTracker._on_varset,
    ev.Hangup: CallTracker._on_hangup,
    ev.QueueCallerJoin: CallTracker._on_queue_join,
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
