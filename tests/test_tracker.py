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
    return CallTracker(Routing(frozenset({DID}), frozenset({"201", "7001"}),
                               {"88001002030": "SMO1"}))


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


def test_events_after_hangup_do_not_bring_a_channel_back() -> None:
    """Asterisk sends a NewCallerid after the Hangup of a Local half (s21, s22, s24): the
    tracker must not keep a leg (and a call) for it forever."""
    t = tracker()
    feed(t, "Newchannel", **AGENT)
    feed(t, "Hangup", **AGENT, Cause="16")
    assert feed(t, "NewCallerid", **AGENT) == []
    assert not t.legs and not t.calls


def test_hung_up_channels_are_remembered_for_a_bounded_time() -> None:
    from datetime import timedelta

    from telephony import tracker as tracker_module

    t = tracker()
    for i in range(50):
        chan = {**AGENT, "Uniqueid": f"1795580315.{i + 10}", "Linkedid": f"1795580315.{i + 10}"}
        parsed = parse_event({"Event": "Newchannel", **chan})
        assert parsed is not None
        t.handle(parsed, AT + timedelta(seconds=i * 10))
        parsed = parse_event({"Event": "Hangup", **chan, "Cause": "16"})
        assert parsed is not None
        t.handle(parsed, AT + timedelta(seconds=i * 10))
    assert not t.legs and not t.calls
    assert len(t.gone) <= tracker_module.GONE_KEEP_S / 10 + 1


def test_an_answered_caller_redirected_to_a_queue_is_a_blind_transfer() -> None:
    """AMI Redirect sends no transfer event: the answered caller leaves the bridge and queues
    anew (main/manager.c action_redirect → ast_async_goto)."""
    from telephony.callevents import CallTransferred

    t = tracker()
    feed(t, "Newchannel", **CALLER)
    feed(t, "Newchannel", **AGENT)
    feed(t, "BridgeEnter", **AGENT, BridgeUniqueid="b1")
    out = feed(t, "BridgeEnter", **CALLER, BridgeUniqueid="b1")
    (answered,) = [e for e in out if isinstance(e, CallAnswered)]
    assert answered.extension == "101"
    feed(t, "BridgeLeave", **CALLER, BridgeUniqueid="b1")
    out = feed(t, "QueueCallerJoin", **{**CALLER, "Context": "from-operators",
                                        "Exten": "7001"}, Queue="l2-operators")
    (transfer,) = [e for e in out if isinstance(e, CallTransferred)]
    assert (transfer.kind, transfer.from_extension, transfer.to, transfer.target) == (
        "blind", "101", "7001", "l2")


def test_dial_strings_tell_phones_from_trunks() -> None:
    from telephony.routing import parse_dial

    assert parse_dial("101").dialled == "101" and not parse_dial("101").trunk
    assert not parse_dial("PJSIP/101").trunk
    assert not parse_dial("101/sip:101@10.0.0.5:5060").trunk
    for dial in ("89161112233@mts-trunk", "SIP/mts-trunk/89161112233", "g1/89161112233",
                 "mts/sip:89161112233@carrier.example", "IAX2/trunk/89161112233"):
        target = parse_dial(dial)
        assert target.trunk and target.dialled == "89161112233", dial


def test_live_call_named_before_its_listing_row_is_still_adopted() -> None:
    """The kill-mid-burst race: after a restart, an event of a live call (here its BridgeEnter)
    can arrive after login but before the call's CoreShowChannel row; the row must still
    start the request (it used to be skipped as "already known")."""
    t = tracker()
    t.begin_snapshot()
    assert feed(t, "BridgeEnter", **CALLER, BridgeUniqueid="b1") == []
    out = listing(t, [(CALLER, "b1"), (AGENT, "b1")])
    (started,) = [e for e in out if isinstance(e, CallStarted)]
    assert started.linkedid == CALLER["Linkedid"]
    assert [e.extension for e in out if isinstance(e, CallAnswered)] == ["101"]


def test_late_event_of_a_channel_gone_before_the_listing_does_not_keep_the_call_open() -> None:
    """Issue 14, kill after a Local half's Hangup: Asterisk sends a NewCallerid after that
    Hangup. A restarted service never saw the Hangup (nor the channel: the listing no longer
    shows it); the late event must not bring the channel back, or the call never ends."""
    ghost = {**AGENT, "Channel": "Local/101@ext-local-00000000;1", "Uniqueid": "1795580315.7"}
    t = tracker()
    t.restore(CALLER["Linkedid"], "inbound", ["101"])
    listing(t, [(CALLER, "b1"), (AGENT, "b1")])
    assert feed(t, "NewCallerid", **ghost) == []
    feed(t, "Hangup", **AGENT, Cause="16")
    out = feed(t, "Hangup", **CALLER, Cause="16")
    (ended,) = [e for e in out if isinstance(e, CallEnded)]
    assert (ended.outcome, ended.reason) == ("answered", "hangup")
    assert not t.active_calls and not t.legs


def test_a_channel_named_before_the_listing_completes_is_still_taken_from_it() -> None:
    """The other side of the rule above: events that arrive between the login and the end of
    the listing may name channels; the listing decides which of them exist."""
    t = tracker()
    t.begin_snapshot()
    feed(t, "NewCallerid", **AGENT)
    out = listing(t, [(CALLER, "b1"), (AGENT, "b1")])
    assert [e.extension for e in out if isinstance(e, CallAnswered)] == ["101"]
    assert set(t.legs) == {CALLER["Uniqueid"], AGENT["Uniqueid"]}


