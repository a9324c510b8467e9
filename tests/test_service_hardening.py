"""Issue 10, item 9: garbage AMI frames counted and warned about at a limited rate; slow-loris
clients cut; Secure cookies behind TLS; /healthz details for administrators only; debug logging
without SQL parameters."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog
from sqlalchemy.exc import IntegrityError

from hotline.logs import SQL_LOGGERS, setup_logging
from journal.models import User
from telephony.framing import MAX_MESSAGE_BYTES, WarningGate
from tests.conftest import load_meta, scenario_dirs, service_env, trace_items
from tests.helpers import bearer, create_user, login, wait_for

SCENARIOS = {s.name[:3]: s for s in scenario_dirs()}
needs_s01 = pytest.mark.skipif("s01" not in SCENARIOS, reason="recorded traces not available")

JUNK_LINES = b"\x00\x01\x02 not AMI\r\n\r\n"
NO_EVENT = b"Foo: bar\r\nBaz: 1\r\n\r\n"
BINARY = b"Event: UserEvent\r\nUserEvent: x\r\nData: \xff\xfe\xc3\r\n\r\n"
OVERSIZE = b"Event: VarSet\r\nValue: " + b"x" * (MAX_MESSAGE_BYTES + 10) + b"\r\n\r\n"


def test_warning_gate_lets_a_burst_through_then_one_line_per_interval() -> None:
    now = [0.0]
    gate = WarningGate(burst=3, interval_s=10.0, clock=lambda: now[0])
    assert [gate.allow() for _ in range(5)] == [0, 0, 0, None, None]
    now[0] = 10.0
    assert gate.allow() == 2  # the line that goes out tells how many were held back
    assert gate.allow() is None


@needs_s01
async def test_garbage_frames_are_counted_as_malformed_and_warned_about_at_a_limited_rate(
        make_settings: Any, start_service: Any, replay_peer: Any,
        capsys: pytest.CaptureFixture[str]) -> None:
    garbage = JUNK_LINES * 100 + NO_EVENT * 100 + BINARY * 100 + OVERSIZE * 3
    peer = await replay_peer(trace_items(SCENARIOS["s01"]), inject={3: garbage})
    harness = await start_service(make_settings(ami_port=peer.port,
                                                **service_env(load_meta(SCENARIOS["s01"]))))
    await peer.done.wait()
    await harness.wait_calls_done()
    services = harness.services
    assert services.ami is not None and services.ami.logins == 1
    frames = services.ami.frames
    await wait_for(lambda: frames.malformed >= 303)
    assert services.health()["pipeline"]["malformed"] >= 303
    captured = capsys.readouterr()
    lines = (captured.out + captured.err).count("ami.frame_malformed")
    assert 1 <= lines <= frames.gate.burst  # not one line per frame


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """What the server sent until it closed the connection (fails if it stays open)."""
    return await asyncio.wait_for(reader.read(), seconds)


async def test_slow_loris_clients_are_cut(make_settings: Any, start_service: Any) -> None:
    harness = await start_service(make_settings(ami_host=None, http_read_timeout_s=0.5),
                                  http=True, connect_ami=False)
    port = harness.server.port
    # Connects and never sends a byte.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await _closed_within(reader, 3) == b""
    writer.close()
    # Sends a header line every 0.1 s, never the blank line that ends them.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError):
            for n in range(100):
                writer.write(f"X-Slow-{n}: 1\r\n".encode())
                await writer.drain()
                await asyncio.sleep(0.1)

    task = asyncio.create_task(trickle())
    try:
        assert await _closed_within(reader, 3) == b""
    finally:
        task.cancel()
        writer.close()
    # Headers in time, then a body that never completes: 408 with the usual error body.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"login\"")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    body = await asyncio.wait_for(reader.readexactly(length), 3)
    writer.close()
    assert head.startswith(b"HTTP/1.1 408") and b'"request_timeout"' in body
    # An ordinary client is served as before.
    async with harness.http.get(harness.url("/healthz")) as resp:
        assert resp.status == 200


@pytest.mark.parametrize("secure", [False, True])
async def test_session_cookies_are_secure_when_configured(
        secure: bool, make_settings: Any, start_service: Any) -> None:
    harness = await start_service(make_settings(ami_host=None, cookie_secure=secure),
                                  http=True, connect_ami=False)
    await create_user(harness.services, "admin", "admin")
    async with harness.http.post(harness.url("/api/v1/auth/login"),
                                 json={"login": "admin", "password": "secret-pass-1"}) as resp:
        assert resp.status == 200
        cookies = resp.headers.getall("Set-Cookie")
    assert len(cookies) == 2
    for cookie in cookies:
        assert ("; Secure" in cookie) is secure, cookie


async def test_healthz_keeps_the_pbx_details_for_administrators(
        make_settings: Any, start_service: Any) -> None:
    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    harness = await start_service(make_settings(ami_port=port, ami_backoff_max_s=0.05),
                                  http=True)
    services = harness.services
    assert services.ami is not None
    await wait_for(lambda: services.ami.last_error is not None)
    async with harness.http.get(harness.url("/healthz")) as resp:
        assert resp.status == 200
        public = await resp.json()
    assert set(public) == {"status", "database", "ami"} and set(public["ami"]) == {"state"}
    assert str(port) not in str(public) and "127.0.0.1" not in str(public)
    await create_user(services, "admin", "admin")
    await create_user(services, "op101", "operator", extension="101")
    async with harness.http.get(harness.url("/api/v1/health"),
                                headers=bearer(await login(harness, "admin"))) as resp:
        details = await resp.json()
    assert resp.status == 200 and str(port) in str(details["ami"]["last_error"])
    assert "pipeline" in details and "intake" in details
    async with harness.http.get(harness.url("/api/v1/health"),
                                headers=bearer(await login(harness, "op101"))) as resp:
        assert resp.status == 403 and (await resp.json())["error"]["code"] == "forbidden"
    async with harness.http.get(harness.url("/api/v1/health")) as resp:
        assert resp.status == 401


async def test_debug_logging_never_writes_sql_parameters(
        make_settings: Any, start_service: Any, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    citizen = "Секретова-Анна-Петровна"
    root = logging.getLogger()
    root_level = root.level
    try:
        setup_logging("debug")
        caplog.set_level(logging.DEBUG)
        harness = await start_service(make_settings(ami_host=None), http=True,
                                      connect_ami=False)
        services = harness.services
        await create_user(services, citizen, "operator")
        # A failing statement: its error message names no parameter either.
        with pytest.raises(IntegrityError) as failure:
            async with services.db.sessions.begin() as session:
                session.add(User(login=citizen, password_hash="x", role="operator",
                                 created_at=datetime.now(UTC)))
        assert citizen not in str(failure.value)
        async with harness.http.get(harness.url("/api/v1/requests?caller=" + citizen),
                                    headers=bearer(await login(harness, citizen))) as resp:
            assert resp.status in (200, 403)
        captured = capsys.readouterr()
        assert citizen not in captured.out + captured.err + caplog.text
        for name in SQL_LOGGERS:
            assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING
    finally:
        structlog.reset_defaults()
        for name in ("panoramisk", "aiohttp.access", "asyncio", *SQL_LOGGERS):
            logging.getLogger(name).setLevel(logging.NOTSET)
        root.setLevel(root_level)
