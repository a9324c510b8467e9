"""Validation of what operators type into a request (regulation §20: check the data entered).

``validate_patch`` turns a PATCH body into column values or raises :class:`Invalid` carrying
one Russian message per field — all fields are checked, nothing is applied half-way. Some
checks only warn (a ЕНП whose check digit does not match may still be a real policy number
mistyped on the citizen's side; the operator decides), returned next to the values.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from journal.card import CARD, CardField
from journal.phones import normalize_phone

# What PATCH may set: the card's patchable fields (the rest comes from the actions).
PATCHABLE: Mapping[str, CardField] = MappingProxyType(
    {f.name: f for f in CARD if f.patchable})
# A choice's message when the value is not one of them, where "<label>: a, b, c" won't do.
_NOT_A_CHOICE = {"status": "Статус можно изменить только на «в работе» или «дан ответ»"}
_DIGITS = re.compile(r"\D")


class Invalid(Exception):
    """Per-field Russian messages; ``message`` sums them up."""

    def __init__(self, fields: dict[str, str], message: str = "Проверьте заполнение полей") -> None:
        super().__init__(message)
        self.fields = fields
        self.message = message


@dataclass(slots=True)
class Checked:
    values: dict[str, Any] = field(default_factory=dict)
    warnings: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------ identifiers
def enp_check_digit(first15: str) -> int:
    """Check digit of a ЕНП (unified policy number), FFOMS order No. 65 (2011) algorithm:
    the digits in odd positions counted from the right form a number that is doubled; the
    digits in even positions form a number written to its left; the check digit tops the sum
    of all digits of the result up to a multiple of ten."""
    reversed_digits = first15[::-1]
    odd = reversed_digits[0::2][::-1]   # positions 1, 3, 5… from the right, in original order
    even = reversed_digits[1::2][::-1]
    combined = even + str(int(odd) * 2)
    total = sum(int(ch) for ch in combined)
    return (10 - total % 10) % 10


def check_enp(raw: str) -> tuple[str, str | None]:
    """(16 digits, warning or None); ValueError with a Russian message when the format is wrong."""
    digits = _DIGITS.sub("", raw)
    if len(digits) != 16 or digits != raw.replace(" ", "").replace("-", ""):
        raise ValueError("ЕНП должен состоять из 16 цифр")
    if enp_check_digit(digits[:15]) != int(digits[15]):
        return digits, "Контрольная цифра ЕНП не сходится — проверьте номер полиса"
    return digits, None


def snils_checksum(first9: str) -> int:
    """СНИЛС control number (Pension Fund rules): Σ digit × weight (9…1), then mod 101,
    with 100 and 101 giving 00."""
    total = sum(int(d) * w for d, w in zip(first9, range(9, 0, -1), strict=True))
    if total < 100:
        return total
    if total in (100, 101):
        return 0
    remainder = total % 101
    return 0 if remainder == 100 else remainder


def check_snils(raw: str) -> str:
    """``XXX-XXX-XXX YY`` or ValueError. Numbers up to 001-001-998 carry no control number."""
    digits = _DIGITS.sub("", raw)
    if len(digits) != 11 or re.search(r"[^\d\s-]", raw):
        raise ValueError("СНИЛС должен состоять из 11 цифр (XXX-XXX-XXX YY)")
    if int(digits[:9]) > 1001998 and snils_checksum(digits[:9]) != int(digits[9:]):
        raise ValueError("Неверное контрольное число СНИЛС")
    return f"{digits[0:3]}-{digits[3:6]}-{digits[6:9]} {digits[9:]}"


def check_phone(raw: str) -> str:
    """A Russian number normalised to +7XXXXXXXXXX, or ValueError."""
    normalized = normalize_phone(raw)
    if not re.fullmatch(r"\+7\d{10}", normalized):
        raise ValueError("Телефон: 10 цифр после +7 или 8, например +7 916 123-45-67")
    return normalized


# ------------------------------------------------------------------ the PATCH body
def _text(value: Any, limit: int | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("Ожидается строка")
    value = value.strip()
    if limit is not None and len(value) > limit:
        raise ValueError(f"Не длиннее {limit} символов")
    return value or None


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("Ожидается да/нет (true/false)")
    return value


def validate_patch(body: dict[str, Any], topics: Collection[str]) -> Checked:
    """Check every field of ``body`` (without ``version``); raise Invalid listing all errors."""
    checked = Checked()
    errors: dict[str, str] = {}
    for name, value in body.items():
        try:
            if name not in PATCHABLE:
                raise ValueError("Это поле нельзя изменить")
            checked.values[name] = _check_field(PATCHABLE[name], value, topics,
                                                checked.warnings)
        except ValueError as exc:
            errors[name] = str(exc)
    if errors:
        raise Invalid(errors)
    return checked


def _check_field(card_field: CardField, value: Any, topics: Collection[str],
                 warnings: dict[str, str]) -> Any:
    kind = card_field.type
    if kind == "text":
        return _text(value, card_field.max_length)
    if kind == "bool":
        return _bool(value)
    if kind == "optional_bool":
        return None if value is None else _bool(value)
    if value is None or value == "":
        if card_field.required:
            raise ValueError(f"Укажите {card_field.label.lower()}")
        return None
    if not isinstance(value, str):
        raise ValueError("Ожидается строка")
    if kind == "phone":
        return check_phone(value)
    if kind == "enp":
        digits, warning = check_enp(value.strip())
        if warning:
            warnings[card_field.name] = warning
        return digits
    if kind == "snils":
        return check_snils(value)
    if kind == "classifier":
        if value not in topics:
            raise ValueError("Тема не найдена в классификаторе")
        return value
    if kind == "choice":
        choices = card_field.values()
        if value not in choices:
            raise ValueError(_NOT_A_CHOICE.get(
                card_field.name, f"{card_field.label}: " + ", ".join(choices)))
        return value
    raise ValueError("Это поле нельзя изменить")
