"""Recordings over HTTP (DESIGN §5): the list of a request's recordings and the audio itself.

Access follows access to the request (journal.access); a recording is addressed only by its
id *within* a request number, so no client-supplied path ever reaches the file system. Every
playback or download (ranged or not, even a 304) is written to the audit log. Local files are
sent with ``sendfile``; the ETag is the SHA-256 taken when the file was linked.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import hdrs, web
from sqlalchemy import select

from hotline.web.api import parse_number
from hotline.web.auth import current_user, remote_of
from hotline.web.context import SERVICES
from hotline.web.errors import ApiError
from journal.access import can_see, can_see_request
from journal.models import Recording, Request
from journal.queries import recording_json
from recordings.check import SERVABLE
from recordings.index import PlaybackIndex
from recordings.ranges import ByteRange, Unsatisfiable, parse_range
from recordings.storage import RecordingStorage, StorageUnavailable, StoredFile
from recordings.transfer import SendfileThreads

STORAGE_KEY = "recordings_storage"
SEND_THREADS = web.AppKey("recordings_send_threads", SendfileThreads)
PLAYBACK_INDEX = web.AppKey("recordings_playback_index", PlaybackIndex)


def _storage(request: web.Request) -> RecordingStorage:
    storage: RecordingStorage = request.app[SERVICES].extras[STORAGE_KEY]
    return storage


def _parse_id(request: web.Request) -> int:
    raw = request.match_info["recording_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(400, "bad_recording_id", "Номер записи должен быть целым числом")
    return int(raw)


def _not_found(number: int) -> ApiError:
    return ApiError(404, "not_found", f"Заявка {number} не найдена")


async def recordings_list(request: web.Request) -> web.Response:
    number = parse_number(request)
    user = current_user(request)
    services = request.app[SERVICES]
    async with services.db.session() as session:
        found = await session.scalar(select(Request).where(Request.number == number))
        if found is None or not can_see_request(user, found):
            raise _not_found(number)
        rows = await session.scalars(
            select(Recording).where(Recording.request_id == found.id).order_by(Recording.id))
        items = [recording_json(r, number) for r in rows]
    await services.audit_log.record(user, "list_recordings", number, remote_of(request),
                                    count=len(items))
    return web.json_response({"items": items})


def _etag(sha256: str | None, stored: StoredFile) -> str:
    if sha256:
        return f'"{sha256}"'
    return f'W/"{stored.size:x}-{stored.mtime_ns:x}"'


def _etag_matches(header: str, etag: str) -> bool:
    """Weak comparison (RFC 9110 §13.1.2), as If-None-Match asks."""
    if header.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in header.split(","))


async def recording_get(request: web.Request) -> web.StreamResponse:
    number = parse_number(request)
    recording_id = _parse_id(request)
    user = current_user(request)
    range_header = request.headers.get(hdrs.RANGE)
    services = request.app[SERVICES]
    index = request.app[PLAYBACK_INDEX]
    found = await index.get(number, recording_id)
    if found is None or not can_see(user, found.level, found.smo, found.corruption):
        # The same answer for "no such request", "not yours" and "not its recording".
        raise ApiError(404, "not_found", f"Запись {recording_id} заявки {number} не найдена")
    if found.purged or found.status == "purged":
        raise ApiError(410, "purged", "Запись удалена по истечении срока хранения")
    if found.status not in SERVABLE:
        raise ApiError(404, "recording_unavailable",
                       "Файл записи ещё не получен от АТС или отсутствует")
    try:
        stored = await index.stat(_storage(request), found.relative_path)
    except StorageUnavailable:
        raise ApiError(503, "storage_unavailable",
                       "Хранилище записей временно недоступно, повторите позже") from None
    if stored is None:
        raise ApiError(404, "recording_unavailable", "Файл записи отсутствует в хранилище")
    etag = _etag(found.sha256, stored)
    status, byte_range = _decide(request, stored.size, etag, range_header)
    # Committed before the first byte: nothing is played without its audit record.
    await services.audit_log.record(user, "play_recording", number, remote_of(request),
                                    recording_id=recording_id, range=range_header,
                                    status=status, method=request.method)
    headers = {hdrs.ETAG: etag, hdrs.ACCEPT_RANGES: "bytes",
               hdrs.CACHE_CONTROL: "private, no-transform"}
    if status == 304:
        return web.Response(status=304, headers=headers)
    if status == 416:
        headers[hdrs.CONTENT_RANGE] = f"bytes */{stored.size}"
        return web.json_response(
            {"error": {"code": "range_not_satisfiable",
                       "message": "Запрошенный диапазон вне файла записи"}},
            status=416, headers=headers)
    start, count = 0, stored.size
    if byte_range is not None:
        headers[hdrs.CONTENT_RANGE] = byte_range.content_range(stored.size)
        start, count = byte_range.start, byte_range.count
    headers[hdrs.CONTENT_DISPOSITION] = \
        f'inline; filename="request-{number}-recording-{recording_id}.wav"'
    response = FileSlice(_storage(request), stored, start, count, status=status,
                         headers=headers)
    response.content_type = found.content_type or "audio/wav"
    return response


def _decide(request: web.Request, size: int, etag: str,
            range_header: str | None) -> tuple[int, ByteRange | None]:
    """(status, range): 304 on a matching If-None-Match, 416, 206 or 200."""
    if_none_match = request.headers.get(hdrs.IF_NONE_MATCH)
    if if_none_match and _etag_matches(if_none_match, etag):
        return 304, None
    if_range = request.headers.get(hdrs.IF_RANGE)
    if if_range and if_range.strip() != etag:
        range_header = None  # the client's copy is another version: send it all
    try:
        byte_range = parse_range(range_header, size)
    except Unsatisfiable:
        return 416, None
    return (206, byte_range) if byte_range is not None else (200, None)


class FileSlice(web.StreamResponse):
    """``count`` bytes of a stored file from ``start``: sendfile for local files."""

    def __init__(self, storage: RecordingStorage, stored: StoredFile, start: int, count: int,
                 *, status: int, headers: dict[str, str]) -> None:
        super().__init__(status=status, headers=headers)
        self._store = storage
        self._file = stored
        self._offset = start
        self._length = count
        self.content_length = count

    async def prepare(self, request: web.BaseRequest) -> Any:
        if self.prepared or request.method == hdrs.METH_HEAD or self._length == 0:
            return await super().prepare(request)
        writer = await super().prepare(request)
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("connection lost")
        path = self._file.path
        if path is None:
            async for chunk in self._store.read_range(self._file, self._offset, self._length):
                await self.write(chunk)
        else:
            threads = request.app[SEND_THREADS]
            if threads.can_take(transport):
                sent = await threads.send(transport, path, self._offset, self._length)
            else:
                sent = await _send_on_loop(request, transport, path, self._offset, self._length)
            if sent < self._length:
                # The file shrank after stat: the promised Content-Length cannot be kept.
                transport.abort()
                raise ConnectionResetError("recording file shorter than announced")
        await super().write_eof()
        return writer


async def _send_on_loop(request: web.BaseRequest, transport: asyncio.Transport, path: Path,
                        start: int, count: int) -> int:
    """The event loop's own sendfile (all sending threads busy)."""
    fobj = await asyncio.to_thread(path.open, "rb")
    try:
        return await request._loop.sendfile(transport, fobj, start, count)
    finally:
        await asyncio.to_thread(fobj.close)


def attach(app: web.Application) -> None:
    """Add the recordings routes to the HTTP app, and the threads that send the audio."""
    settings = app[SERVICES].settings
    threads = SendfileThreads(settings.recordings_send_threads)
    app[SEND_THREADS] = threads
    index = app[PLAYBACK_INDEX] = PlaybackIndex(app[SERVICES].db, app[SERVICES].bus)

    async def follow_notifications(_app: web.Application) -> AsyncIterator[None]:
        async with index.following():
            yield

    app.cleanup_ctx.append(follow_notifications)

    async def close_threads(_app: web.Application) -> None:
        threads.close()

    app.on_cleanup.append(close_threads)
    app.router.add_get("/api/v1/requests/{number}/recordings", recordings_list)
    app.router.add_get("/api/v1/requests/{number}/recordings/{recording_id}", recording_get)
