"""Where recording files live: a small protocol so the service can move off local disk.

``LocalStorage`` reads RECORDINGS_DIR (the PBX monitor folder, mounted or synced);
``recordings.s3.S3Storage`` keeps them in an S3-compatible object store (MinIO), chosen with
HOTLINE_RECORDINGS_STORAGE=s3. A ``StoredFile`` with a ``path`` is on the local file system:
the HTTP layer sends it with ``sendfile`` (zero copy) and the worker hashes it directly
(``recordings.check.examine_stored``); anything else goes through ``read_range`` chunks.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from recordings.locate import UnsafePath, locate, open_exact

CHUNK_BYTES = 256 * 1024


class StorageUnavailable(Exception):
    """The store cannot answer now (down, refusing, timing out, rejecting our keys).

    Not "the file is absent": callers keep waiting instead of marking recordings missing."""


class FileChanged(Exception):
    """The file at a recording's path is not the one that was linked (size or time differ)."""


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

    def list_keys(self, prefix: str = "") -> AsyncIterator[str]:
        """Relative paths of all stored files under ``prefix`` (reconcile's orphan listing)."""
        ...

    async def aclose(self) -> None:
        """Release connections (service stop, end of a CLI command)."""
        ...


class LocalStorage:
    """Recordings on the local file system under ``root``: exactly ``root/<key>``, opened
    without following symbolic links (``recordings.locate.open_exact``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def find(self, relative: str) -> Path | None:
        """Blocking lookup (for worker threads and the CLI)."""
        return locate(self.root, relative)

    async def stat(self, relative: str) -> StoredFile | None:
        return await asyncio.to_thread(self._stat, relative)

    def _stat(self, relative: str) -> StoredFile | None:
        try:
            stream = self.open(relative)
        except (UnsafePath, OSError):
            return None
        with stream:
            st = os.fstat(stream.fileno())
        return StoredFile(relative, st.st_size, st.st_mtime_ns, self.root / relative)

    def open(self, relative: str) -> BinaryIO:
        """The regular file at ``relative``, opened safely (blocking; the caller closes it).
        Raises OSError (FileNotFoundError when absent) or UnsafePath."""
        return os.fdopen(open_exact(self.root, relative), "rb", buffering=0)

    def open_linked(self, relative: str, size: int | None,
                    mtime_ns: int | None) -> tuple[BinaryIO, os.stat_result]:
        """``open``, checking on the opened descriptor that the file is still the one linked
        (its size, and modification time when they were recorded); the file and what its
        descriptor told. Raises FileChanged."""
        stream = self.open(relative)
        try:
            st = os.fstat(stream.fileno())
            if (size is not None and st.st_size != size) or \
                    (mtime_ns is not None and st.st_mtime_ns != mtime_ns):
                raise FileChanged(f"{relative}: {st.st_size} bytes, mtime {st.st_mtime_ns}; "
                                  f"linked {size} bytes, mtime {mtime_ns}")
        except BaseException:
            stream.close()
            raise
        return stream, st

    async def read_range(self, stored: StoredFile, start: int,
                         count: int) -> AsyncIterator[bytes]:
        stream = await asyncio.to_thread(self.open, stored.key)
        with stream:
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

    async def list_keys(self, prefix: str = "") -> AsyncIterator[str]:
        for relative in await asyncio.to_thread(self._walk, prefix):
            yield relative

    def _walk(self, prefix: str) -> list[str]:
        # os.walk tells files from folders by d_type: no stat per file.
        found = []
        # Walk only the folder the prefix names (a date folder for CEL backfill), not the tree.
        head = prefix.rpartition("/")[0]
        start = self.root / head if head and ".." not in head.split("/") else self.root
        for folder, _dirs, files in os.walk(start):
            base = Path(folder).relative_to(self.root).as_posix()
            for name in files:
                relative = name if base == "." else f"{base}/{name}"
                if relative.startswith(prefix):
                    found.append(relative)
        return found

    async def aclose(self) -> None:
        return None
