"""HTTP ``Range: bytes=...`` for one file (RFC 9110 §14): pure parsing, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


class Unsatisfiable(ValueError):
    """No requested range overlaps the file: answer 416 with ``bytes */SIZE``."""


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def count(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range to send, or None for the whole file.

    Forms: ``first-last``, ``first-`` (open), ``-suffix``. A header that is not a byte range,
    or asks for several ranges, is ignored (the whole file is sent, as RFC 9110 allows);
    a well-formed range that lies wholly past the end raises :class:`Unsatisfiable`.
    """
    if not header:
        return None
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return None
    found = _SPEC.match(spec)
    if found is None:
        return None
    first, last = found.groups()
    if not first and not last:
        return None
    if not first:  # suffix: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable(header)
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    if last and int(last) < start:
        return None  # invalid: ignore
    if start >= size:
        raise Unsatisfiable(header)
    end = min(int(last), size - 1) if last else size - 1
    return ByteRange(start, end)
