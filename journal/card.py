"""The request card (regulation §20): every field an operator fills in or an action sets, once.

One immutable table, ``CARD``, in the order the form shows the fields. Validation
(journal.validation), the request JSON (journal.queries), the register export
(journal.register), corrections (journal.workflow), the OpenAPI document and the pages
(``GET /api/v1/card``, which form.js builds the form from) all read it, so a field is added,
relabelled or given another limit here and nowhere else.

Pure data: imports nothing but the standard library, so any layer may read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

# What a value is, and so how it is checked and shown:
#   text           free text, trimmed, ``max_length`` characters at most, empty → null
#   phone          a Russian number, stored as +7XXXXXXXXXX
#   enp            ЕНП, the unified policy number: 16 digits with a check digit
#   snils          СНИЛС, stored as XXX-XXX-XXX YY
#   choice         one of ``choices``
#   classifier     a topic code of the classifier (journal.classifier), which admins edit
#   bool           yes/no
#   optional_bool  yes, no, or null (not assessed yet)
#   datetime       a moment, ISO 8601 in the JSON
FieldType = Literal["text", "phone", "enp", "snils", "choice", "classifier", "bool",
                    "optional_bool", "datetime"]
# The form's fieldsets; a field without a group is shown elsewhere (the request's summary
# line) or not at all, and is set by the workflow actions or the API.
Group = Literal["citizen", "appeal", "flags"]
# The form control that edits the field.
Input = Literal["text", "tel", "textarea", "select", "checkbox"]

GROUPS: tuple[tuple[Group, str], ...] = (
    ("citizen", "Сведения о гражданине"),
    ("appeal", "Суть обращения"),
    ("flags", "Отметки"),
)


@dataclass(frozen=True, slots=True)
class Choice:
    value: str
    label: str


@dataclass(frozen=True, slots=True)
class CardField:
    """One field of the card: a column of ``requests`` of the same name."""

    name: str
    label: str               # Russian, as the form shows it
    type: FieldType
    group: Group | None = None
    patchable: bool = False  # PATCH /api/v1/requests/{n} may set it (else an action does)
    required: bool = False   # once set, cannot be emptied
    max_length: int | None = None  # text: characters after trimming
    choices: tuple[Choice, ...] = ()
    # The form's control and its helpers.
    input: Input | None = None
    hint: str = ""
    inputmode: Literal["numeric"] | None = None
    counter: int | None = None  # the hint counts the digits typed against this many
    empty_label: str | None = None  # a select's "nothing chosen" option; None: no such option
    column: str = ""  # a shorter title for table columns (the register); "" → label
    # A correction of a closed request starts from these (who called and about what).
    copied_to_correction: bool = False

    @property
    def column_title(self) -> str:
        return self.column or self.label

    def values(self) -> tuple[str, ...]:
        return tuple(choice.value for choice in self.choices)


KINDS = ("консультация", "жалоба", "заявление", "предложение", "не по ОМС")
REDIRECT_TARGETS: Mapping[str, str] = MappingProxyType({
    "rzn": "Росздравнадзор", "other_tfoms": "ТФОМС другого субъекта РФ",
    "other": "Иная организация"})

CARD: tuple[CardField, ...] = (
    # ---------------------------------------------------------------- the citizen
    CardField("full_name", "ФИО гражданина", "text", "citizen", patchable=True,
              max_length=300, input="text", hint="Фамилия, имя, отчество полностью",
              column="Ф. И. О.", copied_to_correction=True),
    CardField("address_as", "Как обращаться", "text", "citizen", patchable=True,
              max_length=200, input="text", hint="Уточните в начале разговора",
              copied_to_correction=True),
    CardField("contact_phone", "Контактный телефон", "phone", "citizen", patchable=True,
              input="tel", hint="Например +7 916 123-45-67", copied_to_correction=True),
    CardField("policy_number", "Номер полиса (ЕНП)", "enp", "citizen", patchable=True,
              input="text", inputmode="numeric", hint="16 цифр", counter=16,
              copied_to_correction=True),
    CardField("snils", "СНИЛС", "snils", "citizen", patchable=True, input="text",
              inputmode="numeric", hint="XXX-XXX-XXX YY", copied_to_correction=True),
    CardField("territory", "Территория проживания", "text", "citizen", patchable=True,
              max_length=200, input="text", copied_to_correction=True),
    CardField("medical_org", "Медицинская организация", "text", "citizen", patchable=True,
              max_length=300, input="text",
              hint="Где оказывалась (или должна была оказываться) помощь",
              copied_to_correction=True),
    # ---------------------------------------------------------------- the appeal
    CardField("kind", "Вид обращения", "choice", "appeal", patchable=True,
              choices=tuple(Choice(kind, kind) for kind in KINDS), input="select",
              empty_label="— не выбран —", column="Вид", copied_to_correction=True),
    CardField("topic", "Тема по классификатору", "classifier", "appeal", patchable=True,
              input="select", empty_label="— не выбрана —", column="Тема",
              copied_to_correction=True),
    CardField("complaint_justified", "Жалоба обоснована", "optional_bool", "appeal",
              patchable=True, input="select", empty_label="— не оценена —",
              hint="Для жалоб: итог рассмотрения (в аналитических отчётах)"),
    CardField("summary", "Краткое содержание обращения", "text", "appeal", patchable=True,
              max_length=10000, input="textarea",
              hint="Лаконично и точно: суть вопроса, позволяющая сделать однозначный вывод",
              column="Содержание", copied_to_correction=True),
    CardField("result", "Результат рассмотрения (данный ответ)", "text", "appeal",
              patchable=True, max_length=10000, input="textarea", column="Результат"),
    # An editor moves the status only between these two; transferred, deferred and closed
    # come from their actions.
    CardField("status", "Статус", "choice", "appeal", patchable=True, required=True,
              choices=(Choice("in_progress", "в работе"), Choice("answered", "дан ответ")),
              input="select"),
    # ---------------------------------------------------------------- marks
    CardField("typical", "Типовой вопрос (ответ по сценарию)", "bool", "flags",
              patchable=True, input="checkbox"),
    CardField("written_appeal_advised", "Рекомендовано письменное обращение", "bool",
              "flags", patchable=True, input="checkbox"),
    CardField("urgent", "Требует немедленного вмешательства", "bool", "flags",
              patchable=True, input="checkbox", column="Срочное"),
    CardField("corruption", "Сведения о коррупционных проявлениях", "bool", "flags",
              patchable=True, input="checkbox",
              hint="Информация будет незамедлительно передана ответственному сотруднику"),
    CardField("urgent_action", "Принятые меры по срочному обращению", "text", "flags",
              patchable=True, max_length=5000, input="textarea"),
    # ---------------------------------------------------------------- set by the actions
    CardField("deferred_due_at", "Срок отсроченного ответа", "datetime"),
    CardField("deferred_done_at", "Отсроченный ответ дан", "datetime"),
    CardField("redirected_to", "Куда переадресован", "choice",
              choices=tuple(Choice(code, name) for code, name in REDIRECT_TARGETS.items())),
    CardField("redirect_note", "Пояснение к переадресации", "text", max_length=2000),
    # Not on the form: the API lets an editor name who answers for the request.
    CardField("assigned_to", "Ответственный", "text", patchable=True, max_length=80),
)

FIELDS: Mapping[str, CardField] = MappingProxyType({field.name: field for field in CARD})


def text_limit(name: str) -> int:
    """The most characters a text field of the card takes."""
    limit = FIELDS[name].max_length
    if limit is None:
        raise ValueError(f"{name} has no length limit")
    return limit


def card_json() -> dict[str, Any]:
    """The table as ``GET /api/v1/card`` serves it to the pages."""
    return {
        "groups": [{"key": key, "title": title} for key, title in GROUPS],
        "fields": [{
            "name": f.name, "label": f.label, "type": f.type, "group": f.group,
            "patchable": f.patchable, "required": f.required, "max_length": f.max_length,
            "choices": [{"value": c.value, "label": c.label} for c in f.choices],
            "input": f.input, "hint": f.hint, "inputmode": f.inputmode, "counter": f.counter,
            "empty_label": f.empty_label, "column": f.column_title,
        } for f in CARD],
    }
