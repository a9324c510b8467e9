"""Facts about a recording file (size, duration, checksum, status) and writing them to the row.

Blocking functions here run in worker threads: they read the whole file once, in chunks.
``examine_stored`` / ``sha256_stored`` use them for a local file and otherwise stream the file
once through the storage's ``read_range``.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from journal.models import Recording, Request
from recordings import wav
from recordings.storage import LocalStorage, RecordingStorage, StoredFile

HASH_CHUNK = 1024 * 1024
# Bytes kept from the start of a streamed file for the WAV header: MixMonitor writes 44, and
# a header whose data chunk starts later than this is reported as truncated.
HEADER_PEEK = 64 * 1024
# Statuses of a row whose file was found and checked (it can be served).
SERVABLE = frozenset({"linked", "empty", "truncated", "tampered"})


@dataclass(frozen=True, slots=True)
class FileFacts:
    size: int
    mtime_ns: int
    duration_s: float
    sha256: str
    status: str  # linked | empty | truncated


def sha256_of(path: Path) -> str:
    with path.open("rb") as stream:
        return _sha256_stream(stream)


def _sha256_stream(stream: BinaryIO) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(HASH_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def examine_open(stream: BinaryIO) -> FileFacts:
    """Header, size and SHA-256 of an opened (closed by MixMonitor) recording file; size and
    time from the descriptor itself, so they describe the very bytes hashed."""
    st = os.fstat(stream.fileno())
    digest = _sha256_stream(stream)
    stream.seek(0)
    info = wav.inspect_stream(stream, st.st_size)
    return FileFacts(st.st_size, st.st_mtime_ns, info.duration_s, digest, info.status)


def examine(path: Path) -> FileFacts:
    """``examine_open`` of a file by path (tests, tools)."""
    with path.open("rb") as stream:
        return examine_open(stream)


def _examine_local(storage: LocalStorage, relative: str) -> FileFacts:
    with storage.open(relative) as stream:
        return examine_open(stream)


async def examine_stored(storage: RecordingStorage, stored: StoredFile) -> FileFacts:
    """``examine`` for a file from ``storage.stat``: a local file is opened again the safe way
    (``LocalStorage.open``) and read directly; anything else is streamed once (hash and
    header in one pass; the size and mtime are those of the stat)."""
    if isinstance(storage, LocalStorage):
        return await asyncio.to_thread(_examine_local, storage, stored.key)
    digest = hashlib.sha256()
    head = bytearray()
    async for chunk in storage.read_range(stored, 0, stored.size):
        digest.update(chunk)
        if len(head) < HEADER_PEEK:
            head += chunk[:HEADER_PEEK - len(head)]
    info = wav.inspect_stream(io.BytesIO(head), stored.size)
    return FileFacts(stored.size, stored.mtime_ns, info.duration_s, digest.hexdigest(),
                     info.status)


async def sha256_stored(storage: RecordingStorage, stored: StoredFile) -> str:
    """SHA-256 of a file from ``storage.stat`` (local files hashed directly)."""
    return (await examine_stored(storage, stored)).sha256


async def store_facts(session: AsyncSession, recording: Recording, facts: FileFacts) -> str:
    """Write a located file's facts to its row; return the new status.

    A row that already has a checksum keeps it (it is the evidence of what was recorded);
    a file that no longer matches it becomes ``tampered``.
    """
    if recording.sha256 is not None and recording.sha256 != facts.sha256:
        status = "tampered"
        values: dict[str, object] = {"status": status}
    else:
        status = facts.status
        values = {"status": status, "bytes": facts.size, "duration_s": facts.duration_s,
                  "sha256": facts.sha256, "file_mtime_ns": facts.mtime_ns}
        if recording.linked_at is None:
            values["linked_at"] = datetime.now(UTC)
    await session.execute(update(Recording).where(Recording.id == recording.id).values(**values))
    if recording.request_id is not None:
        await refresh_missing_flag(session, recording.request_id)
    return status


async def mark_missing(session: AsyncSession, recording: Recording) -> None:
    await session.execute(
        update(Recording).where(Recording.id == recording.id).values(status="missing"))
    if recording.request_id is not None:
        await refresh_missing_flag(session, recording.request_id)


async def refresh_missing_flag(session: AsyncSession, request_id: int) -> None:
    """``Request.recording_missing`` = some recording of it is missing (open requests only:
    a closed request is read-only)."""
    missing = exists().where(Recording.request_id == request_id, Recording.status == "missing")
    flag = await session.scalar(select(missing))
    await session.execute(
        update(Request)
        .where(Request.id == request_id, Request.closed_at.is_(None),
               Request.recording_missing.is_not(bool(flag)))
        .values(recording_missing=bool(flag)))
