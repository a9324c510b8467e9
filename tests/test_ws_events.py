"""The websocket hub over a real AMI replay: screen pops before the answer, access by role,
resume with ``last_event_id``, slow consumers cut with 4008."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import aiohttp

from journal.notes import Note
from telephony.trace import refresh_ids
from tests.conftest import TRACES_ROOT, trace_items
from tests.helpers import create_user, login, wait_for

S01 = TRACES_ROOT / "s01-answered-l1"
S04 = TRACES_ROOT / "s04-blind-transfer-l2"
S05 = TRACES_ROOT / "s05-attended-transfer-smo"
CONTRACT_KEYS = {"id", "type", "at", "request_number"}


def start_ami(services: Any) -> None:
    """Connect the service to its PBX now (it was started with connect_ami=False so that
    clients could sign in and subscribe before the first call rings)."""
    services.connect_ami()


class Client:
    """A websocket client collecting frames (with their arrival time) in the background."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                frame = json.loads(message.data)
                frame["_rx"] = time.monotonic()
                self.frames.append(frame)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] not in ("hello", "pong")]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == kind]

    async def close(self) -> None:
        await self.ws.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 2)


async def connect(harness: Any, token: str, **query: Any) -> Client:
    params = {"token": token, **{k: str(v) for k, v in query.items()}}
    ws = await harness.http.ws_connect(harness.url("/api/v1/events"), params=params)
    client = Client(ws)
    await wait_for(lambda: client.of_type("hello"), 5)
    return client


async def signed_in(harness: Any, login_name: str, role: str, **user: Any) -> str:
    await create_user(harness.services, login_name, role, **user)
    return await login(harness, login_name)


async def service_for(items: list[Any], make_settings: Any, start_service: Any,
                      replay_peer: Any, speed: float = 0, **settings: Any) -> Any:
    peer = await replay_peer(items, speed=speed)
    harness = await start_service(make_settings(ami_port=peer.port, **settings), http=True,
                                  connect_ami=False)
    harness.peer = peer
    return harness


async def operator_and_smos(harness: Any) -> tuple[Client, Client, Client]:
    """Op101 (the phone that answers s05) and the users of SMO1 (which gets the request) and
    SMO2 (which must get nothing), connected before the call."""
    operator = await connect(harness, await signed_in(harness, "op101", "operator",
                                                      extension="101"))
    smo1 = await connect(harness, await signed_in(harness, "smo1", "smo", smo="SMO1"))
    smo2 = await connect(harness, await signed_in(harness, "smo2", "smo", smo="SMO2"))
    return operator, smo1, smo2


def ended(client: Client, count: int = 1) -> Any:
    return lambda: len(client.of_type("call.ended")) >= count