FOLLOW_ME_LOCAL = {**AGENT, "Channel": "Local/FMGL-89161112233@from-internal-00000001;1",
                   "Uniqueid": "1795580315.3", "Context": "from-internal",
                   "Exten": "FMGL-89161112233"}
FOLLOW_ME_DIALLER = {**FOLLOW_ME_LOCAL, "Uniqueid": "1795580315.4", "Exten": "s",
                     "Channel": "Local/FMGL-89161112233@from-internal-00000001;2",
                     "Context": "macro-dialout-trunk"}
MOBILE = {**AGENT, "Channel": "PJSIP/mts-trunk-00000002", "Uniqueid": "1795580315.5",
          "CallerIDNum": "s", "Context": "from-trunk", "Exten": "s", "ChannelState": "6"}


def test_outside_number_of_a_dial_answered_while_dead_comes_from_the_listed_dial() -> None:
    """As below, but the mobile answered before the restart: the listing shows it bridged."""
    from telephony.callevents import CallAnsweredElsewhere

    t = tracker()
    t.restore(CALLER["Linkedid"], "inbound", [])
    t.begin_snapshot()
    out: list[Any] = []
    for chan, bridge, app, data in (
            (CALLER, "b1", "Dial", "Local/FMGL-89161112233@from-internal/n"),
            (FOLLOW_ME_LOCAL, "b1", "AppDial", "(Outgoing Line)"),
            (FOLLOW_ME_DIALLER, "b2", "Dial", "PJSIP/89161112233@mts-trunk,300,Tr"),
            (MOBILE, "b2", "AppDial", "(Outgoing Line)")):
        out += feed(t, "CoreShowChannel", **chan, BridgeId=bridge, Application=app,
                    ApplicationData=data)
    out += feed(t, "CoreShowChannelsComplete", ListItems="4")
    (answer,) = [e for e in out if isinstance(e, CallAnsweredElsewhere)]
    assert answer.number == "89161112233"


def test_outside_number_after_a_restart_between_answer_and_bridge() -> None:
    """Killed after the mobile's DialEnd ANSWER, before its BridgeEnter: the number comes
    from the dialler the answering leg is bridged with."""
    from telephony.callevents import CallAnsweredElsewhere

    t = tracker()
    t.restore(CALLER["Linkedid"], "inbound", [])
    t.begin_snapshot()
    for chan, app, data in ((CALLER, "Dial", "Local/FMGL-89161112233@from-internal/n"),
                            (FOLLOW_ME_LOCAL, "AppDial", "(Outgoing Line)"),
                            (FOLLOW_ME_DIALLER, "Dial", "PJSIP/89161112233@mts-trunk,300,Tt"),
                            (MOBILE, "AppDial", "(Outgoing Line)")):
        feed(t, "CoreShowChannel", **chan, BridgeId="", Application=app, ApplicationData=data)
    feed(t, "CoreShowChannelsComplete", ListItems="4")
    out = feed(t, "BridgeEnter", **MOBILE, BridgeUniqueid="b2")
    out += feed(t, "DialEnd", **{f"Dest{k}": v for k, v in FOLLOW_ME_LOCAL.items()}, **CALLER,
                DialStatus="ANSWER")
    out += feed(t, "BridgeEnter", **FOLLOW_ME_DIALLER, BridgeUniqueid="b2")
    (answer,) = [e for e in out if isinstance(e, CallAnsweredElsewhere)]
    assert answer.number == "89161112233"


def test_outside_number_after_a_restart_mid_dial_comes_from_the_listed_dial() -> None:
    """Issue 14, s22 killed while follow-me rings the mobile: the restarted service never saw
    the DialBegin that named 89161112233; the listing's ApplicationData of the channel running
    Dial() names it, so the answer is still recorded as that number, not as "mts-trunk"."""
    from telephony.callevents import CallAnsweredElsewhere

    local1 = {**AGENT, "Channel": "Local/FMGL-89161112233@from-internal-00000001;1",
              "Uniqueid": "1795580315.3", "Context": "from-internal",
              "Exten": "FMGL-89161112233"}
    dialler = {**local1, "Channel": "Local/FMGL-89161112233@from-internal-00000001;2",
               "Uniqueid": "1795580315.4", "Context": "macro-dialout-trunk", "Exten": "s"}
    mobile = {**AGENT, "Channel": "PJSIP/mts-trunk-00000002", "Uniqueid": "1795580315.5",
              "CallerIDNum": "s", "Context": "from-trunk", "Exten": "s", "ChannelState": "5"}
    t = tracker()
    t.restore(CALLER["Linkedid"], "inbound", [])
    t.begin_snapshot()
    for chan, app, data in ((CALLER, "Dial", "Local/FMGL-89161112233@from-internal/n"),
                            (local1, "AppDial", "(Outgoing Line)"),
                            (dialler, "Dial", "PJSIP/89161112233@mts-trunk,300,Tr"),
                            (mobile, "AppDial", "(Outgoing Line)")):
        feed(t, "CoreShowChannel", **chan, BridgeId="", Application=app, ApplicationData=data)
    feed(t, "CoreShowChannelsComplete", ListItems="4")

    def dial_end(caller: dict[str, str], dest: dict[str, str]) -> list[Any]:
        return feed(t, "DialEnd", **{f"Dest{k}": v for k, v in dest.items()}, **caller,
                    DialStatus="ANSWER")

    out = dial_end(dialler, mobile) + dial_end(CALLER, local1)
    for chan, bridge in ((dialler, "b2"), (mobile, "b2"), (local1, "b1"), (CALLER, "b1")):
        out += feed(t, "BridgeEnter", **chan, BridgeUniqueid=bridge)
    (answer,) = [e for e in out if isinstance(e, CallAnsweredElsewhere)]
    assert answer.number == "89161112233"
