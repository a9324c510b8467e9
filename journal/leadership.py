"""One ingester per PBX among several service instances: a PostgreSQL advisory lock.

The instance holding the lock (on a connection of its own) is the one that talks to the PBX's
AMI and writes its calls; the others stand by and try again every ``retry_s``. If the ingester
dies (SIGKILL, power, network), PostgreSQL ends its session and so releases the lock, and a
standby takes over at its next try: it restores the open calls from the journal and logs in to
the AMI, whose CoreShowChannels snapshot reconciles what happened meanwhile (the same path as a
reconnect or a restart). Why one ingester rather than all of them: docs/DESIGN-NOTES.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import structlog

from journal.pgbus import asyncpg_dsn

log = structlog.get_logger(__name__)

Hook = Callable[[], Awaitable[None]]


def lock_key(scope: str) -> int:
    """A stable signed 64-bit advisory lock key for ``scope``."""
    digest = hashlib.blake2b(scope.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Leadership:
    """Holds (or waits for) the advisory lock named by ``scope``; calls ``on_gain`` once it is
    held and ``on_loss`` when the connection that held it is gone."""

    def __init__(self, database_url: str, scope: str, *, on_gain: Hook, on_loss: Hook,
                 retry_s: float = 1.0) -> None:
        self.dsn = asyncpg_dsn(database_url)
        self.scope = scope
        self.key = lock_key(scope)
        self.on_gain = on_gain
        self.on_loss = on_loss
        self.retry_s = retry_s
        self.leader = False
        self.terms = 0                    # times this instance became the leader
        self.gained_at: float | None = None  # time.time() of the last gain
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="leadership")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self) -> None:
        while True:
            conn: Any = None
            try:
                conn = await asyncpg.connect(self.dsn, timeout=10)
                while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self.key,
                                              timeout=10):
                    await asyncio.sleep(self.retry_s)
                self.leader = True
                self.terms += 1
                self.gained_at = time.time()
                log.info("leadership.gained", scope=self.scope, terms=self.terms)
                await self.on_gain()
                # Held as long as this session lives; a query that fails means it is gone.
                while True:
                    await asyncio.sleep(self.retry_s)
                    await conn.fetchval("SELECT 1", timeout=max(5.0, self.retry_s * 3))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("leadership.connection_lost", scope=self.scope,
                            error=str(exc)[:200], leader=self.leader)
            finally:
                was_leader, self.leader = self.leader, False
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.terminate()  # the lock goes with the session
                if was_leader:
                    if self._task is not None:  # not a stop: the lock's connection is gone
                        log.warning("leadership.lost", scope=self.scope)
                    with contextlib.suppress(Exception):
                        await asyncio.shield(self.on_loss())
            await asyncio.sleep(self.retry_s)
