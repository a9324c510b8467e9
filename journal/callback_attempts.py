"""Call-back attempts on a missed call: what they add up to, and the request's result.

Pure rules shared by intake (an attempt taken from the outcome of the linked call-back call)
and by the journal workflow (an attempt recorded by hand, journal/missed.py).
"""

from __future__ import annotations

from collections.abc import Iterable

# The outcome of the inbound call that makes its request a missed call (the caller hung up
# before an operator answered: in the queue, while it rang, or in the announcement).
MISSED_OUTCOME = "abandoned"
RESULTS = ("answered", "no_answer", "busy")
FAILED = frozenset({"no_answer", "busy"})
CALLED_BACK = "Перезвонили"
_GAVE_UP_PREFIX = "Не дозвонились после "


def result_of_call(outcome: str | None) -> str:
    """The attempt a call-back call makes: the citizen picked up, or not. (The tracker does not
    tell a busy line from no answer; "busy" is recorded by hand.)"""
    return "answered" if outcome == "answered" else "no_answer"


def gave_up_text(failures: int) -> str:
    word = "попытки" if failures % 10 == 1 and failures % 100 != 11 else "попыток"
    return f"{_GAVE_UP_PREFIX}{failures} {word}"


def settlement(results: Iterable[str], max_attempts: int) -> tuple[str, str | None]:
    """(state, result text) of a missed call after these attempts: ``called_back`` once one
    was answered, ``gave_up`` after ``max_attempts`` failed ones, else ``open``."""
    results = list(results)
    if "answered" in results:
        return "called_back", CALLED_BACK
    failures = sum(1 for r in results if r in FAILED)
    if failures >= max_attempts:
        return "gave_up", gave_up_text(failures)
    return "open", None


def result_to_fill(current: str | None, text: str | None) -> str | None:
    """The request's new result, or None to leave it: what an operator wrote stays; an
    automatic text is replaced by the newer one."""
    if text is None or current == text:
        return None
    if current and current.strip() and not is_automatic(current):
        return None
    return text


def is_automatic(text: str) -> bool:
    return text == CALLED_BACK or text.startswith(_GAVE_UP_PREFIX)
