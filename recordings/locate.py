"""A recording's file under RECORDINGS_DIR, by its exact path — never by a search.

Asterisk names the file in ``MIXMONITOR_FILENAME`` (an absolute path under its monitor folder,
RECORDINGS_PBX_DIR); the file's key is that path with the folder's prefix taken off, and the
service looks at exactly ``RECORDINGS_DIR/<key>`` (or the S3 object ``S3_PREFIX<key>``). A name
is matched literally: ``*``, ``?`` and ``[`` are ordinary characters, and a file that is not at
that exact place is not there (the recording stays pending, then missing). A searching
fallback once linked another caller's recording to a request, so there is none.

Local files are opened without following symbolic links at any level below RECORDINGS_DIR
(``O_NOFOLLOW`` on every component): a link planted in the spool, or a folder swapped for one,
is "not there" rather than a way to another file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO planted under the name must not hang a thread.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class UnsafePath(ValueError):
    """The path would escape the recordings directory (or is not a plain relative path)."""


class NotAFile(OSError):
    """Something other than a regular file is at the recording's path."""


def check_key(relative: str) -> str:
    """``relative`` if it is a plain relative path: no NUL, backslash, ``..``, ``.``, empty
    segment or leading ``/``. Raises :class:`UnsafePath` otherwise."""
    if not relative or "\x00" in relative or "\\" in relative or relative.startswith("/"):
        raise UnsafePath(relative)
    if any(part in ("", ".", "..") for part in relative.split("/")):
        raise UnsafePath(relative)
    return relative


def recording_key(pbx_path: str, pbx_dir: str) -> str | None:
    """The key of the file Asterisk names ``pbx_path``: the part below ``pbx_dir``, exactly.

    None when ``pbx_path`` is not below ``pbx_dir`` or the rest is not a plain relative path
    (``..``, NUL, ``//``, ...): such a recording is never linked to any file."""
    base = pbx_dir.rstrip("/") + "/"
    if not pbx_path.startswith(base):
        return None
    try:
        return check_key(pbx_path[len(base):])
    except UnsafePath:
        return None


def safe_join(root: Path, relative: str) -> Path:
    """``root / relative`` if ``relative`` is a plain relative path (no ``..``, no NUL, not
    absolute) and, with symbolic links resolved, stays inside ``root``."""
    check_key(relative)
    base = root.resolve()
    candidate = (base / PurePosixPath(relative)).resolve()
    if candidate != base and base not in candidate.parents:
        raise UnsafePath(relative)  # a symlink pointing outside
    return candidate


def open_exact(root: Path, relative: str) -> int:
    """A read-only descriptor of the regular file ``root/relative``, opened without following
    a symbolic link at any level below ``root``; the caller closes it.

    Raises FileNotFoundError (not there), :class:`UnsafePath`, :class:`NotAFile`, or another
    OSError (a symlink on the way: ELOOP / ENOTDIR)."""
    parts = check_key(relative).split("/")
    folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            inner = os.open(part, _DIR_FLAGS, dir_fd=folder)
            os.close(folder)
            folder = inner
        fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=folder)
    finally:
        os.close(folder)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotAFile(relative)
    except BaseException:
        os.close(fd)
        raise
    return fd


def locate(root: Path, relative: str) -> Path | None:
    """``root/relative`` if a regular file is there (reached without symbolic links), else
    None. Never looks anywhere else."""
    try:
        os.close(open_exact(root, relative))
    except (UnsafePath, OSError):
        return None
    return root / relative
