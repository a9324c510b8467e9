"""Report periods the journal cannot compute are a clear 400-type refusal, never a crash
(found by the schemathesis run: year 0, a trailing newline)."""

from __future__ import annotations

import pytest

from journal.reports import BadPeriod, parse_period


@pytest.mark.parametrize("text", ["0000-01", "0001-Q1", "9999-12", "2026-11\n", "２０２６-11"])
def test_a_period_outside_the_computable_years_or_not_plain_ascii_is_refused(text: str) -> None:
    with pytest.raises(BadPeriod):
        parse_period(text, "Europe/Moscow")


def test_the_first_and_last_reportable_periods() -> None:
    first = parse_period("1900-01", "Europe/Moscow")
    with pytest.raises(BadPeriod):
        first.previous("Europe/Moscow")  # nothing before the first year to compare with
    last = parse_period("2999-Q4", "Europe/Moscow")
    assert last.previous("Europe/Moscow").label == "2999-Q3"
