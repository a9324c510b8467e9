"""Find a recording's file under RECORDINGS_DIR from the path stored at intake.

The service may see the PBX's monitor folder with FreePBX-style ``YYYY/MM/DD`` sub-folders or
flattened (a copy job, an NFS export of one folder). Tried in order: the relative path as is,
the bare file name at the top, then the file name anywhere under the date folder (and its
day/month parents). The stored path comes from the PBX, never from an HTTP client, but it is
still refused if it would leave the directory.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

_DATE_DIRS = re.compile(r"^(\d{4})/(\d{2})/(\d{2})/")
_NAME_DATE = re.compile(r"-(\d{4})(\d{2})(\d{2})-\d{6}-")
_SEARCH_LIMIT = 5000  # directory entries looked at in a fallback search


class UnsafePath(ValueError):
    """The path would escape the recordings directory."""


def safe_join(root: Path, relative: str) -> Path:
    """``root / relative`` if it stays inside ``root`` (no absolute path, no ``..``, no NUL)."""
    if not relative or "\x00" in relative or "\\" in relative:
        raise UnsafePath(relative)
    pure = PurePosixPath(relative)
    if pure.is_absolute() or any(part in ("..", "") for part in pure.parts):
        raise UnsafePath(relative)
    base = root.resolve()
    candidate = (base / pure).resolve()
    if candidate != base and base not in candidate.parents:
        raise UnsafePath(relative)  # a symlink pointing outside
    return candidate


def _date_folder(relative: str) -> str | None:
    found = _DATE_DIRS.match(relative)
    if found:
        return "/".join(found.groups())
    named = _NAME_DATE.search(PurePosixPath(relative).name)
    return "/".join(named.groups()) if named else None


def candidates(root: Path, relative: str) -> list[Path]:
    """The direct places to look, most likely first (only paths inside ``root``)."""
    name = PurePosixPath(relative).name
    found: list[Path] = []
    for option in (relative, name):
        try:
            path = safe_join(root, option)
        except UnsafePath:
            continue
        if path not in found:
            found.append(path)
    return found


def _search(root: Path, relative: str) -> Path | None:
    """Look for the file name below the date folder, then its month and year folders."""
    name = PurePosixPath(relative).name
    date = _date_folder(relative)
    if not date:
        return None
    parts = date.split("/")
    seen = 0
    for depth in (3, 2, 1):
        try:
            folder = safe_join(root, "/".join(parts[:depth]))
        except UnsafePath:
            return None
        if not folder.is_dir():
            continue
        for path in folder.rglob(name):
            seen += 1
            if path.is_file() and root.resolve() in path.resolve().parents:
                return path
            if seen > _SEARCH_LIMIT:
                return None
    return None


def locate(root: Path, relative: str) -> Path | None:
    """The file for ``relative`` under ``root``, or None if it is not (yet) there.

    A path that tries to leave ``root`` (absolute, ``..``) is never followed, not even by name.
    """
    try:
        safe_join(root, relative)
    except UnsafePath:
        return None
    for path in candidates(root, relative):
        if path.is_file():
            return path
    return _search(root, relative)
