"""Links each call's recordings once the call has ended.

MixMonitor emits no stop event when a caller hangs up: the hang-up (``CallEnded``) closes the
file. After it the worker waits until the file exists and its size and mtime stop changing,
then reads the WAV header, hashes the file (in a thread, chunked) and updates the row:
``linked``, ``empty`` (header only / no audio) or ``truncated``. A file that does not appear
within ``recordings_missing_after_s`` becomes ``missing`` (logged once) and flags its request;
a periodic rescan (and ``hotline recordings reconcile``) still links a file that turns up later.
The files are reached through a ``RecordingStorage`` (local folder or S3): a store that does
not answer only delays the checks, it never makes a recording missing.

Cheap when thousands of calls end a minute: one scheduler (not a task per recording) keeps
the recordings it waits for by their next check time; each file's checks back off
exponentially (``poll_s``, twice that, … up to ``max_poll_s``, never past its deadline), the
checks that fall due together are one batch of ``stat`` calls, and the rows are read with one
query per batch of ended calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select

from journal.db import Database
from journal.models import Call, Recording
from recordings.check import FileFacts, examine_stored, mark_missing, store_facts
from recordings.locate import UnsafePath, check_key, recording_key
from recordings.storage import RecordingStorage, StorageUnavailable, StoredFile
from telephony.callevents import CallEnded

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class WorkerStats:
    linked: int = 0
    missing: int = 0
    errors: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Watch:
    """A pending recording the worker waits for."""

    recording_id: int
    relative_path: str | None  # None: a name that can never be linked (see ``key_of``)
    deadline: float  # loop time: no stable file by then → missing
    next_check: float
    delay: float  # the back-off step after the next miss
    seen: tuple[int, int] | None = None  # (size, mtime_ns) at the previous check


class RecordingsWorker:
    """Follows ended calls to their recording files; one instance per service."""

    def __init__(self, db: Database, storage: RecordingStorage, *, pbx_id: str,
                 missing_after_s: float, poll_s: float = 0.25, stable_s: float = 0.5,
                 rescan_s: float = 60.0, max_parallel: int = 4,
                 max_poll_s: float = 15.0, pbx_dir: str | None = None) -> None:
        self.db = db
        self.pbx_dir = pbx_dir
        self._unusable: set[str] = set()
        self.storage = storage
        self.pbx_id = pbx_id
        self.missing_after_s = missing_after_s
        self.poll_s = poll_s
        self.max_poll_s = max_poll_s
        self.stable_s = stable_s
        self.rescan_s = rescan_s
        self.stats = WorkerStats()
        self._ended: list[str] = []
        self._wake = asyncio.Event()
        # Waited-for recordings by id, and a heap of (next check, id) over them (entries whose
        # time no longer matches the watch are stale and skipped).
        self._watching: dict[int, _Watch] = {}
        self._due: list[tuple[float, int]] = []
        self._linking: set[asyncio.Task[Any]] = set()
        # Hashing reads whole files: a few at a time, so a burst of hang-ups cannot starve
        # the HTTP server of threads and disk.
        self._hashing = asyncio.Semaphore(max_parallel)
        # stat() calls in flight at once (each is a thread hop or an HTTP request).
        self._stat_parallel = max(8, max_parallel * 4)
        self._store_down = False  # the last batch of stat calls found the store unreachable

    def key_of(self, pbx_path: str, relative: str) -> str | None:
        """Where to look for a recording: its stored relative path, only when it is exactly
        MIXMONITOR_FILENAME with RECORDINGS_PBX_DIR taken off (a name outside that folder,
        or with ``..`` or NUL, names no file at all). The name is matched literally."""
        if self.pbx_dir is not None:
            key = recording_key(pbx_path, self.pbx_dir)
        else:
            try:
                key = check_key(relative)
            except UnsafePath:
                key = None
        if key is None or key != relative:
            if pbx_path not in self._unusable and len(self._unusable) < 10_000:
                self._unusable.add(pbx_path)  # once per name, not at every rescan
                log.warning("recordings.unusable_name", pbx_path=pbx_path[:300])
            return None
        return key

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
        return bool(self._ended) or bool(self._watching) or bool(self._linking)

    # ------------------------------------------------------------------ main loop
    async def run(self) -> None:
        """Forever: follow ended calls, check the files that are due; rescan pending and
        missing rows now and then."""
        next_rescan = 0.0
        loop = asyncio.get_running_loop()
        try:
            while True:
                now = loop.time()
                if now >= next_rescan:
                    with contextlib.suppress(Exception):
                        await self.rescan()
                    next_rescan = loop.time() + self.rescan_s
                linkedids, self._ended = self._ended, []
                if linkedids:
                    try:
                        await self._follow(linkedids)
                    except Exception:
                        self.stats.errors += 1
                        log.exception("recordings.follow_failed")
                try:
                    await self._check_due()
                except Exception:
                    self.stats.errors += 1
                    log.exception("recordings.check_failed")
                wake_at = min(next_rescan, self._due[0][0] if self._due else next_rescan)
                if not self._ended:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(),
                                               max(0.01, wake_at - loop.time()))
                self._wake.clear()
        finally:
            for task in list(self._linking):
                task.cancel()

    async def _follow(self, linkedids: list[str]) -> None:
        rows: list[Any] = []
        async with self.db.session() as session:
            for start in range(0, len(linkedids), 400):
                rows.extend(await session.execute(
                    select(Recording.id, Recording.pbx_path, Recording.relative_path)
                    .join(Call, Call.id == Recording.call_id)
                    .where(Call.pbx_id == self.pbx_id,
                           Call.linkedid.in_(linkedids[start:start + 400]),
                           Recording.status == "pending")))
        deadline = asyncio.get_running_loop().time() + self.missing_after_s
        for recording_id, pbx_path, relative in rows:
            self._track(recording_id, self.key_of(pbx_path, relative), deadline)

    def _track(self, recording_id: int, relative: str | None, deadline: float) -> None:
        """Wait for this recording's file (no-op if it is already waited for)."""
        if recording_id in self._watching:
            return
        first = asyncio.get_running_loop().time()
        watch = _Watch(recording_id, relative, deadline, first, self.poll_s)
        self._watching[recording_id] = watch
        heapq.heappush(self._due, (first, recording_id))
        self._wake.set()

    def _reschedule(self, watch: _Watch, at: float) -> None:
        watch.next_check = at
        heapq.heappush(self._due, (at, watch.recording_id))

    async def _check_due(self) -> None:
        """One round: stat every file whose check is due; link stable ones, back off on the
        others, give up on those past their deadline."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        due: list[_Watch] = []
        while self._due and self._due[0][0] <= now:
            at, recording_id = heapq.heappop(self._due)
            watch = self._watching.get(recording_id)
            if watch is not None and watch.next_check == at:
                due.append(watch)
        if not due:
            return
        try:
            found = await self._stat_all([w.relative_path for w in due])
        except StorageUnavailable as exc:
            self._wait_for_store(due, exc)
            return
        now = loop.time()
        missing: list[_Watch] = []
        for watch, stored in zip(due, found, strict=True):
            if stored is not None:
                facts = (stored.size, stored.mtime_ns)
                if watch.seen == facts:
                    # Same size and mtime ``stable_s`` apart: closed; link it.
                    del self._watching[watch.recording_id]
                    self._spawn_link(watch.recording_id)
                    continue
                # Found (or still growing): look again once it had time to settle.
                watch.seen = facts
                self._reschedule(watch, now + self.stable_s)
                continue
            watch.seen = None
            if now >= watch.deadline:
                del self._watching[watch.recording_id]
                missing.append(watch)
                continue
            self._reschedule(watch, min(now + self._back_off(watch), watch.deadline))
        if missing:
            await self._mark_missing_many([w.recording_id for w in missing])

    def _wait_for_store(self, due: list[_Watch], exc: StorageUnavailable) -> None:
        """The store did not answer: nobody can tell whether the files are there, so none is
        marked missing; each is looked at again after its back-off step (past its deadline
        too: only an answer "not there" makes a recording missing)."""
        if not self._store_down:
            log.warning("recordings.storage_unavailable", error=str(exc))
        self._store_down = True
        now = asyncio.get_running_loop().time()
        for watch in due:
            self._reschedule(watch, now + self._back_off(watch))

    def _back_off(self, watch: _Watch) -> float:
        """The wait before the watch's next check; doubles the one after it."""
        delay, watch.delay = watch.delay, min(self.max_poll_s, watch.delay * 2)
        return delay

    async def _stat_all(self, relatives: list[str | None]) -> list[StoredFile | None]:
        """``stat`` of each path (None: not there); raises StorageUnavailable when the store
        does not answer."""
        limit = asyncio.Semaphore(self._stat_parallel)

        async def one(relative: str | None) -> StoredFile | None:
            if relative is None:
                return None
            async with limit:
                try:
                    return await self.storage.stat(relative)
                except OSError:
                    return None

        found = list(await asyncio.gather(*(one(r) for r in relatives)))
        if self._store_down:
            log.info("recordings.storage_available")
            self._store_down = False
        return found

    def _spawn_link(self, recording_id: int) -> None:
        task = asyncio.create_task(self._link_logged(recording_id),
                                   name=f"recording-{recording_id}")
        self._linking.add(task)
        task.add_done_callback(self._linking.discard)

    async def _link_logged(self, recording_id: int) -> None:
        try:
            await self.link(recording_id)
        except asyncio.CancelledError:
            raise
        except StorageUnavailable as exc:
            # The row stays pending; the next rescan follows it again.
            self.stats.errors += 1
            log.warning("recordings.link_deferred", recording_id=recording_id, error=str(exc))
        except Exception:
            self.stats.errors += 1
            log.exception("recordings.link_failed", recording_id=recording_id)

    async def _load(self, recording_id: int) -> Recording | None:
        async with self.db.session() as session:
            return await session.get(Recording, recording_id)

    # ------------------------------------------------------------------ actions
    async def link(self, recording_id: int) -> str | None:
        """Check the row's file now and store what it is; None if the file is not there
        (StorageUnavailable if the store cannot tell)."""
        recording = await self._load(recording_id)
        if recording is None:
            return None
        key = self.key_of(recording.pbx_path, recording.relative_path)
        if key is None:
            return None
        stored = await self.storage.stat(key)
        if stored is None:
            return None
        async with self._hashing:
            facts: FileFacts = await examine_stored(self.storage, stored)
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
        await self._mark_missing_many([recording_id])

    async def _mark_missing_many(self, recording_ids: list[int]) -> None:
        """Pending rows → missing, in one transaction; logged once per recording."""
        marked: list[int] = []
        async with self.db.sessions.begin() as session:
            for start in range(0, len(recording_ids), 400):
                rows = await session.scalars(
                    select(Recording).where(Recording.id.in_(recording_ids[start:start + 400]),
                                            Recording.status == "pending"))
                for current in rows.all():
                    await mark_missing(session, current)
                    marked.append(current.id)
        for recording_id in marked:
            self.stats.missing += 1
            log.warning("recordings.missing", recording_id=recording_id)

    async def rescan(self) -> dict[str, int]:
        """Pending rows of ended calls and missing rows: link what is there now; rows whose
        call ended longer than ``missing_after_s`` ago and still have no file → missing;
        the rest are followed as if the call had just ended (service restart).

        One query and one batch of ``stat`` calls; only rows whose file is there are read again.
        """
        now = datetime.now(UTC)
        cutoff = now - timedelta(seconds=self.missing_after_s)
        async with self.db.session() as session:
            rows = [row for row in (await session.execute(
                select(Recording.id, Recording.status, Recording.pbx_path,
                       Recording.relative_path, Call.ended_at)
                .join(Call, Call.id == Recording.call_id)
                .where(Recording.pbx_id == self.pbx_id,
                       Recording.status.in_(("pending", "missing")),
                       Call.ended_at.is_not(None)))).all()
                    if row[0] not in self._watching]
        counts = {"linked": 0, "missing": 0, "waiting": 0}
        keys = [self.key_of(row[2], row[3]) for row in rows]
        found = await self._stat_all(keys)
        deadline = asyncio.get_running_loop().time() + self.missing_after_s
        overdue: list[int] = []
        for (recording_id, status, _pbx_path, _relative, ended_at), key, stored in \
                zip(rows, keys, found, strict=True):
            if stored is not None and await self.link(recording_id) is not None:
                counts["linked"] += 1
            elif status == "pending" and ended_at is not None and ended_at < cutoff:
                overdue.append(recording_id)
                counts["missing"] += 1
            elif status == "pending":
                self._track(recording_id, key, deadline)
                counts["waiting"] += 1
        if overdue:
            await self._mark_missing_many(overdue)
        return counts

    async def idle(self, timeout_s: float = 10.0) -> None:
        """Wait until nothing is being followed (tests)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while self.busy and loop.time() < end:
            await asyncio.sleep(0.02)
