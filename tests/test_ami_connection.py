"""The AMI client against a real TCP peer: authentication failure, back-off, ping timeout,
resync after login. States and attempt counts are checked, never the clock."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from telephony.ami import AmiClient
from tests.conftest import AMI_SECRET, scenario_dirs, trace_items
from tests.helpers import wait_for

S01 = next(s for s in scenario_dirs() if s.name.startswith("s01"))


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_wrong_secret_stops_with_auth_failed_on_healthz(make_settings: Any,
                                                              start_service: Any,
                                                              replay_peer: Any) -> None:
    peer = await replay_peer(trace_items(S01))
    settings = make_settings(ami_port=peer.port, ami_secret="not-the-secret",
                             ami_backoff_max_s=0.05)
    harness = await start_service(settings, http=True)
    services = harness.services
    assert services.ami is not None
    await wait_for(lambda: services.ami.state == "auth_failed")
    task = services.ami._task
    assert task is not None
    await asyncio.wait_for(task, 5)  # run() returned: no retry loop
    assert peer.stats.logins_refused == 1 and peer.stats.sessions == 1
    async with harness.http.get(harness.url("/healthz")) as resp:
        body = await resp.json()
    assert body["ami"]["state"] == "auth_failed"
    assert "not-the-secret" not in str(body)


async def test_peer_not_listening_backs_off_exponentially_with_jitter() -> None:
    client = AmiClient(host="127.0.0.1", port=free_port(), username="journal",
                       secret=AMI_SECRET, event_sink=lambda _h: None,
                       backoff_initial_s=0.002, backoff_max_s=0.05)
    client.start()
    try:
        await wait_for(lambda: client.attempts >= 10)
        assert client.state in ("reconnecting", "connecting")
        assert client.logins == 0 and client.connects == 0
        assert client.last_error and "ConnectionRefused" in client.last_error
        delays = client.recent_delays
    finally:
        await client.stop()
    assert client.state == "stopped"
    for attempt, delay in enumerate(delays[:10]):
        ceiling = min(0.05, 0.002 * 2 ** attempt)
        assert ceiling * 0.5 <= delay <= ceiling, (attempt, delay)
    assert max(delays) <= 0.05
    assert delays[5] > delays[0]  # it grows
    assert len(set(delays)) == len(delays)  # jittered, not a fixed step


async def test_unanswered_ping_reconnects(replay_peer: Any) -> None:
    peer = await replay_peer(trace_items(S01), answer_pings=False)
    logins: list[int] = []
    client = AmiClient(host="127.0.0.1", port=peer.port, username="journal", secret=AMI_SECRET,
                       event_sink=lambda _h: None, on_login=lambda: logins.append(1),
                       ping_interval_s=0.05, ping_timeout_s=0.1, backoff_max_s=0.02)
    client.start()
    try:
        await wait_for(lambda: client.logins >= 3)
        assert peer.stats.sessions >= 3
        pings = [a for a in peer.stats.actions if a.get("Action") == "Ping"]
        assert pings
    finally:
        await client.stop()
    assert client.state == "stopped"
    assert len(logins) >= 3


async def test_answered_pings_keep_one_session(replay_peer: Any) -> None:
    peer = await replay_peer(trace_items(S01))
    client = AmiClient(host="127.0.0.1", port=peer.port, username="journal", secret=AMI_SECRET,
                       event_sink=lambda _h: None, ping_interval_s=0.02, ping_timeout_s=1.0,
                       backoff_max_s=0.02)
    client.start()
    try:
        await peer.done.wait()
        await wait_for(lambda: len([a for a in peer.stats.actions
                                    if a.get("Action") == "Ping"]) >= 10)
        assert client.logins == 1 and client.state == "connected"
        assert peer.stats.sessions == 1
    finally:
        await client.stop()


async def test_every_login_asks_for_core_show_channels(replay_peer: Any) -> None:
    peer = await replay_peer(trace_items(S01), drops=[20, 60])
    client = AmiClient(host="127.0.0.1", port=peer.port, username="journal", secret=AMI_SECRET,
                       event_sink=lambda _h: None, backoff_max_s=0.02)
    client.start()
    try:
        await peer.done.wait()
        await wait_for(lambda: client.logins == 3)

        def resynced_after_last_login() -> bool:
            # A drop may beat an earlier session's request; the last session must ask.
            names = [a.get("Action") for a in peer.stats.actions]
            last_login = len(names) - 1 - names[::-1].index("Login")
            return "CoreShowChannels" in names[last_login:]

        await wait_for(resynced_after_last_login)
        assert [a.get("Action") for a in peer.stats.actions].count("Login") == 3
    finally:
        await client.stop()


async def test_secret_never_in_repr() -> None:
    client = AmiClient(host="pbx", port=5038, username="journal", secret="s3cr3t-value",
                       event_sink=lambda _h: None)
    assert "s3cr3t-value" not in repr(client)
    assert "s3cr3t-value" not in str(vars(client).get("state"))


async def test_stop_while_connecting_is_prompt() -> None:
    """stop() during the back-off or the connect returns and leaves the client stopped."""
    client = AmiClient(host="127.0.0.1", port=free_port(), username="journal",
                       secret=AMI_SECRET, event_sink=lambda _h: None, backoff_max_s=0.01)
    client.start()
    await wait_for(lambda: client.attempts >= 1)
    await asyncio.wait_for(client.stop(), 5)
    assert client.state == "stopped"
