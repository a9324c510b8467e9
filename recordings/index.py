"""What serving one recording needs to know, remembered between the requests that play it.

An audio element seeks with a run of Range requests for the same recording, and each one
would otherwise read the request and the recording from the database before its first byte.
Entries live ``ttl_s`` seconds; any ``request.*`` notification (routing, corruption flag,
closing) forgets that request's entries at once, so a hand-over to another SMO takes effect
immediately. Only servable recordings are remembered: one still pending is read again on the
next request, so a file linked meanwhile is served as soon as it is linked. Changes made by
another process (``hotline recordings purge``) are seen within ``ttl_s``; a purged file is
gone from storage anyway, so it cannot be served in that window.

An object in S3 is looked at (HEAD) at most every ``stat_ttl_s`` (2 s): long enough for the
burst of Range requests of one player. A local file is opened for every request and checked
on the opened descriptor against the size and time recorded when it was linked
(``LocalStorage.open_linked``), so a file swapped after linking is never served; one that
shrinks while it is sent is caught by the sender (the connection is cut, never a short
"complete" body).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import select

from journal.bus import Bus, Subscription
from journal.db import Database
from journal.models import Recording, Request
from journal.notify import ROUTING_PREFIX
from journal.ttlcache import TtlCache
from recordings.check import SERVABLE
from recordings.storage import RecordingStorage, StoredFile


@dataclass(frozen=True, slots=True)
class Playable:
    """The request's routing (for the access decision) and the recording's serving facts."""

    level: str
    smo: str | None
    corruption: bool
    status: str
    purged: bool
    relative_path: str
    sha256: str | None
    content_type: str | None
    bytes: int | None  # size and modification time when linked: only that file is served
    file_mtime_ns: int | None


class PlaybackIndex:
    def __init__(self, db: Database, bus: Bus, ttl_s: float = 5.0, stat_ttl_s: float = 2.0,
                 max_entries: int = 10_000) -> None:
        self.db = db
        self.bus = bus
        self.loads = 0  # database reads (tests)
        self._entries: TtlCache[tuple[int, int], Playable] = TtlCache(ttl_s, max_entries)
        self._files: TtlCache[str, StoredFile] = TtlCache(stat_ttl_s, max_entries)
        self._subscription: Subscription | None = None
        self._forgets = 0  # a load that saw a forget happen meanwhile is not remembered

    async def get(self, number: int, recording_id: int) -> Playable | None:
        """The recording ``recording_id`` of request ``number``, or None if it has no such."""
        key = (number, recording_id)
        cached = self._entries.get(key)
        if cached is not None:
            return cached
        forgets = self._forgets
        found = await self._load(number, recording_id)
        if found is not None and found.status in SERVABLE and not found.purged \
                and self._subscription is not None and forgets == self._forgets:
            self._entries.put(key, found)
        return found

    async def stat(self, storage: RecordingStorage, relative: str) -> StoredFile | None:
        """The stored file, as ``storage.stat`` saw it at most ``stat_ttl_s`` ago."""
        cached = self._files.get(relative)
        if cached is not None:
            return cached
        found = await storage.stat(relative)
        if found is not None:
            self._files.put(relative, found)
        return found

    async def _load(self, number: int, recording_id: int) -> Playable | None:
        self.loads += 1
        async with self.db.session() as session:
            row = (await session.execute(
                select(Request.level, Request.smo, Request.corruption, Recording.status,
                       Recording.purged_at, Recording.relative_path, Recording.sha256,
                       Recording.content_type, Recording.bytes, Recording.file_mtime_ns)
                .join(Recording, Recording.request_id == Request.id)
                .where(Request.number == number, Recording.id == recording_id))).first()
        if row is None:
            return None
        (level, smo, corruption, status, purged_at, relative, sha256, content_type, size,
         mtime_ns) = row
        return Playable(level, smo, bool(corruption), status, purged_at is not None, relative,
                        sha256, content_type, size, mtime_ns)

    def clear(self) -> None:
        """Forget everything."""
        self._forgets += 1
        self._entries.clear()
        self._files.clear()

    def forget(self, number: int) -> None:
        self._forgets += 1
        self._entries.remove_if(lambda key, _playable: key[0] == number)

    async def follow(self) -> None:
        """Forget requests as their notifications go by (run as a task while serving).
        Nothing is remembered while this is not running."""
        while True:
            subscription = self._subscription = self.bus.subscribe(kind="playback-index")
            try:
                while not subscription.overflowed:
                    note = await subscription.queue.get()
                    if note is not None and note.request_number is not None \
                            and note.type.startswith(ROUTING_PREFIX):
                        self.forget(note.request_number)
            finally:
                self._subscription = None
                self.bus.unsubscribe(subscription)
                # Fell behind (or stopping): what changed meanwhile is unknown, start afresh.
                self.clear()

    @contextlib.asynccontextmanager
    async def following(self) -> AsyncIterator[None]:
        task = asyncio.create_task(self.follow(), name="playback-index")
        await asyncio.sleep(0)  # subscribed before the first request is served
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
