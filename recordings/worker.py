"""Links each call's recordings once the call has ended.

MixMonitor emits no stop event when a caller hangs up: the hang-up (``CallEnded``) closes the
file. After it the worker waits until the file exists and its size and mtime stop changing,
then reads the WAV header, hashes the file (in a thread, chunked) and updates the row:
``linked``, ``empty`` (header only / no audio) or ``truncated``. A file that does not appear
within ``recordings_missing_after_s`` becomes ``missing`` and flags its request; a periodic
rescan (and ``hotline recordings reconcile``) still links a file that turns up later.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select

from journal.db import Database
from journal.models import Call, Recording
from recordings.check import FileFacts, examine, mark_missing, store_facts
from recordings.storage import LocalStorage
from telephony.callevents import CallEnded

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class WorkerStats:
    linked: int = 0
    missing: int = 0
    errors: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


class RecordingsWorker:
    """Follows ended calls to their recording files; one instance per service."""

    def __init__(self, db: Database, storage: LocalStorage, *, pbx_id: str,
                 missing_after_s: float, poll_s: float = 0.25, stable_s: float = 0.5,
                 rescan_s: float = 60.0, max_parallel: int = 4) -> None:
        self.db = db
        self.storage = storage
        self.pbx_id = pbx_id
        self.missing_after_s = missing_after_s
        self.poll_s = poll_s
        self.stable_s = stable_s
        self.rescan_s = rescan_s
        self.stats = WorkerStats()
        self._ended: list[str] = []
        self._wake = asyncio.Event()
        self._tracking: dict[int, asyncio.Task[None]] = {}
        # Hashing reads whole files: a few at a time, so a burst of hang-ups cannot starve
        # the HTTP server of threads and disk.
        self._hashing = asyncio.Semaphore(max_parallel)

    # ------------------------------------------------------------------ intake hook
    def notify(self, batch: Sequence[Any]) -> None:
        """Called after intake committed ``batch``: remember the calls that ended."""
        ended = [event.linkedid for event in batch if isinstance(event, CallEnded)]
        if ended:
            self._ended.extend(ended)
            self._wake.set()

    @property
    def busy(self) -> bool:
        """Files still being waited for (tests and shutdown)."""
        return bool(self._ended) or any(not t.done() for t in self._tracking.values())

    # ------------------------------------------------------------------ main loop
    async def run(self) -> None:
        """Forever: follow ended calls; rescan pending and missing rows now and then."""
        next_rescan = 0.0
        loop = asyncio.get_running_loop()
        try:
            while True:
                if loop.time() >= next_rescan:
                    with contextlib.suppress(Exception):
                        await self.rescan()
                    next_rescan = loop.time() + self.rescan_s
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(),
                                           max(0.01, next_rescan - loop.time()))
                self._wake.clear()
                linkedids, self._ended = self._ended, []
                if linkedids:
                    try:
                        await self._follow(linkedids)
                    except Exception:
                        self.stats.errors += 1
                        log.exception("recordings.follow_failed")
        finally:
            for task in self._tracking.values():
                task.cancel()

    async def _follow(self, linkedids: list[str]) -> None:
        async with self.db.session() as session:
            ids = list(await session.scalars(
                select(Recording.id).join(Call, Call.id == Recording.call_id)
                .where(Call.pbx_id == self.pbx_id, Call.linkedid.in_(linkedids),
                       Recording.status == "pending")))
        deadline = asyncio.get_running_loop().time() + self.missing_after_s
        for recording_id in ids:
            self._track(recording_id, deadline)

    def _track(self, recording_id: int, deadline: float) -> None:
        task = self._tracking.get(recording_id)
        if task is not None and not task.done():
            return
        task = asyncio.create_task(self._wait_and_link(recording_id, deadline),
                                   name=f"recording-{recording_id}")
        self._tracking[recording_id] = task
        task.add_done_callback(lambda _t, rid=recording_id: self._tracking.pop(rid, None))

    async def _wait_and_link(self, recording_id: int, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            recording = await self._load(recording_id)
            if recording is None or recording.status != "pending":
                return
            while True:
                stored = await self.storage.stat(recording.relative_path)
                if stored is not None and await self._stable(recording.relative_path, stored):
                    await self.link(recording_id)
                    return
                if loop.time() >= deadline:
                    await self._mark_missing(recording_id)
                    return
                await asyncio.sleep(self.poll_s)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.stats.errors += 1
            log.exception("recordings.link_failed", recording_id=recording_id)

    async def _stable(self, relative: str, first: Any) -> bool:
        """The file stopped growing: same size and mtime after ``stable_s``."""
        await asyncio.sleep(self.stable_s)
        second = await self.storage.stat(relative)
        return second is not None and (second.size, second.mtime_ns) == \
            (first.size, first.mtime_ns)

    async def _load(self, recording_id: int) -> Recording | None:
        async with self.db.session() as session:
            return await session.get(Recording, recording_id)

    # ------------------------------------------------------------------ actions
    async def link(self, recording_id: int) -> str | None:
        """Check the row's file now and store what it is; None if the file is not there."""
        recording = await self._load(recording_id)
        if recording is None:
            return None
        path = await asyncio.to_thread(self.storage.find, recording.relative_path)
        if path is None:
            return None
        async with self._hashing:
            facts: FileFacts = await asyncio.to_thread(examine, path)
        async with self.db.sessions.begin() as session:
            current = await session.get(Recording, recording_id)
            if current is None:
                return None
            status = await store_facts(session, current, facts)
        self.stats.linked += 1
        self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1
        log.info("recordings.linked", recording_id=recording_id, status=status,
                 bytes=facts.size, duration_s=facts.duration_s)
        return status

    async def _mark_missing(self, recording_id: int) -> None:
        async with self.db.sessions.begin() as session:
            current = await session.get(Recording, recording_id)
            if current is None or current.status != "pending":
                return
            await mark_missing(session, current)
        self.stats.missing += 1
        log.warning("recordings.missing", recording_id=recording_id)

    async def rescan(self) -> dict[str, int]:
        """Pending rows of ended calls and missing rows: link what is there now; rows whose
        call ended longer than ``missing_after_s`` ago and still have no file → missing;
        the rest are followed as if the call had just ended (service restart)."""
        now = datetime.now(UTC)
        cutoff = now - timedelta(seconds=self.missing_after_s)
        async with self.db.session() as session:
            rows = (await session.execute(
                select(Recording.id, Recording.status, Call.ended_at)
                .join(Call, Call.id == Recording.call_id)
                .where(Recording.pbx_id == self.pbx_id,
                       Recording.status.in_(("pending", "missing")),
                       Call.ended_at.is_not(None)))).all()
        counts = {"linked": 0, "missing": 0, "waiting": 0}
        deadline = asyncio.get_running_loop().time() + self.missing_after_s
        for recording_id, status, ended_at in rows:
            if recording_id in self._tracking:
                continue
            if await self.link(recording_id) is not None:
                counts["linked"] += 1
            elif status == "pending" and _aware(ended_at) < cutoff:
                await self._mark_missing(recording_id)
                counts["missing"] += 1
            elif status == "pending":
                self._track(recording_id, deadline)
                counts["waiting"] += 1
        return counts

    async def idle(self, timeout_s: float = 10.0) -> None:
        """Wait until nothing is being followed (tests)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while self.busy and loop.time() < end:
            await asyncio.sleep(0.02)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
