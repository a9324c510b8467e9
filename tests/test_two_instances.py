"""Two real ``hotline serve`` processes on one PostgreSQL (HOTLINE_BUS=postgresql), one AMI.

One pair of processes for the whole module (CI budget): A starts first and is elected its
PBX's ingester, B stands by. Every recorded scenario is replayed (a fresh replay peer per
scenario on the same port, A reconnecting to it) and must give its ground truth once; B's
websocket gets the pop of every request A ingested; a logout on A closes the user's socket on
B; click-to-call asked on B is placed by A; SIGKILL A mid-call and B takes over with nothing
lost or doubled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from sqlalchemy import select

from journal.db import Database
from journal.models import Call, Request
from journal.users import add_user
from telephony.replay import ReplayPeer
from telephony.trace import streamed_messages
from tests.conftest import (
    AMI_SECRET,
    PG_URL,
    REPO,
    load_meta,
    scenario_dirs,
    service_env,
    trace_items,
)
from tests.helpers import wait_for

pytestmark = pytest.mark.skipif(PG_URL == "skip", reason="needs PostgreSQL")

SCENARIOS = scenario_dirs()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Instance:
    """One ``hotline serve`` process."""

    def __init__(self, name: str, database_url: str, ami_port: int, tmp: Path) -> None:
        self.name = name
        self.port = free_port()
        self.log = tmp / f"{name}.log"
        meta_env = service_env(load_meta(SCENARIOS[0])) if SCENARIOS else {}
        self.env = {
            **os.environ, "PYTHONPATH": str(REPO),
            "HOTLINE_DATABASE_URL": database_url, "HOTLINE_BUS": "postgresql",
            "HOTLINE_LEADER_RETRY_S": "0.5",
            "HOTLINE_AMI_HOST": "127.0.0.1", "HOTLINE_AMI_PORT": str(ami_port),
            "HOTLINE_AMI_SECRET": AMI_SECRET, "HOTLINE_AMI_BACKOFF_MAX_S": "0.2",
            "HOTLINE_AMI_PING_INTERVAL_S": "0.5",
            "HOTLINE_HTTP_HOST": "127.0.0.1", "HOTLINE_HTTP_PORT": str(self.port),
            "HOTLINE_SPILL_DIR": str(tmp / name / "spill"),
            "HOTLINE_RECORDINGS_DIR": str(tmp / name / "recordings"),
            **{f"HOTLINE_{k.upper()}": str(v) for k, v in meta_env.items()},
        }
        self.proc: asyncio.subprocess.Process | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hotline.cli", "serve", env=self.env, cwd=str(REPO),
                stdout=log, stderr=log)

    async def health(self, http: aiohttp.ClientSession) -> dict[str, Any] | None:
        try:
            async with http.get(self.url("/healthz")) as resp:
                return dict(await resp.json())
        except (aiohttp.ClientError, ValueError):
            return None

    async def ami_state(self, http: aiohttp.ClientSession) -> str | None:
        health = await self.health(http)
        return None if health is None else str(health["ami"]["state"])

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.kill()
                await self.proc.wait()


@pytest_asyncio.fixture
async def pg_database() -> AsyncIterator[str]:
    """A database of its own (the processes use its public schema, as in production)."""
    import asyncpg  # type: ignore[import-untyped]

    name = f"hl2_{uuid.uuid4().hex[:10]}"
    admin = PG_URL.replace("postgresql+asyncpg", "postgresql")
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = PG_URL.rsplit("/", 1)[0] + "/" + name
    db = Database(url)
    await db.upgrade_schema()
    await db.dispose()
    try:
        yield url
    finally:
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await conn.close()


async def journal_rows(db: Database, after: int) -> list[dict[str, Any]]:
    async with db.session() as session:
        rows = await session.execute(
            select(Request.number, Request.linkedid, Request.caller_number, Call.outcome,
                   Call.ended_at)
            .outerjoin(Call, Call.request_id == Request.id)
            .where(Request.number > after).order_by(Request.number, Call.id))
        return [dict(number=n, linkedid=lid, caller=c, outcome=o, ended_at=e)
                for n, lid, c, o, e in rows]


def inbound(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first (inbound) call of each request."""
    seen: dict[int, dict[str, Any]] = {}
    for row in rows:
        seen.setdefault(row["number"], row)
    return list(seen.values())


async def settled(db: Database, after: int, expected: int) -> list[dict[str, Any]]:
    """The scenario's requests once they are all there, closed out, and stay so."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    previous: list[dict[str, Any]] | None = None
    while loop.time() < deadline:
        rows = inbound(await journal_rows(db, after))
        if len(rows) >= expected and all(r["ended_at"] is not None for r in rows) \
                and rows == previous:
            return rows
        previous = rows
        await asyncio.sleep(0.3)
    return rows


def assert_ground_truth(rows: list[dict[str, Any]], meta: dict[str, Any], after: int,
                        check_caller: bool = True) -> None:
    expected = [c for c in meta["calls"] if c.get("is_hotline")]
    assert len(rows) == meta["expected_journal_requests"], rows
    assert [r["number"] for r in rows] == list(range(after + 1, after + 1 + len(rows)))
    assert len({r["linkedid"] for r in rows}) == len(rows), "a call was doubled"
    for row, call in zip(rows, expected, strict=True):
        assert row["ended_at"] is not None, row
        assert row["outcome"] == call["outcome"], (row, call)
        if check_caller:
            assert row["caller"] == call["caller"]


async def login(http: aiohttp.ClientSession, instance: Instance, name: str) -> str:
    async with http.post(instance.url("/api/v1/auth/login"),
                         json={"login": name, "password": "secret-pass-1"}) as resp:
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["token"])


class Socket:
    """A websocket on an instance, read in the background."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self.closed_with: int | None = None
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.frames.append(json.loads(message.data))
        self.closed_with = self.ws.close_code

    def created(self) -> set[int]:
        return {f["request_number"] for f in self.frames if f.get("type") == "request.created"}


