"""The request card (journal.card) agrees with the table it describes, with validation and with
what the pages are served: a field added to one and not the other fails here."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Boolean, String, Text

from journal.card import CARD, FIELDS, GROUPS, card_json
from journal.models import Request, UtcDateTime
from journal.queries import (
    RECORD_FIELDS,
    RECORD_TIMES,
    REQUEST_FIELDS,
    TIME_FIELDS,
    request_summary,
)
from journal.validation import PATCHABLE, Invalid, validate_patch
from tests.helpers import bearer, create_user, login

COLUMNS = Request.__table__.columns
# Columns the request JSON never carries: the key, and how the PBX names the call.
INTERNAL = {"id", "pbx_id", "linkedid", "caller_normalized"}
STRING_TYPES = {"text", "phone", "enp", "snils", "choice", "classifier"}
# The longest value each formatted identifier is stored as.
STORED_LENGTH = {"phone": len("+79161234567"), "enp": 16, "snils": len("123-456-789 01")}


def test_every_request_column_is_a_card_field_or_part_of_the_record_and_not_both() -> None:
    card, record = set(FIELDS), {*RECORD_FIELDS, *RECORD_TIMES}
    assert card <= set(COLUMNS.keys()), "card fields without a column"
    assert card.isdisjoint(record) and card.isdisjoint(INTERNAL) and record.isdisjoint(INTERNAL)
    unclassified = set(COLUMNS.keys()) - card - record - INTERNAL
    assert not unclassified, "new request columns: add them to journal/card.py or RECORD_FIELDS"
    assert len(CARD) == len(FIELDS), "a field listed twice"


def test_each_field_type_fits_its_column() -> None:
    for field in CARD:
        column = COLUMNS[field.name]
        if field.type in STRING_TYPES:
            assert isinstance(column.type, String | Text), field.name
        elif field.type == "datetime":
            assert isinstance(column.type, UtcDateTime), field.name
        else:
            assert isinstance(column.type, Boolean), field.name
            if field.type == "optional_bool":
                assert column.nullable, field.name


def test_length_limits_match_the_columns() -> None:
    for field in CARD:
        column = COLUMNS[field.name]
        if field.type == "text":
            assert field.max_length is not None, field.name
            if not isinstance(column.type, Text):  # Text is unbounded: the card bounds it
                assert field.max_length == column.type.length, field.name
        else:
            assert field.max_length is None, field.name
        if field.type in STORED_LENGTH:
            assert STORED_LENGTH[field.type] <= column.type.length, field.name
        for choice in field.choices:
            assert len(choice.value) <= column.type.length, (field.name, choice.value)


@pytest.mark.parametrize("name", [f.name for f in CARD if f.patchable and f.type == "text"])
def test_validation_takes_each_text_field_up_to_its_limit(name: str) -> None:
    limit = FIELDS[name].max_length
    assert limit is not None
    assert validate_patch({name: "я" * limit}, set()).values[name] == "я" * limit
    with pytest.raises(Invalid) as caught:
        validate_patch({name: "я" * (limit + 1)}, set())
    assert caught.value.fields == {name: f"Не длиннее {limit} символов"}


def test_validation_accepts_exactly_the_patchable_fields() -> None:
    assert set(PATCHABLE) == {f.name for f in CARD if f.patchable}
    fixed = [f.name for f in CARD if not f.patchable] + ["number", "smo", "level"]
    with pytest.raises(Invalid) as caught:
        validate_patch(dict.fromkeys(fixed, "x"), set())
    assert caught.value.fields == dict.fromkeys(fixed, "Это поле нельзя изменить")


def test_choice_fields_check_their_choices() -> None:
    for field in CARD:
        assert bool(field.choices) == (field.type == "choice"), field.name
    with pytest.raises(Invalid) as caught:
        validate_patch({"kind": "просьба", "status": "closed"}, set())
    assert caught.value.fields == {
        "kind": "Вид обращения: консультация, жалоба, заявление, предложение, не по ОМС",
        "status": "Статус можно изменить только на «в работе» или «дан ответ»"}
    checked = validate_patch({"kind": "жалоба", "status": "answered"}, set())
    assert checked.values == {"kind": "жалоба", "status": "answered"}


def test_the_form_description_is_consistent() -> None:
    groups = {key for key, _ in GROUPS}
    controls = {"text": {"text"}, "phone": {"tel"}, "enp": {"text"}, "snils": {"text"},
                "choice": {"select"}, "classifier": {"select"}, "optional_bool": {"select"},
                "bool": {"checkbox"}}
    for field in CARD:
        if field.group is None:  # shown by the summary line or not at all: no control
            assert field.input is None and not field.hint, field.name
            continue
        assert field.group in groups and field.patchable, field.name
        assert field.input in controls[field.type] | ({"textarea"} if field.type == "text"
                                                      else set()), field.name
        if field.empty_label is not None:
            assert field.input == "select" and not field.required, field.name
        if field.counter is not None:
            assert field.hint, field.name  # the count is appended to the hint
    assert {f.group for f in CARD if f.group} == groups, "a fieldset with no fields"


def test_the_request_json_carries_every_card_field() -> None:
    request = Request(number=7, created_at=datetime(2025, 3, 1, tzinfo=UTC), line="88001",
                      caller_number="+79161234567", status="new", level="1", version=1)
    data = request_summary(request)
    assert set(FIELDS) <= set(data)
    assert set(data) == {*REQUEST_FIELDS, *TIME_FIELDS, "closed"}
    assert {f.name for f in CARD if f.type == "datetime"} <= set(TIME_FIELDS)


def test_the_served_card_is_the_table_in_form_order() -> None:
    served = json.loads(json.dumps(card_json(), ensure_ascii=False))
    assert [f["name"] for f in served["fields"]] == [f.name for f in CARD]
    assert [g["key"] for g in served["groups"]] == [key for key, _ in GROUPS]
    by_name = {f["name"]: f for f in served["fields"]}
    assert by_name["policy_number"]["counter"] == 16
    assert by_name["full_name"]["column"] == "Ф. И. О."  # the register's title
    assert [c["value"] for c in by_name["status"]["choices"]] == ["in_progress", "answered"]


def test_the_card_cannot_be_changed_at_run_time() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        CARD[0].max_length = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        FIELDS["full_name"] = CARD[1]  # type: ignore[index]


async def test_the_pages_get_the_card_when_signed_in(make_settings: Any,
                                                     start_service: Any) -> None:
    harness = await start_service(make_settings(), http=True, connect_ami=False)
    async with harness.http.get(harness.url("/api/v1/card")) as resp:
        assert resp.status == 401
    await create_user(harness.services, "auditor1", "auditor")
    headers = bearer(await login(harness, "auditor1"))
    async with harness.http.get(harness.url("/api/v1/card"), headers=headers) as resp:
        assert resp.status == 200
        assert await resp.json() == card_json()
