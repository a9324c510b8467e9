"""Issue 10 item 4 (memory per channel): the bench load is lazy and shaped as documented, and
the tracker forgets channels that hung up (the last tests are the lead's to turn on)."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import count
from typing import Any

from bench.load import interleave, templates
from bench.memory import ROUTING, Load, hangup_first, hostile_templates, mix
from config import load_settings
from hotline.service import routing_of
from telephony.callevents import CallEnded
from telephony.events import parse_event
from telephony.framing import headers_of
from telephony.replay import ReplayPeer
from telephony.trace import refresh_ids
from telephony.tracker import CallTracker

AT = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)


def test_interleave_takes_the_next_call_only_when_a_place_is_free() -> None:
    taken = count()

    def calls() -> Any:
        for n in range(1000):
            next(taken)
            yield [f"{n}.a", f"{n}.b"]

    stream = interleave(calls(), in_flight=3)
    assert [next(stream) for _ in range(3)] == ["0.a", "1.a", "2.a"]
    assert next(taken) == 3  # three calls read, not a thousand


def test_replay_peer_streams_one_round_without_listing_it() -> None:
    items = iter(templates()[0].items)
    peer = ReplayPeer(items)
    assert peer.items is items


def test_refresh_ids_gives_each_round_its_own_ids_and_the_same_shape() -> None:
    template = templates()[0]
    one, two = (list(refresh_ids(template.items, n)) for n in (1, 2))
    ids = [{v for i in copy for k, v in i.pairs if k == "Uniqueid"} for copy in (one, two)]
    assert ids[0] and not ids[0] & ids[1]
    assert [[k for k, _ in i.pairs] for i in one] == [[k for k, _ in i.pairs] for i in two]


def test_hangup_first_puts_each_bridge_leave_after_the_channels_hangup() -> None:
    s01 = next(t for t in templates() if t.name.startswith("s01"))
    moved = hangup_first(s01)
    assert sorted(map(id, moved.items)) == sorted(map(id, s01.items))
    hung: set[str | None] = set()
    for item in moved.items:
        if item.header("Event") == "Hangup":
            hung.add(item.header("Uniqueid"))
        if item.header("Event") == "BridgeLeave":
            assert item.header("Uniqueid") in hung


def test_the_load_counts_channels_and_stops_at_the_number_asked() -> None:
    load = Load(mix(), channels=500, in_flight=20)
    streamed = sum(1 for _ in load.stream())
    assert streamed > 0
    assert 500 <= load.seen < 500 + max(t.channels for t in load.pool)
    assert load.requests > 0


# ----------------------------------------------------------------- the tracker (lead's part)
def _run(templates_: list[Any], copies: int) -> tuple[CallTracker, list[Any]]:
    tracker = CallTracker(routing_of(load_settings(**ROUTING)))
    out: list[Any] = []
    for template in templates_:
        for n in range(1, copies + 1):
            for item in refresh_ids(template.items, n):
                event = parse_event(headers_of(item.pairs))
                if event is not None:
                    out += tracker.handle(event, AT)
    return tracker, out


def test_local_channel_events_after_hangup_leave_no_leg_and_the_call_ends() -> None:
    # s21/s22/s24 as recorded: Asterisk sends NewCallerid for a Local channel after its Hangup.
    pool = [t for t in templates() if t.name[:3] in ("s21", "s22", "s24")]
    tracker, out = _run(pool, copies=20)
    assert (len(tracker.legs), len(tracker.calls)) == (0, 0)
    assert sum(type(e) is CallEnded for e in out) == 3 * 20


def test_bridge_leave_dial_end_and_varset_after_hangup_leave_nothing() -> None:
    by_prefix = {t.name[:3]: t for t in templates()}
    pool = [hangup_first(by_prefix[p]) for p in ("s01", "s04", "s05", "s10")]
    tracker, out = _run([*pool, *hostile_templates()], copies=20)
    assert (len(tracker.legs), len(tracker.calls), len(tracker.bridges)) == (0, 0, 0)
    assert sum(type(e) is CallEnded for e in out) == 3 * 20  # s01, s04, s05: one request each
