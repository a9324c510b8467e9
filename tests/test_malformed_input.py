"""Malformed AMI input over the real TCP path: logged and skipped, the service stays up, and
the real calls that follow are still recorded exactly."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from panoramisk import Manager

from telephony.ami import AmiClient
from telephony.framing import MAX_MESSAGE_BYTES
from telephony.replay import ReplayPeer
from telephony.trace import TraceItem, refresh_ids
from tests.conftest import AMI_SECRET, load_meta, scenario_dirs, service_env, trace_items
from tests.helpers import wait_for
from tests.test_reconnect_and_restart import assert_journal_matches, journal_rows

SCENARIOS = {s.name[:3]: s for s in scenario_dirs()}
NAME = "Иванова Мария Петровна"

GHOST = (b"Channel: PJSIP/ghost-0000abcd\r\nUniqueid: 1700000000.99\r\n"
         b"Linkedid: 1700000000.99\r\nContext: from-trunk\r\nExten: 88007070561\r\n")
GARBAGE = {
    "garbage lines": b"\x00\x01 not an AMI line at all\r\nanother one\r\n\r\n",
    "frame without Event": b"Foo: bar\r\nBaz: 1\r\n\r\n",
    "huge header": b"Event: VarSet\r\nVariable: MIXMONITOR_FILENAME\r\nValue: "
                   + b"x" * (MAX_MESSAGE_BYTES + 1000) + b"\r\n\r\n",
    "non-UTF-8": b"Event: UserEvent\r\nUserEvent: Test\r\nData: \xff\xfe\xc3\r\n\r\n",
    "unknown event": b"Event: BrandNewEventType\r\nPrivilege: call,all\r\nFoo: 1\r\n\r\n",
    "unknown channel hangup": b"Event: Hangup\r\n" + GHOST + b"Cause: 16\r\n\r\n",
    "unknown channel hold": b"Event: Hold\r\n" + GHOST + b"\r\n",
    "unknown channel agent": b"Event: AgentConnect\r\n" + GHOST
                             + b"DestChannel: PJSIP/101-0000abcd\r\nDestUniqueid: 1700000000.98\r\n"
                               b"DestLinkedid: 1700000000.99\r\nInterface: PJSIP/101\r\n\r\n",
    "known event without Uniqueid": b"Event: Hangup\r\nChannel: PJSIP/x-00000001\r\n"
                                    b"Cause: 16\r\n\r\n",
    "Event header repeated": b"Event: Hangup\r\nEvent: Newchannel\r\nUniqueid: 1.1\r\n\r\n",
    "bad numbers": b"Event: FullyBooted\r\nUptime: soon\r\n\r\nEvent: QueueCallerAbandon\r\n"
                   + GHOST + b"HoldTime: abc\r\nQueue: q\r\n\r\n",
    "lone CRLFs": b"\r\n\r\n\r\n\r\n",
}


def two_calls() -> tuple[list[TraceItem], dict[str, Any]]:
    """s01 then s02 (fresh ids), and their combined ground truth."""
    first, second = SCENARIOS["s01"], SCENARIOS["s02"]
    items = trace_items(first) + list(refresh_ids(trace_items(second), 1))
    meta = load_meta(first)
    meta2 = load_meta(second)
    combined = dict(meta, calls=meta["calls"] + meta2["calls"],
                    expected_journal_requests=meta["expected_journal_requests"]
                    + meta2["expected_journal_requests"])
    return items, combined


async def test_garbage_is_skipped_and_the_calls_are_recorded(make_settings: Any,
                                                             start_service: Any,
                                                             replay_peer: Any) -> None:
    items, meta = two_calls()
    # Spread the garbage over the stream: before, inside and between the real calls.
    inject = {index * 9: data for index, data in enumerate(GARBAGE.values())}
    peer = await replay_peer(items, inject=inject)
    settings = make_settings(ami_port=peer.port, **service_env(meta))
    harness = await start_service(settings)
    await peer.done.wait()
    await harness.wait_calls_done()
    services = harness.services
    assert_journal_matches(await journal_rows(services), meta)
    assert services.ami is not None and services.ami.state == "connected"
    assert services.ami.logins == 1  # nothing cut the session
    stats = services.pipeline.stats
    assert stats.malformed >= 2 and stats.errors == 0
    assert services.tracker.unknown_channel_events >= 1
    health = services.health()
    assert health["ami"]["state"] == "connected"


class SplittingPeer(ReplayPeer):
    """Writes every flush in two TCP segments, cut inside the first Cyrillic character.

    Action replies that come in between are held back, as Asterisk never interleaves messages.
    """

    _held: list[tuple[Any, Any]] | None = None

    def _send(self, session: Any, pairs: Any) -> None:
        if self._held is not None:
            self._held.append((session, pairs))
        else:
            super()._send(session, pairs)

    async def _flush(self, pending: bytearray) -> None:
        cut = pending.find(NAME.encode("utf-8"))
        if cut < 0 or self._session is None:
            await super()._flush(pending)
            return
        cut += 1  # between the two bytes of "И"
        session = self._session
        self._held = []
        session.writer.write(bytes(pending[:cut]))
        await session.writer.drain()
        await asyncio.sleep(0.05)  # a separate read on the client side
        session.writer.write(bytes(pending[cut:]))
        pending.clear()
        held, self._held = self._held, None
        for target, pairs in held:
            super()._send(target, pairs)
        await session.writer.drain()


def with_cyrillic_name(items: list[TraceItem]) -> list[TraceItem]:
    """The trace with the caller's CallerIDName in Cyrillic on every event."""
    return [TraceItem(i.t, pairs=tuple((k, NAME if k == "CallerIDName" else v)
                                       for k, v in i.pairs), banner=i.banner, marker=i.marker)
            for i in items]


