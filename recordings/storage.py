"""Where recording files live: a small protocol so the service can move off local disk.

``LocalStorage`` reads RECORDINGS_DIR (the PBX monitor folder, mounted or synced). The HTTP
layer asks ``local_path`` first: a local file is served with ``sendfile`` (zero copy), anything
else through ``read_range`` chunks. ``S3Storage`` is the documented option for MinIO / S3 —
a skeleton only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from recordings.locate import locate

CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A located recording: its size and modification time (ns) at the time of ``stat``."""

    key: str
    size: int
    mtime_ns: int
    path: Path | None = None  # set when the bytes are on the local file system


@runtime_checkable
class RecordingStorage(Protocol):
    """The operations the service needs from wherever recordings are kept."""

    async def stat(self, relative: str) -> StoredFile | None:
        """The file for a stored relative path, or None if it is not there."""
        ...

    def read_range(self, stored: StoredFile, start: int, count: int) -> AsyncIterator[bytes]:
        """``count`` bytes from ``start``, in chunks."""
        ...

    async def delete(self, stored: StoredFile) -> None:
        """Remove the file (retention)."""
        ...


class LocalStorage:
    """Recordings on the local file system under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def find(self, relative: str) -> Path | None:
        """Blocking lookup (for worker threads and the CLI)."""
        return locate(self.root, relative)

    async def stat(self, relative: str) -> StoredFile | None:
        return await asyncio.to_thread(self._stat, relative)

    def _stat(self, relative: str) -> StoredFile | None:
        path = self.find(relative)
        if path is None:
            return None
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        return StoredFile(relative, st.st_size, st.st_mtime_ns, path)

    async def read_range(self, stored: StoredFile, start: int,
                         count: int) -> AsyncIterator[bytes]:
        assert stored.path is not None
        with stored.path.open("rb") as stream:
            stream.seek(start)
            while count > 0:
                chunk = await asyncio.to_thread(stream.read, min(CHUNK_BYTES, count))
                if not chunk:
                    return
                count -= len(chunk)
                yield chunk

    async def delete(self, stored: StoredFile) -> None:
        if stored.path is not None:
            await asyncio.to_thread(stored.path.unlink, True)


class S3Storage:
    """Option for MinIO / S3 (not wired): objects keyed by the relative path.

    How it would work: ``stat`` = HeadObject (ContentLength, LastModified); ``read_range`` =
    GetObject with ``Range: bytes=start-end`` streamed in chunks; ``delete`` = DeleteObject.
    A copy job (``mc mirror`` or the PBX's own upload) puts MixMonitor files into the bucket;
    the worker then only checks size stability through ``stat``. Needs an S3 client
    (aiobotocore or miniopy-async), which is not a dependency today.
    """

    def __init__(self, bucket: str, endpoint: str, prefix: str = "") -> None:
        self.bucket = bucket
        self.endpoint = endpoint
        self.prefix = prefix

    async def stat(self, relative: str) -> StoredFile | None:
        raise NotImplementedError("S3Storage is a documented option, not implemented")

    async def read_range(self, stored: StoredFile, start: int,
                         count: int) -> AsyncIterator[bytes]:
        raise NotImplementedError("S3Storage is a documented option, not implemented")
        yield b""  # pragma: no cover - makes this an async generator

    async def delete(self, stored: StoredFile) -> None:
        raise NotImplementedError("S3Storage is a documented option, not implemented")
