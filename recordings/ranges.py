"""HTTP ``Range: bytes=...`` for one file (RFC 9110 §14): pure parsing, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

# ASCII digits only (``\d`` would take any script's digits, which ``int`` then accepts).
_SPEC = re.compile(r"[ \t]*([0-9]*)[ \t]*-[ \t]*([0-9]*)[ \t]*")
# Past any file's size; longer numbers are clipped here before ``int`` (which refuses
# strings of more than 4300 digits, and need not parse thousands of them anyway).
_MAX_DIGITS = 19
_HUGE = 10**_MAX_DIGITS


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
    found = _SPEC.fullmatch(spec)
    if found is None:
        return None
    first, last = found.groups()
    if not first and not last:
        return None
    if not first:  # suffix: the last N bytes
        suffix = _number(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable(header)
        return ByteRange(max(0, size - suffix), size - 1)
    start = _number(first)
    if last and _number(last) < start:
        return None  # invalid: ignore
    if start >= size:
        raise Unsatisfiable(header)
    end = min(_number(last), size - 1) if last else size - 1
    return ByteRange(start, end)


def _number(digits: str) -> int:
    """The value of ASCII ``digits``; anything of more than 19 digits counts as 10**19."""
    stripped = digits.lstrip("0") or "0"
    return _HUGE if len(stripped) > _MAX_DIGITS else int(stripped)