def newchannel_only(items: list[TraceItem]) -> list[TraceItem]:
    """Banner, login block and the first Newchannel: a one-event stream to compare readers."""
    head = [i for i in items[:3]]
    first = next(i for i in items if i.header("Event") == "Newchannel")
    return [*head, first]


async def test_cyrillic_name_split_across_tcp_reads_survives_our_reader() -> None:
    items = newchannel_only(with_cyrillic_name(trace_items(SCENARIOS["s01"])))
    peer = SplittingPeer(items, speed=0, secret=AMI_SECRET)
    await peer.start()
    seen: list[dict[str, Any]] = []
    client = AmiClient(host="127.0.0.1", port=peer.port, username="journal",
                       secret=AMI_SECRET, event_sink=seen.append, backoff_max_s=0.05)
    client.start()
    try:
        await wait_for(lambda: any(h.get("Event") == "Newchannel" for h in seen))
    finally:
        await client.stop()
        await peer.close()
    (event,) = [h for h in seen if h.get("Event") == "Newchannel"]
    assert event["CallerIDName"] == NAME


async def test_panoramisk_own_protocol_mangles_the_split_name() -> None:
    """The trap this code exists for (DESIGN §3): panoramisk 1.4 decodes chunk by chunk."""
    items = newchannel_only(with_cyrillic_name(trace_items(SCENARIOS["s01"])))
    peer = SplittingPeer(items, speed=0, secret=AMI_SECRET)
    await peer.start()
    seen: list[Any] = []
    manager = Manager(host="127.0.0.1", port=peer.port, username="journal", secret=AMI_SECRET,
                      ping_delay=10**6, reconnect_timeout=10**6, encoding="utf-8")
    manager.register_event("Newchannel", lambda _m, event: seen.append(event))
    try:
        await manager.connect()
        await wait_for(lambda: bool(seen))
    finally:
        with contextlib.suppress(Exception):
            manager.close()
        await peer.close()
    assert seen[0]["CallerIDName"] != NAME  # a byte of "И" was dropped


async def test_cyrillic_names_through_the_service(make_settings: Any, start_service: Any,
                                                  replay_peer: Any) -> None:
    """The whole service on the split stream: the call is recorded as usual."""
    scenario = SCENARIOS["s01"]
    meta = load_meta(scenario)
    peer = SplittingPeer(with_cyrillic_name(trace_items(scenario)), speed=0, secret=AMI_SECRET)
    await peer.start()
    try:
        settings = make_settings(ami_port=peer.port, **service_env(meta))
        harness = await start_service(settings)
        await peer.done.wait()
        await harness.wait_calls_done()
        assert_journal_matches(await journal_rows(harness.services), meta)
    finally:
        await peer.close()


async def test_an_event_sink_that_raises_does_not_drop_the_session(replay_peer: Any) -> None:
    """A bug downstream must not kill the AMI session (panoramisk's callbacks could)."""
    items = trace_items(SCENARIOS["s01"])
    peer = await replay_peer(items)
    seen: list[str] = []

    def sink(headers: dict[str, Any]) -> None:
        seen.append(str(headers.get("Event")))
        if len(seen) % 3 == 0:
            raise RuntimeError("downstream bug")

    client = AmiClient(host="127.0.0.1", port=peer.port, username="journal", secret=AMI_SECRET,
                       event_sink=sink, backoff_max_s=0.05)
    client.start()
    try:
        await peer.done.wait()
        # Events may be read before the session coroutine notes the login: wait for both.
        await wait_for(lambda: client.logins == 1 and seen.count("Hangup") >= 2)
        assert client.logins == 1 and client.state == "connected"
    finally:
        await client.stop()
