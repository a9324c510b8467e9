"""Shared fixtures: a database per test on SQLite and on PostgreSQL, the service, replay peers.

Every test that takes ``db_url`` runs twice: on a fresh SQLite file and on a fresh schema of the
PostgreSQL database ``test`` at 127.0.0.1:5432 (set HOTLINE_TEST_PG_URL to point elsewhere, or
to ``skip`` to run SQLite only).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from config import Settings, load_settings
from hotline.assembly import build_services
from hotline.service import Services
from hotline.web.app import create_app, server_options
from telephony.replay import ReplayPeer
from telephony.trace import discover_traces, read_trace

REPO = Path(__file__).resolve().parent.parent
TRACES_ROOT = Path(os.environ.get("HOTLINE_TRACES", REPO.parent / "shared" / "ami-traces"))
PG_URL = os.environ.get("HOTLINE_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
AMI_SECRET = "journal-secret"


def scenario_dirs() -> list[Path]:
    return discover_traces(TRACES_ROOT) if TRACES_ROOT.is_dir() else []


def load_meta(scenario: Path) -> dict[str, Any]:
    return json.loads((scenario / "meta.json").read_text(encoding="utf-8"))


def service_env(meta: dict[str, Any]) -> dict[str, Any]:
    env = meta.get("service_env", {})
    return {
        "hotline_numbers": env.get("HOTLINE_HOTLINE_NUMBERS", "88007070561"),
        "l2_targets": env.get("HOTLINE_L2_TARGETS", "7001,201,202"),
        "smo_lines": env.get("HOTLINE_SMO_LINES", "88001002030=SMO1,88005553535=SMO2"),
    }


BACKENDS = ["sqlite"] + ([] if PG_URL == "skip" else ["postgresql"])


@pytest.fixture(params=BACKENDS)
def db_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture
async def db_url(db_backend: str, tmp_path: Path) -> AsyncIterator[tuple[str, str | None]]:
    """(url, schema): a fresh SQLite file, or a fresh PostgreSQL schema dropped afterwards."""
    if db_backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'journal.sqlite3'}", None
        return
    import asyncpg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    dsn = PG_URL.replace("postgresql+asyncpg", "postgresql")
    conn = await asyncpg.connect(dsn)
    await conn.execute(f'CREATE SCHEMA "{schema}"')
    await conn.close()
    try:
        yield PG_URL, schema
    finally:
        conn = await asyncpg.connect(dsn)
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.close()


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(db_url: tuple[str, str | None], tmp_path: Path) -> SettingsFactory:
    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": db_url[0],
            "ami_host": "127.0.0.1",
            "ami_port": 1,
            "ami_secret": AMI_SECRET,
            "ami_ping_interval_s": 0.5,
            "ami_ping_timeout_s": 2.0,
            "hotline_numbers": "88007070561",
            "l2_targets": "7001,201,202",
            "smo_lines": "88001002030=SMO1,88005553535=SMO2",
            "recordings_dir": tmp_path / "recordings",
            "spill_dir": tmp_path / "spill",
            "http_port": 0,
        }
        values.update(overrides)
        return load_settings(**values)

    return factory


class Harness:
    """A running service (optionally with its HTTP app) and helpers to drive it."""

    def __init__(self, services: Services, server: TestServer | None) -> None:
        self.services = services
        self.server = server
        self.http: ClientSession | None = None

    def url(self, path: str) -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    async def wait_calls_done(self, timeout_s: float = 10.0) -> None:
        """Until the service has read everything sent (the message count stays still), the
        tracker has no active call and every call event is committed.

        A replay peer being done only means the bytes were written to the socket."""
        services = self.services
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        last = -1
        while loop.time() < deadline:
            messages = services.pipeline.stats.messages
            if (messages == last and not services.tracker.active_calls
                    and not len(services.buffer)
                    and services.intake.committed_events == services.pipeline.stats.call_events):
                break
            last = messages
            await asyncio.sleep(0.05)
        await services.drain()


@pytest_asyncio.fixture
async def start_service(db_url: tuple[str, str | None]) -> AsyncIterator[Any]:
    """``await start_service(settings, http=False)`` → Harness; everything stops at teardown."""
    harnesses: list[Harness] = []

    async def start(settings: Settings, http: bool = False, connect_ami: bool = True) -> Harness:
        services = build_services(settings, db_schema=db_url[1])
        await services.db.upgrade_schema()  # as `hotline db upgrade` before `hotline serve`
        await services.start(connect_ami=connect_ami)
        server = None
        if http:
            server = TestServer(create_app(services))
            await server.start_server(**server_options(settings))
        harness = Harness(services, server)
        if http:
            harness.http = ClientSession()
        harnesses.append(harness)
        return harness

    yield start
    for harness in harnesses:
        if harness.http is not None:
            await harness.http.close()
        if harness.server is not None:
            await harness.server.close()
        await harness.services.stop()


@pytest_asyncio.fixture
async def replay_peer() -> AsyncIterator[Any]:
    """``await replay_peer(items, **options)`` → started ReplayPeer; closed at teardown."""
    peers: list[ReplayPeer] = []

    async def start(items: Any, **options: Any) -> ReplayPeer:
        options.setdefault("speed", 0)
        peer = ReplayPeer(items, secret=AMI_SECRET, **options)
        await peer.start()
        peers.append(peer)
        return peer

    yield start
    for peer in peers:
        await peer.close()


def trace_items(scenario: Path) -> list[Any]:
    return read_trace(scenario / "trace.jsonl")
