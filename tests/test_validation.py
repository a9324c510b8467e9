"""Field checks of regulation §20 ("verify the data entered"): phones, ЕНП, СНИЛС, kinds,
topics and lengths — all errors at once, in Russian."""

from __future__ import annotations

import pytest

from journal.validation import (
    Invalid,
    check_enp,
    check_snils,
    enp_check_digit,
    validate_patch,
)

TOPICS = {"policy", "care_quality"}


def valid_enp(first15: str = "500000000000001") -> str:
    return first15 + str(enp_check_digit(first15))


def test_phone_is_normalised_to_plus7() -> None:
    checked = validate_patch({"contact_phone": "8 (916) 123-45-67"}, TOPICS)
    assert checked.values["contact_phone"] == "+79161234567"


def test_enp_must_have_16_digits() -> None:
    with pytest.raises(Invalid) as caught:
        validate_patch({"policy_number": "12345"}, TOPICS)
    assert caught.value.fields == {"policy_number": "ЕНП должен состоять из 16 цифр"}


def test_enp_check_digit_mismatch_is_only_a_warning() -> None:
    good = valid_enp()
    bad = good[:15] + str((int(good[15]) + 1) % 10)
    assert check_enp(good) == (good, None)
    digits, warning = check_enp(bad)
    assert digits == bad and warning and "Контрольная цифра" in warning
    checked = validate_patch({"policy_number": bad}, TOPICS)
    assert checked.values["policy_number"] == bad
    assert "policy_number" in checked.warnings


def test_enp_check_digit_algorithm_by_hand() -> None:
    # 15 digits 123456789012345: odd positions from the right 5,3,1,9,7,5,3,1 → "13579135"
    # doubled 27158270; even positions 4,2,0,8,6,4,2 → "2468024"; digits of
    # "246802427158270" sum to 58 → check digit 2.
    assert enp_check_digit("123456789012345") == 2


def test_snils_checksum() -> None:
    assert check_snils("112-233-445 95") == "112-233-445 95"
    assert check_snils("11223344595") == "112-233-445 95"
    with pytest.raises(ValueError, match="контрольное число"):
        check_snils("112-233-445 96")
    with pytest.raises(ValueError, match="11 цифр"):
        check_snils("112-233")


def test_kind_topic_and_length_errors_are_reported_together() -> None:
    with pytest.raises(Invalid) as caught:
        validate_patch({"kind": "просьба", "topic": "weather", "full_name": "я" * 301,
                        "typical": "да", "number": 5}, TOPICS)
    fields = caught.value.fields
    assert set(fields) == {"kind", "topic", "full_name", "typical", "number"}
    assert "консультация" in fields["kind"]
    assert fields["number"] == "Это поле нельзя изменить"


def test_not_about_oms_is_a_kind() -> None:
    assert validate_patch({"kind": "не по ОМС"}, TOPICS).values == {"kind": "не по ОМС"}