async def test_screen_pop_reaches_the_ringing_operator_before_the_answer(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    items = trace_items(S01)
    # The same caller twice: the second pop carries the first request in its history.
    harness = await service_for(items + list(refresh_ids(items, 1)), make_settings,
                                start_service, replay_peer, speed=1)
    operator = await connect(harness, await signed_in(harness, "op101", "operator",
                                                      extension="101"))
    hello = operator.of_type("hello")[0]
    assert hello["user"]["login"] == "op101" and hello["server_time"]
    assert hello.keys() >= CONTRACT_KEYS
    start_ami(harness.services)
    await wait_for(ended(operator, 2), 30)

    pops = operator.of_type("call.ringing")
    assert len(pops) == 2
    for pop in pops:
        assert pop["caller_number"] == "+79161234567"
        assert pop["extension"] == "101"
        assert isinstance(pop["history"], list)
        answered = [f for f in operator.of_type("call.answered")
                    if f["request_number"] == pop["request_number"]]
        assert len(answered) == 1
        assert operator.frames.index(pop) < operator.frames.index(answered[0])
        # The phone rang ~1.08 s before it was answered (the recorded pace): the pop came
        # while it rang, not with the answer. The margin leaves room for a loaded CI machine.
        assert pop["_rx"] < answered[0]["_rx"] - 0.3
    first, second = pops
    assert first["history"] == []
    assert [h["number"] for h in second["history"]] == [first["request_number"]]
    assert {"number", "created_at", "status", "topic"} <= second["history"][0].keys()
    for frame in operator.events:
        assert frame.keys() >= CONTRACT_KEYS
        assert isinstance(frame["id"], int)
    ids = [f["id"] for f in operator.events]
    assert ids == sorted(set(ids))
    await operator.close()


async def test_smo_routing_reaches_only_that_smo(make_settings: Any, start_service: Any,
                                                 replay_peer: Any) -> None:
    harness = await service_for(trace_items(S05), make_settings, start_service, replay_peer)
    admin = await connect(harness, await signed_in(harness, "admin", "admin"))
    operator, smo1, smo2 = await operator_and_smos(harness)
    start_ami(harness.services)
    await wait_for(ended(admin), 20)
    await harness.wait_calls_done()
    await asyncio.sleep(0.2)

    (created,) = admin.of_type("request.created")
    number = created["request_number"]
    assert [f["type"] for f in admin.events][:2] == ["request.created", "call.ringing"]
    assert smo2.events == []
    routed = smo1.of_type("request.routed")
    assert [(f["request_number"], f["level"], f["smo"]) for f in routed] == \
        [(number, "smo", "SMO1")]
    assert "call.ringing" not in {f["type"] for f in smo1.events}
    assert smo1.of_type("call.ended")  # the request is SMO1's now
    # The operator: the new request, the pop, the answer, its own transfer and the notice
    # that it left; nothing after the request went to the SMO.
    kinds = [f["type"] for f in operator.events]
    assert kinds[:2] == ["request.created", "call.ringing"] and "call.answered" in kinds
    assert "call.transferred" in kinds and kinds[-1] == "request.routed"
    assert "call.ended" not in kinds
    for client in (admin, operator, smo1, smo2):
        await client.close()


async def test_level2_operator_gets_its_own_screen_pop(make_settings: Any, start_service: Any,
                                                       replay_peer: Any) -> None:
    harness = await service_for(trace_items(S04), make_settings, start_service, replay_peer)
    op101 = await connect(harness, await signed_in(harness, "op101", "operator",
                                                   extension="101"))
    op201 = await connect(harness, await signed_in(harness, "op201", "operator",
                                                   extension="201"))
    start_ami(harness.services)
    await wait_for(ended(op201), 20)
    pops = {f["extension"]: f for c in (op101, op201) for f in c.of_type("call.ringing")}
    assert pops["201"]["request_number"] == pops["101"]["request_number"]
    assert "201" in {f["extension"] for f in op201.of_type("call.ringing")}
    routed = op201.of_type("request.routed")
    assert routed and routed[0]["level"] == "2"
    await op101.close()
    await op201.close()


async def test_resume_with_last_event_id_sends_what_was_missed_once(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    items = trace_items(S01)
    harness = await service_for(items + list(refresh_ids(items, 1)), make_settings,
                                start_service, replay_peer, speed=0)
    token = await signed_in(harness, "admin", "admin")
    start_ami(harness.services)
    await harness.peer.done.wait()
    pipeline = harness.services.pipeline
    await wait_for(lambda: pipeline.stats.messages >= harness.peer.stats.events_sent)
    await harness.wait_calls_done()
    await wait_for(lambda: harness.services.intake.committed_events >= pipeline.stats.call_events)
    full = await connect(harness, token, last_event_id=0)
    await wait_for(lambda: len(full.of_type("call.ended")) == 2, 5)
    every = full.events
    assert full.of_type("hello")[0]["resumed"] == len(every) >= 8
    middle = every[2]["id"]  # the first call.answered
    resumed = await connect(harness, token, last_event_id=middle)
    await wait_for(lambda: len(resumed.of_type("call.ended")) == 2, 5)
    assert [f["id"] for f in resumed.events] == [f["id"] for f in every if f["id"] > middle]
    # Live events continue after the backlog, with no duplicates.
    again = list(refresh_ids(items, 2))
    peer2 = await _replay_more(harness, again)
    await wait_for(lambda: len(resumed.of_type("call.ended")) == 3, 10)
    await peer2.close()
    ids = [f["id"] for f in resumed.events]
    assert ids == sorted(set(ids))
    await full.close()
    await resumed.close()


async def _replay_more(harness: Any, items: list[Any]) -> Any:
    """Feed more AMI events straight into the running service's pipeline (no second PBX)."""
    for item in items:
        if item.is_message and not item.is_response:
            harness.services.pipeline.feed(dict(item.pairs))

    class _Done:
        async def close(self) -> None:
            return None

    return _Done()


async def test_a_slow_consumer_is_closed_with_4008(make_settings: Any, start_service: Any,
                                                   replay_peer: Any) -> None:
    from hotline.web.ws import HUB

    harness = await service_for(trace_items(S01), make_settings, start_service, replay_peer)
    harness.services.bus.queue_size = 2
    token = await signed_in(harness, "admin", "admin")
    before = harness.services.bus.subscribers
    ws = await harness.http.ws_connect(harness.url("/api/v1/events"), params={"token": token})
    hello = await ws.receive_json()
    assert hello["type"] == "hello"
    # Do not read. Whether the replay's own bursts outrun the hub depends on how intake
    # happens to batch them; a burst bigger than the 2-slot queue, published in one go (as a
    # group commit does), always overflows it.
    start_ami(harness.services)
    await harness.peer.done.wait()
    await harness.wait_calls_done()
    for _ in range(5):
        harness.services.bus.publish(Note("request.updated", "2026-01-01T00:00:00Z", 1,
                                          {"level": "1", "smo": None}))
    while True:
        message = await asyncio.wait_for(ws.receive(), 5)
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            break
    assert (message.type, message.data, message.extra) == \
        (aiohttp.WSMsgType.CLOSE, 4008, "slow consumer")
    # The hub let go of it before the close frame left.
    assert harness.services.bus.subscribers == before
    assert harness.server.app[HUB].dropped_slow == 1
    # Others are unaffected: a new connection works and resumes what it missed.
    harness.services.bus.queue_size = 1000
    client = await connect(harness, token, last_event_id=0)
    assert client.of_type("hello")[0]["resumed"] >= 4
    await client.close()


async def test_events_need_a_valid_token(make_settings: Any, start_service: Any) -> None:
    harness = await start_service(make_settings(ami_host=None), http=True)
    for params in ({}, {"token": "nonsense"}):
        async with harness.http.get(harness.url("/api/v1/events"), params=params,
                                    headers={"Upgrade": "websocket",
                                             "Connection": "Upgrade"}) as resp:
            assert resp.status == 401
    token = await signed_in(harness, "admin", "admin")
    # Bearer header and cookie work as well as ?token=.
    ws = await harness.http.ws_connect(harness.url("/api/v1/events"),
                                       headers={"Authorization": f"Bearer {token}"})
    assert (await ws.receive_json())["type"] == "hello"
    await ws.close()
    ws = await harness.http.ws_connect(harness.url("/api/v1/events"),
                                       headers={"Cookie": f"hotline_session={token}"})
    assert (await ws.receive_json())["type"] == "hello"
    await ws.close()
    # A cookie-signed socket from a foreign page is refused.
    async with harness.http.get(harness.url("/api/v1/events"),
                                headers={"Cookie": f"hotline_session={token}",
                                         "Origin": "https://evil.example"}) as resp:
        assert resp.status == 403
    async with harness.http.get(harness.url("/api/v1/events"),
                                params={"token": token, "last_event_id": "x"}) as resp:
        assert resp.status == 400


async def test_a_socket_is_closed_when_its_session_ends(make_settings: Any,
                                                        start_service: Any) -> None:
    from hotline.web.ws import HUB

    harness = await start_service(make_settings(ami_host=None), http=True)
    token = await signed_in(harness, "admin", "admin")
    client = await connect(harness, token)
    async with harness.http.post(harness.url("/api/v1/auth/logout"),
                                 headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 200
    await harness.server.app[HUB].revalidate()
    await asyncio.wait_for(client.task, 5)
    assert client.ws.close_code == 4001


async def test_logout_closes_that_sessions_sockets_at_once(make_settings: Any,
                                                           start_service: Any) -> None:
    from hotline.web.ws import HUB

    harness = await start_service(make_settings(ami_host=None), http=True)
    harness.server.app[HUB].revalidate_every_s = 3600.0  # no periodic check to lean on
    token = await signed_in(harness, "admin", "admin")
    other = await login(harness, "admin")  # the same user on another machine
    client, kept = await connect(harness, token), await connect(harness, other)
    before = harness.services.bus.subscribers
    async with harness.http.post(harness.url("/api/v1/auth/logout"),
                                 headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 200
    await asyncio.wait_for(client.task, 2)
    assert client.ws.close_code == 4001
    assert harness.services.bus.subscribers == before - 1
    # The other session's socket stays open and still answers.
    await kept.ws.send_str("ping")
    await wait_for(lambda: kept.of_type("pong"), 2)
    assert not kept.ws.closed
    await kept.close()


async def test_hello_offers_where_to_resume_from(make_settings: Any, start_service: Any,
                                                 replay_peer: Any) -> None:
    """A page that drops before any numbered frame arrived resumes from hello's
    ``last_event_id`` and misses nothing that happened meanwhile."""
    items = trace_items(S01)
    harness = await service_for(items + list(refresh_ids(items, 1)), make_settings,
                                start_service, replay_peer, speed=0)
    token = await signed_in(harness, "admin", "admin")
    start_ami(harness.services)
    await harness.peer.done.wait()
    await harness.wait_calls_done()
    first = await connect(harness, token)
    offered = first.of_type("hello")[0]["last_event_id"]
    assert isinstance(offered, int) and offered >= 8  # the two calls happened before
    assert first.events == []
    await first.close()
    # While the page is away, a third call happens.
    await _replay_more(harness, list(refresh_ids(items, 2)))
    await harness.wait_calls_done()
    again = await connect(harness, token, last_event_id=offered)
    await wait_for(lambda: again.of_type("call.ended"), 5)
    hello = again.of_type("hello")[0]
    assert hello["resumed"] == len(again.events) >= 4
    assert all(f["id"] > offered for f in again.events)
    assert again.events[0]["type"] == "request.created"
    assert hello["last_event_id"] >= max(f["id"] for f in again.events)
    await again.close()


async def test_call_events_are_judged_by_the_scope_the_intake_tells(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    """With the scope cache expiring at once, the call events of a request handed to an SMO
    still reach exactly whom they should — judged by the scope the intake attached (read in
    the transaction that wrote the note), not by a database look-up per note; and that scope
    is neither stored nor sent."""
    from sqlalchemy import select

    from hotline.web.ws import HUB
    from journal.models import Notification

    harness = await service_for(trace_items(S05), make_settings, start_service, replay_peer)
    scopes = harness.server.app[HUB].scopes
    scopes.ttl_s = 0.0
    operator, smo1, smo2 = await operator_and_smos(harness)
    start_ami(harness.services)
    await wait_for(ended(smo1), 20)
    await asyncio.sleep(0.2)

    kinds = [f["type"] for f in operator.events]
    assert kinds[:2] == ["request.created", "call.ringing"] and "call.ended" not in kinds
    assert smo1.of_type("call.ended") and smo2.events == []
    call_notes = [f for f in operator.events + smo1.events if f["type"].startswith("call.")]
    assert len(call_notes) >= 4
    # Only a routing note may need the database (its "before" scope); call events never.
    assert scopes.loads <= len(smo1.of_type("request.routed"))
    for frame in operator.events + smo1.events:
        assert not any(key.startswith("_scope") for key in frame)
    async with harness.services.db.session() as session:
        payloads = list(await session.scalars(select(Notification.payload)))
    assert payloads and all("_scope" not in (p or {}) for p in payloads)
    for client in (operator, smo1, smo2):
        await client.close()


async def test_the_ringing_phone_is_written_first_in_a_burst(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    """The hub writes a burst in slices; the connection of the phone that rings goes first,
    ahead of connections still waiting from an earlier round."""
    from hotline.web.ws import HUB

    harness = await service_for(trace_items(S01), make_settings, start_service, replay_peer)
    hub = harness.server.app[HUB]
    admin = await connect(harness, await signed_in(harness, "admin", "admin"))
    operator = await connect(harness, await signed_in(harness, "op101", "operator",
                                                      extension="101"))
    by_login = {c.user.login: c for c in hub.connections}
    hub._to_write.extend([by_login["admin"]])  # left over from an earlier round
    hub._queued_for_write.add(by_login["admin"])
    hub._order_writes([Note("call.ringing", "2026-01-01T00:00:00Z", 1, {"extension": "101"})])
    assert list(hub._urgent) == [by_login["op101"]]
    hub._order_writes([Note("call.answered", "2026-01-01T00:00:00Z", 1)])
    assert list(hub._urgent) == [by_login["op101"]]  # no duplicates
    await hub._write_slice()
    assert not hub._urgent and not hub._queued_urgent
    assert not hub._to_write and not hub._queued_for_write
    await admin.close()
    await operator.close()


async def test_under_load_pages_get_notes_in_rounds_and_the_pop_at_once(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    """Notes that follow a round within ``round_every_s`` wait for the next round and reach
    each page in one write; the page whose phone rings gets the pop at once, after what it
    had queued, in order."""
    from hotline.web.ws import HUB

    harness = await service_for(trace_items(S01), make_settings, start_service, replay_peer)
    hub = harness.server.app[HUB]
    hub.round_every_s = 2.0
    admin = await connect(harness, await signed_in(harness, "admin", "admin"))
    ringing = await connect(harness, await signed_in(harness, "adm101", "admin",
                                                     extension="101"))
    bus = harness.services.bus

    def updated() -> Note:
        return Note("request.updated", "2026-01-01T00:00:00Z", 1, {"level": "1", "smo": None})

    bus.publish(updated())  # after a quiet spell: written at once
    await wait_for(lambda: admin.events and ringing.events, 5)
    writes = hub.writes
    bus.publish(updated())
    bus.publish(Note("call.ringing", "2026-01-01T00:00:01Z", 1,
                     {"extension": "101", "caller_number": "79001234567", "level": "1"}))
    await wait_for(lambda: ringing.of_type("call.ringing"), 5)
    assert [f["type"] for f in ringing.events] == \
        ["request.updated", "request.updated", "call.ringing"]
    assert len(admin.events) == 1  # its round is not due yet
    await asyncio.sleep(1.2)  # nor does the watchdog (every second) write what waits for it
    assert len(admin.events) == 1
    await wait_for(lambda: len(admin.events) == 3, 5)
    assert [f["type"] for f in admin.events] == \
        ["request.updated", "request.updated", "call.ringing"]
    assert hub.writes == writes + 2  # two notes, one write, to each page
    await admin.close()
    await ringing.close()
