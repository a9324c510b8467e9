"""A tiny writer of hand-made AMI traces in the recorded-trace format (trace.jsonl).

Used by build_shapes.py to (re)generate the fixtures under tests/shapes/. It knows the header
sets Asterisk puts on channel and bridge events (main/manager_channels.c
ast_manager_build_channel_state_string_prefix, main/manager_bridges.c
ast_manager_build_bridge_state_string_prefix — identical in 13.38.3 and 22.10.1) and the
version differences that matter (13: no DialState, Newexten in the ``call`` class).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}


@dataclass
class Ch:
    """Mutable channel state; ``snap`` renders the snapshot headers with an optional prefix."""

    name: str
    uniqueid: str
    linkedid: str
    cid_num: str
    cid_name: str = "<unknown>"
    context: str = ""
    exten: str = "s"
    priority: int = 1
    state: int = 0
    conn_num: str = "<unknown>"
    conn_name: str = "<unknown>"
    language: str = "ru"
    accountcode: str = ""

    def snap(self, prefix: str = "") -> list[tuple[str, str]]:
        p = prefix
        return [
            (f"{p}Channel", self.name), (f"{p}ChannelState", str(self.state)),
            (f"{p}ChannelStateDesc", STATE_DESC[self.state]),
            (f"{p}CallerIDNum", self.cid_num or "<unknown>"),
            (f"{p}CallerIDName", self.cid_name or "<unknown>"),
            (f"{p}ConnectedLineNum", self.conn_num or "<unknown>"),
            (f"{p}ConnectedLineName", self.conn_name or "<unknown>"),
            (f"{p}Language", self.language), (f"{p}AccountCode", self.accountcode),
            (f"{p}Context", self.context), (f"{p}Exten", self.exten),
            (f"{p}Priority", str(self.priority)), (f"{p}Uniqueid", self.uniqueid),
            (f"{p}Linkedid", self.linkedid),
        ]


@dataclass
class Bridge:
    uid: str
    members: int = 0
    type: str = "basic"
    tech: str = "simple_bridge"

    def snap(self, prefix: str = "") -> list[tuple[str, str]]:
        p = prefix
        return [(f"{p}BridgeUniqueid", self.uid), (f"{p}BridgeType", self.type),
                (f"{p}BridgeTechnology", self.tech), (f"{p}BridgeCreator", "<unknown>"),
                (f"{p}BridgeName", "<unknown>"), (f"{p}BridgeNumChannels", str(self.members)),
                (f"{p}BridgeVideoSourceMode", "none")]


@dataclass
class Trace:
    """Collects events with their ``t``; drops the ones whose class the AMI user lacks."""

    name: str
    epoch: int
    version: int = 22  # 13 or 22
    classes: frozenset[str] = frozenset({"system", "call", "agent", "dialplan", "dtmf",
                                         "security", "cdr"})
    t: float = 3.0
    step: float = 0.002
    lines: list[dict[str, Any]] = field(default_factory=list)
    _counter: int = 0
    _seq: int = 0
    _bridges: int = 0
    recordings: list[str] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)

    def mark(self, key: str) -> None:
        """Remember the ``t`` of the last event written (e.g. the answer moment)."""
        self.marks[key] = round(self.t, 3)

    # ------------------------------------------------------------------ plumbing
    def wait(self, seconds: float) -> None:
        self.t += seconds

    def uid(self) -> str:
        value = f"{self.epoch}.{self._counter}"
        self._counter += 1
        return value

    def seq(self) -> str:
        value = f"{self._seq:08x}"
        self._seq += 1
        return value

    def ev(self, event: str, cls: str, *groups: list[tuple[str, str]],
           **extra: str) -> None:
        if cls not in self.classes:
            return
        self.t += self.step
        msg: list[tuple[str, str]] = [("Event", event), ("Privilege", f"{cls},all")]
        for group in groups:
            msg.extend(group)
        msg.extend((k.replace("_", "-") if k == "Cause_txt" else k, v) for k, v in extra.items())
        self.lines.append({"t": round(self.t, 3), "msg": [list(p) for p in msg]})

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        banner = "Asterisk Call Manager/2.10.6" if self.version == 13 else \
            "Asterisk Call Manager/11.0.0"
        head = [
            {"t": 0.0, "banner": banner},
            {"t": 0.001, "msg": [["Response", "Success"], ["ActionID", "rec-login-1"],
                                 ["Message", "Authentication accepted"]]},
            {"t": 0.001, "msg": [["Event", "FullyBooted"], ["Privilege", "system,all"],
                                 ["Uptime", "1"], ["LastReload", "1"],
                                 ["Status", "Fully Booted"]]},
        ]
        end = round(self.t + 1.4, 3)
        tail = [
            {"t": end, "msg": [["Response", "Goodbye"], ["ActionID", "rec-logoff"],
                               ["Message", "Thanks for all the fish."]]},
            {"t": round(end + 0.001, 3), "marker": "recorder-stop", "session": 1},
        ]
        with open(folder / "trace.jsonl", "w", encoding="utf-8") as out:
            for line in head + self.lines + tail:
                out.write(json.dumps(line, ensure_ascii=False) + "\n")

    # ------------------------------------------------------------------ channels
    def chan(self, tech_name: str, cid_num: str, linkedid: str | None = None,
             **kw: Any) -> Ch:
        """A new channel named ``<tech_name>-<seq>`` (``Local/x@ctx`` gets the ;1/;2 pair
        from ``local_pair``)."""
        uid = self.uid()
        return Ch(f"{tech_name}-{self.seq()}", uid, linkedid or uid, cid_num, **kw)

    def local_pair(self, exten: str, context: str, linkedid: str, cid_num: str,
                   cid_name: str = "<unknown>") -> tuple[Ch, Ch]:
        base = f"Local/{exten}@{context}-{self.seq()}"
        one = Ch(f"{base};1", self.uid(), linkedid, cid_num, cid_name, context, exten,
                 1, 0)
        two = Ch(f"{base};2", self.uid(), linkedid, cid_num, cid_name, context, exten,
                 1, 4)
        return one, two

    def newchannel(self, ch: Ch) -> None:
        self.ev("Newchannel", "call", ch.snap())

    def newstate(self, ch: Ch, state: int) -> None:
        ch.state = state
        self.ev("Newstate", "call", ch.snap())

    def newexten(self, ch: Ch, app: str, data: str = "", priority: int | None = None,
                 context: str | None = None, exten: str | None = None) -> None:
        if context is not None:
            ch.context = context
        if exten is not None:
            ch.exten = exten
        if priority is not None:
            ch.priority = priority
        cls = "call" if self.version == 13 else "dialplan"
        self.ev("Newexten", cls, ch.snap(), Extension=ch.exten, Application=app, AppData=data)

    def app(self, ch: Ch, app: str, data: str = "") -> None:
        """The next priority runs ``app``."""
        self.newexten(ch, app, data, priority=ch.priority + 1)

    def varset(self, ch: Ch, variable: str, value: str) -> None:
        self.ev("VarSet", "dialplan", ch.snap(), Variable=variable, Value=value)

    def newcallerid(self, ch: Ch, num: str, name: str | None = None,
                    pres: str = "0 (Presentation Allowed, Not Screened)") -> None:
        ch.cid_num = num
        if name is not None:
            ch.cid_name = name
        self.ev("NewCallerid", "call", ch.snap(), **{"CID-CallingPres": pres})

    def connected(self, ch: Ch, num: str, name: str = "<unknown>") -> None:
        ch.conn_num, ch.conn_name = num, name
        self.ev("NewConnectedLine", "call", ch.snap())

    def devstate(self, device: str, state: str) -> None:
        self.ev("DeviceStateChange", "call", Device=device, State=state)

    def hangup_request(self, ch: Ch, soft: bool = False, cause: str = "16") -> None:
        self.ev("SoftHangupRequest" if soft else "HangupRequest", "call", ch.snap(),
                Cause=cause)

    def hangup(self, ch: Ch, cause: int = 16) -> None:
        text = {16: "Normal Clearing", 26: "Answered elsewhere", 0: "Unknown",
                19: "No user responding", 17: "User busy"}[cause]
        self.ev("Hangup", "call", ch.snap(), Cause=str(cause), **{"Cause-txt": text})

    def moh(self, ch: Ch, start: bool) -> None:
        if start:
            self.ev("MusicOnHoldStart", "call", ch.snap(), Class="default")
        else:
            self.ev("MusicOnHoldStop", "call", ch.snap())

    # ------------------------------------------------------------------ dialling
    def dial_begin(self, caller: Ch | None, dest: Ch, dialstring: str) -> None:
        self.ev("DialBegin", "call", caller.snap() if caller else [], dest.snap("Dest"),
                DialString=dialstring)

    def dial_state(self, caller: Ch | None, dest: Ch, status: str = "RINGING") -> None:
        if self.version == 13:  # DialState is newer than 13 (manager_channels.c)
            return
        self.ev("DialState", "call", caller.snap() if caller else [], dest.snap("Dest"),
                DialStatus=status)

    def dial_end(self, caller: Ch | None, dest: Ch, status: str,
                 forward: str | None = None) -> None:
        extra = {"Forward": forward} if forward else {}
        self.ev("DialEnd", "call", caller.snap() if caller else [], dest.snap("Dest"),
                **extra, DialStatus=status)

    # ------------------------------------------------------------------ bridges
    def bridge(self) -> Bridge:
        self._bridges += 1
        u = uuid.uuid5(uuid.NAMESPACE_URL, f"{self.name}/{self._bridges}")
        b = Bridge(str(u))
        self.ev("BridgeCreate", "call", b.snap())
        return b

    def enter(self, b: Bridge, ch: Ch) -> None:
        b.members += 1
        self.ev("BridgeEnter", "call", b.snap(), ch.snap())

    def leave(self, b: Bridge, ch: Ch) -> None:
        b.members -= 1
        self.ev("BridgeLeave", "call", b.snap(), ch.snap())

    def destroy(self, b: Bridge) -> None:
        self.ev("BridgeDestroy", "call", b.snap())

    # ------------------------------------------------------------------ queues
    def queue_join(self, ch: Ch, queue: str, position: int = 1) -> None:
        self.ev("QueueCallerJoin", "agent", ch.snap(), Queue=queue, Position=str(position),
                Count=str(position))

    def queue_leave(self, ch: Ch, queue: str) -> None:
        self.ev("QueueCallerLeave", "agent", ch.snap(), Queue=queue, Position="1", Count="0")

    def agent(self, event: str, caller: Ch, dest: Ch, queue: str, iface: str,
              member: str, **extra: str) -> None:
        self.ev(event, "agent", caller.snap(), dest.snap("Dest"), Queue=queue,
                Interface=iface, MemberName=member, **extra)

    def member_status(self, queue: str, iface: str, member: str, status: int,
                      calls: int = 0) -> None:
        self.ev("QueueMemberStatus", "agent", Queue=queue, MemberName=member,
                Interface=iface, StateInterface=iface, Membership="static", Penalty="0",
                CallsTaken=str(calls), LastCall="0", LastPause="0",
                LoginTime=str(self.epoch - 5), InCall="0", Status=str(status), Paused="0",
                PausedReason="", Ringinuse="0", Wrapuptime="0")

    # ------------------------------------------------------------------ Local channels
    def local_bridge(self, one: Ch, two: Ch, optimization: str = "Yes") -> None:
        self.ev("LocalBridge", "call", one.snap("LocalOne"), two.snap("LocalTwo"),
                Context=two.context, Exten=two.exten, LocalOptimization=optimization)

    def lopt_begin(self, one: Ch, two: Ch, source: Ch, dest_uniqueid: str, oid: int) -> None:
        self.ev("LocalOptimizationBegin", "call", one.snap("LocalOne"), two.snap("LocalTwo"),
                source.snap("Source"), DestUniqueId=dest_uniqueid, Id=str(oid))

    def lopt_end(self, one: Ch, two: Ch, oid: int) -> None:
        self.ev("LocalOptimizationEnd", "call", one.snap("LocalOne"), two.snap("LocalTwo"),
                Success="Yes", Id=str(oid))
