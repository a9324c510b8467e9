"""Phone number normalisation: Russian numbers become +7XXXXXXXXXX."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"\D")


def normalize_phone(raw: str | None) -> str:
    """``89161234567``, ``+7 (916) 123-45-67``, ``79161234567`` → ``+79161234567``.

    Numbers that are not Russian 10-digit subscriber numbers are returned as digits (with a
    leading + when they had one); an empty or ``<unknown>`` caller gives ``""``.
    """
    if not raw or raw.strip() in {"<unknown>", "anonymous"}:
        return ""
    digits = _DIGITS.sub("", raw)
    if len(digits) == 11 and digits[0] in "78":
        return "+7" + digits[1:]
    if len(digits) == 10 and digits[0] == "9":
        return "+7" + digits
    return ("+" if raw.strip().startswith("+") else "") + digits
