"""Recordings over HTTP (DESIGN §5): the list of a request's recordings and the audio itself.

Access follows access to the request (journal.access); a recording is addressed only by its
id *within* a request number, so no client-supplied path ever reaches the file system. Every
playback or download (ranged or not, even a 304) is written to the audit log. Local files are
opened without following symbolic links, checked on the opened descriptor against the size and
modification time recorded when they were linked (a swapped or replaced file is refused with
409 ``recording_changed``) and sent from that descriptor with ``sendfile``; the ETag is the
SHA-256 taken when the file was linked, which names exactly the bytes served.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import AsyncIterator
from typing import Any, BinaryIO, cast

import structlog
from aiohttp import hdrs, web
from sqlalchemy import select

from hotline.web.api import get_visible_request, parse_number
from hotline.web.auth import current_user, remote_of
from hotline.web.context import SERVICES
from hotline.web.errors import ApiError
from hotline.web.params import ascii_int
from journal.access import can_see
from journal.models import Recording
from journal.queries import recording_json
from recordings.check import SERVABLE
from recordings.index import Playable, PlaybackIndex
from recordings.locate import NotAFile, UnsafePath
from recordings.ranges import ByteRange, Unsatisfiable, parse_range
from recordings.storage import (
    FileChanged,
    LocalStorage,
    RecordingStorage,
    StorageUnavailable,
    StoredFile,
)
from recordings.transfer import SendfileThreads

log = structlog.get_logger(__name__)

SEND_THREADS = web.AppKey("recordings_send_threads", SendfileThreads)
PLAYBACK_INDEX = web.AppKey("recordings_playback_index", PlaybackIndex)


def _storage(request: web.Request) -> RecordingStorage:
    recordings = request.app[SERVICES].recordings
    if recordings is None:  # a service built without the recordings part (benches)
        raise ApiError(503, "recordings_unavailable", "Записи разговоров недоступны")
    return recordings.storage


def _parse_id(request: web.Request) -> int:
    recording_id = ascii_int(request.match_info["recording_id"])
    if recording_id is None:
        raise ApiError(400, "bad_recording_id", "Номер записи должен быть целым числом")
    return recording_id


async def recordings_list(request: web.Request) -> web.Response:
    number = parse_number(request)
    user = current_user(request)
    services = request.app[SERVICES]
    async with services.db.session() as session:
        found = await get_visible_request(session, user, number)
        rows = await session.scalars(
            select(Recording).where(Recording.request_id == found.id).order_by(Recording.id))
        items = [recording_json(r, number) for r in rows]
    await services.audit_log.record(user, "list_recordings", number, remote_of(request),
                                    count=len(items))
    return web.json_response({"items": items})


def _etag(found: Playable, size: int, mtime_ns: int) -> str:
    """The link-time SHA-256 when the file is checked to be the linked one (size and time);
    a row linked before times were recorded adds the file's time, so a replaced file of the
    same size still gets another tag."""
    if found.sha256 and found.file_mtime_ns is not None:
        return f'"{found.sha256}"'
    if found.sha256:
        return f'"{found.sha256}-{mtime_ns:x}"'
    return f'W/"{size:x}-{mtime_ns:x}"'


def _changed(number: int, recording_id: int, reason: object) -> ApiError:
    log.warning("recordings.file_changed", request_number=number, recording_id=recording_id,
                reason=str(reason)[:300])
    return ApiError(409, "recording_changed",
                    "Файл записи изменён или подменён после привязки к заявке; "
                    "воспроизведение запрещено, обратитесь к администратору")


async def _open_local(storage: LocalStorage, found: Playable, number: int,
                      recording_id: int) -> tuple[BinaryIO, StoredFile]:
    """The linked file, opened safely and checked on its descriptor (409 if swapped)."""
    try:
        stream, st = await asyncio.to_thread(storage.open_linked, found.relative_path,
                                             found.bytes, found.file_mtime_ns)
    except FileNotFoundError:
        raise ApiError(404, "recording_unavailable",
                       "Файл записи отсутствует в хранилище") from None
    except (FileChanged, UnsafePath, NotAFile) as exc:
        raise _changed(number, recording_id, exc) from None
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise  # not the file's fault (EMFILE, EIO): a 500, logged
        raise _changed(number, recording_id, exc) from None  # a symlink on the way
    return stream, StoredFile(found.relative_path, st.st_size, st.st_mtime_ns,
                              storage.root / found.relative_path)


def _check_stored(found: Playable, stored: StoredFile, number: int, recording_id: int) -> None:
    """An object from a store: the same size and time as when it was linked."""
    if (found.bytes is not None and stored.size != found.bytes) or \
            (found.file_mtime_ns is not None and stored.mtime_ns != found.file_mtime_ns):
        raise _changed(number, recording_id,
                       f"{stored.size} bytes, mtime {stored.mtime_ns}; linked {found.bytes} "
                       f"bytes, mtime {found.file_mtime_ns}")


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
    storage = _storage(request)
    stream: BinaryIO | None = None
    if isinstance(storage, LocalStorage):
        stream, stored = await _open_local(storage, found, number, recording_id)
    else:
        try:
            maybe = await index.stat(storage, found.relative_path)
        except StorageUnavailable:
            raise ApiError(503, "storage_unavailable",
                           "Хранилище записей временно недоступно, повторите позже") from None
        if maybe is None:
            raise ApiError(404, "recording_unavailable", "Файл записи отсутствует в хранилище")
        stored = maybe
        _check_stored(found, stored, number, recording_id)
    try:
        etag = _etag(found, stored.size, stored.mtime_ns)
        status, byte_range = _decide(request, stored.size, etag, range_header)
        # Committed before the first byte: nothing is played without its audit record.
        await services.audit_log.record(user, "play_recording", number, remote_of(request),
                                        recording_id=recording_id, range=range_header,
                                        status=status, method=request.method)
        headers: dict[str, str] = {hdrs.ETAG: etag, hdrs.ACCEPT_RANGES: "bytes",
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
        response = FileSlice(storage, stored, stream, start, count, status=status,
                             headers=headers)
    except BaseException:
        if stream is not None:
            stream.close()
        raise
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
    """``count`` bytes of a stored file from ``start``: sendfile from ``stream`` (an opened
    local file, closed once sent) or else chunks from the storage."""

    def __init__(self, storage: RecordingStorage, stored: StoredFile, stream: BinaryIO | None,
                 start: int, count: int, *, status: int, headers: dict[str, str]) -> None:
        super().__init__(status=status, headers=headers)
        self._store = storage
        self._file = stored
        self._stream = stream
        self._offset = start
        self._length = count
        self.content_length = count

    async def prepare(self, request: web.BaseRequest) -> Any:
        try:
            return await self._send(request)
        finally:
            if self._stream is not None:
                self._stream.close()

    async def _send(self, request: web.BaseRequest) -> Any:
        if self.prepared or request.method == hdrs.METH_HEAD or self._length == 0:
            return await super().prepare(request)
        writer = await super().prepare(request)
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("connection lost")
        stream = self._stream
        if stream is None:
            async for chunk in self._store.read_range(self._file, self._offset, self._length):
                await self.write(chunk)
        else:
            threads = cast(web.Request, request).app[SEND_THREADS]  # aiohttp hands a Request
            if threads.can_take(transport):
                sent = await threads.send(transport, stream.fileno(), self._offset,
                                          self._length)
            else:
                sent = await request._loop.sendfile(transport, stream, self._offset,
                                                    self._length)
            if sent < self._length:
                # The file shrank after it was opened: the promised Content-Length cannot
                # be kept.
                transport.abort()
                raise ConnectionResetError("recording file shorter than announced")
        await super().write_eof()
        return writer


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
