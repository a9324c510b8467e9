"""Numbers in paths and query strings: ASCII digits only, bounded.

``str.isdigit`` and ``int`` also take other scripts' digits (``٣``, ``३``) and superscripts
(``²``, on which ``int`` then fails), and a number too long for a BIGINT column reaches the
database as an error: both are a 400 here instead."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"[0-9]{1,18}")


def ascii_int(raw: str | None) -> int | None:
    """The value of 1-18 ASCII digits (fits a signed 64-bit column), else None."""
    if raw is None or _DIGITS.fullmatch(raw) is None:
        return None
    return int(raw)