async def open_socket(http: aiohttp.ClientSession, instance: Instance, token: str) -> Socket:
    ws = await http.ws_connect(instance.url(f"/api/v1/events?token={token}"))
    sock = Socket(ws)
    await wait_for(lambda: any(f.get("type") == "hello" for f in sock.frames))
    return sock


async def test_two_instances_on_one_postgresql(pg_database: str, tmp_path: Path) -> None:
    assert SCENARIOS, "no recorded scenarios"
    ami_port = free_port()
    db = Database(pg_database)
    a = Instance("a", pg_database, ami_port, tmp_path)
    b = Instance("b", pg_database, ami_port, tmp_path)
    peers: list[ReplayPeer] = []
    sockets: list[Socket] = []

    async def peer_for(items: Any, **options: Any) -> ReplayPeer:
        peer = ReplayPeer(items, secret=AMI_SECRET, speed=options.pop("speed", 0), **options)
        await peer.start(port=ami_port)
        peers.append(peer)
        return peer

    async with aiohttp.ClientSession() as http:
        try:
            async with db.sessions.begin() as session:
                await add_user(session, "admin", "secret-pass-1", "admin")
                await add_user(session, "op201", "secret-pass-1", "operator", extension="201")
                await add_user(session, "op101", "secret-pass-1", "operator", extension="101")
            await a.start()
            await wait_for(lambda: a.health(http), timeout_s=30)
            await b.start()
            await wait_for(lambda: b.health(http), timeout_s=30)
            assert await b.ami_state(http) == "standby"

            admin_b = await open_socket(http, b, await login(http, b, "admin"))
            sockets.append(admin_b)

            # Every recorded scenario, once, ingested by A; B never ingests.
            after = 0
            for scenario in SCENARIOS:
                meta = load_meta(scenario)
                peer = await peer_for(trace_items(scenario))
                await asyncio.wait_for(peer.done.wait(), 30)
                rows = await settled(db, after, meta["expected_journal_requests"])
                assert_ground_truth(rows, meta, after)
                await peer.close()
                after += len(rows)
                assert await b.ami_state(http) == "standby", scenario.name
            # B's websocket got the pop of every request A ingested.
            await wait_for(lambda: admin_b.created() >= set(range(1, after + 1)))

            # Logout on A closes the user's socket on B at once (not at the 30 s check).
            token = await login(http, a, "op101")
            op_b = await open_socket(http, b, token)
            sockets.append(op_b)
            started = time.monotonic()
            async with http.post(a.url("/api/v1/auth/logout"),
                                 headers={"Authorization": f"Bearer {token}"}) as resp:
                assert resp.status == 200
            await wait_for(lambda: op_b.closed_with is not None, timeout_s=5)
            assert op_b.closed_with == 4001
            assert time.monotonic() - started < 3

            # Click-to-call asked on the standby is placed by the ingester.
            idle = await peer_for([])
            await wait_for(lambda: _equals(a.ami_state(http), "connected"), timeout_s=10)
            op201 = await login(http, b, "op201")
            async with http.post(b.url("/api/v1/requests/1/callback"), json={},
                                 headers={"Authorization": f"Bearer {op201}"}) as resp:
                assert resp.status == 200, await resp.text()
            assert [x for x in idle.stats.actions if x.get("Action") == "Originate"]
            await idle.close()

            # SIGKILL the ingester mid-call: the standby takes over, nothing lost or doubled.
            scenario = next(s for s in SCENARIOS if s.name.startswith("s01"))
            meta = load_meta(scenario)
            items = trace_items(scenario)
            drop_at = len(streamed_messages(items)) // 2
            # A second round of s01 (fresh Linkedids: the first one is in the journal already).
            peer = await peer_for(items, drops=[drop_at], gap=3, hold_on_drop=True,
                                  first_round=1)
            await wait_for(lambda: not peer.accepting and peer.stats.events_sent >= drop_at)
            try:
                await wait_for(lambda: _open_calls(db, after, 1))
            except AssertionError:
                raise AssertionError((await journal_rows(db, after), peer.stats.events_sent,
                                      drop_at, peer.stats.sessions)) from None
            killed = time.monotonic()
            a.kill()
            peer.resume()
            await wait_for(lambda: _equals(b.ami_state(http), "connected"), timeout_s=15)
            takeover_s = time.monotonic() - killed
            print(f"takeover after SIGKILL: {takeover_s:.2f} s")
            assert takeover_s < 5
            await asyncio.wait_for(peer.done.wait(), 30)
            rows = await settled(db, after, meta["expected_journal_requests"])
            assert_ground_truth(rows, meta, after)
            await wait_for(lambda: admin_b.created() >= set(range(1, after + 2)))
        finally:
            for sock in sockets:
                with contextlib.suppress(Exception):
                    await sock.ws.close()
            for peer in peers:
                await peer.close()
            await asyncio.gather(a.stop(), b.stop())
            await db.dispose()


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def _open_calls(db: Database, after: int, count: int) -> bool:
    rows = inbound(await journal_rows(db, after))
    return sum(1 for r in rows if r["ended_at"] is None) == count
