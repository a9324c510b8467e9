"""Unit tests of the pure call tracker: reconciliation, restore after a restart, PBX restart."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from telephony.callevents import CallAnswered, CallEnded, CallStarted
from telephony.events import parse_event
from telephony.routing import Routing
from telephony.tracker import CallTracker

AT = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)
DID = "88007070561"
CALLER = {"Channel": "PJSIP/mts-trunk-00000000", "Uniqueid": "1795580315.0",
          "Linkedid": "1795580315.0", "CallerIDNum": "+79161234567", "Context": "from-trunk",
          "Exten": DID, "ChannelState": "6"}
AGENT = {"Channel": "PJSIP/101-00000001", "Uniqueid": "1795580315.1",
         "Linkedid": "1795580315.0", "CallerIDNum": "101", "Context": "from-operators",
         "Exten": "", "ChannelState": "6"}


def tracker() -> CallTracker:
    return CallTracker(Routing(frozenset({DID}), frozenset({"201"}), {"88001002030": "SMO1"}))


def feed(t: CallTracker, event: str, **headers: Any) -> list[Any]:
    parsed = parse_event({"Event": event, **headers})
    assert parsed is not None
    return t.handle(parsed, AT)


def listing(t: CallTracker, rows: list[tuple[dict[str, str], str]]) -> list[Any]:
    t.begin_snapshot()
    out: list[Any] = []
    for chan, bridge in rows:
        out += feed(t, "CoreShowChannel", **chan, BridgeId=bridge, Application="Queue")
    out += feed(t, "CoreShowChannelsComplete", ListItems=str(len(rows)))
    return out


def test_inbound_call_starts_and_ends() -> None:
    t = tracker()
    (started,) = feed(t, "Newchannel", **CALLER)
    assert isinstance(started, CallStarted) and started.caller_number == "+79161234567"
    out = feed(t, "Hangup", **CALLER, Cause="16")
    assert [type(e).__name__ for e in out] == ["LegEnded", "CallEnded"]
    assert out[-1].outcome == "abandoned"
    assert not t.active_calls


def test_restored_call_still_alive_is_not_ended_by_the_first_snapshot() -> None:
    """After a service restart the restored call has no legs yet: the snapshot shows it alive."""
    t = tracker()
    t.restore(CALLER["Linkedid"], "inbound", [])
    out = listing(t, [(CALLER, "")])
    assert not [e for e in out if isinstance(e, CallEnded)]
    assert not [e for e in out if isinstance(e, CallStarted)]  # already in the journal
    assert len(t.active_calls) == 1
    out = feed(t, "Hangup", **CALLER, Cause="16")
    assert isinstance(out[-1], CallEnded) and out[-1].reason == "hangup"


def test_restored_call_gone_from_the_snapshot_is_closed_out() -> None:
    t = tracker()
    t.restore(CALLER["Linkedid"], "inbound", ["101"])
    out = listing(t, [])
    (ended,) = [e for e in out if isinstance(e, CallEnded)]
    assert (ended.outcome, ended.reason) == ("answered", "reconciled")


def test_answer_seen_only_in_the_snapshot_whatever_the_listing_order() -> None:
    for rows in ([(CALLER, "b1"), (AGENT, "b1")], [(AGENT, "b1"), (CALLER, "b1")]):
        t = tracker()
        feed(t, "Newchannel", **CALLER)
        out = listing(t, rows)
        answered = [e for e in out if isinstance(e, CallAnswered)]
        assert [a.extension for a in answered] == ["101"], rows


def test_call_started_while_blind_is_adopted_from_the_snapshot() -> None:
    t = tracker()
    out = listing(t, [(CALLER, "")])
    (started,) = [e for e in out if isinstance(e, CallStarted)]
    assert started.linkedid == CALLER["Linkedid"] and started.line == DID


def test_asterisk_restart_ends_open_calls() -> None:
    t = tracker()
    feed(t, "FullyBooted", Uptime="100")
    feed(t, "Newchannel", **CALLER)
    out = feed(t, "FullyBooted", Uptime="0")
    (ended,) = [e for e in out if isinstance(e, CallEnded)]
    assert ended.reason == "pbx_restart"
    assert not t.active_calls and not t.legs


def test_hangup_of_an_unknown_channel_is_counted_not_fatal() -> None:
    t = tracker()
    assert feed(t, "Hangup", **AGENT, Cause="16") == []
    assert t.unknown_channel_events == 1


def test_same_trace_same_events() -> None:
    """Determinism: the same input twice yields equal call events."""
    runs = []
    for _ in range(2):
        t = tracker()
        out = feed(t, "Newchannel", **CALLER) + feed(t, "Newchannel", **AGENT)
        out += listing(t, [(CALLER, "b"), (AGENT, "b")])
        out += feed(t, "Hangup", **AGENT, Cause="16") + feed(t, "Hangup", **CALLER, Cause="16")
        runs.append(out)
    assert runs[0] == runs[1]
