"""The register of requests: one row per card of the period, filtered as the request list is.

A page of it for the screen; every row, streamed from a server-side cursor in batches, for
the CSV and XLSX files (memory stays flat however long the quarter).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from journal.card import FIELDS
from journal.classifier import current_topics
from journal.models import Request
from journal.queries import RequestFilter, filter_conditions
from journal.users import Principal

BATCH = 2000


def _card(*names: str) -> tuple[tuple[str, str, str], ...]:
    return tuple((name, FIELDS[name].column_title, "text") for name in names)


# (key, title, kind) — kinds as journal.analytics' columns; the card's fields titled as the card
# titles its columns.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("number", "Номер", "int"), ("created_at", "Дата и время", "text"),
    ("line", "Линия", "text"), ("caller_number", "Телефон", "text"),
    *_card("full_name", "kind", "topic", "summary", "result"),
    ("level", "Уровень", "text"), ("smo", "СМО", "text"), *_card("status"),
    ("operator", "Оператор", "text"), ("outcome", "Исход звонка", "text"),
    *_card("urgent", "complaint_justified", "deferred_due_at"),
    ("closed_at", "Закрыто", "text"),
)
_FIELDS = [getattr(Request, key) for key, _, _ in COLUMNS]
_CARD_TYPES = {key: FIELDS[key].type for key, _, _ in COLUMNS if key in FIELDS}
_TIMES = ("created_at", "closed_at",
          *(key for key, kind in _CARD_TYPES.items() if kind == "datetime"))
_YES_NO = {True: "да", False: "нет", None: ""}


def _local(value: datetime | None, zone: ZoneInfo) -> str:
    if value is None:
        return ""
    return value.astimezone(zone).strftime("%d.%m.%Y %H:%M")


def _row(values: Any, zone: ZoneInfo, topics: dict[str, str]) -> dict[str, Any]:
    row = dict(zip((key for key, _, _ in COLUMNS), values, strict=True))
    if row["topic"]:
        row["topic"] = topics.get(row["topic"], row["topic"])
    for key in _TIMES:
        row[key] = _local(row[key], zone)
    for key, kind in _CARD_TYPES.items():
        if kind == "bool":
            row[key] = _YES_NO[bool(row[key])]
        elif kind == "optional_bool":
            row[key] = _YES_NO[row[key]]
    return row


async def page(session: AsyncSession, user: Principal, flt: RequestFilter,
               tz: str) -> tuple[list[dict[str, Any]], int]:
    conditions = filter_conditions(user, flt)
    total = await session.scalar(select(func.count()).select_from(Request).where(*conditions))
    zone = ZoneInfo(tz)
    rows = await session.execute(select(*_FIELDS).where(*conditions)
                                 .order_by(Request.number).limit(flt.limit).offset(flt.offset))
    topics = await _topic_labels(session)
    return [_row(values, zone, topics) for values in rows], int(total or 0)


async def _topic_labels(session: AsyncSession) -> dict[str, str]:
    return {t.code: t.label for t in await current_topics(session, include_inactive=True)}


async def stream(session: AsyncSession, user: Principal, flt: RequestFilter,
                 tz: str) -> AsyncIterator[list[dict[str, Any]]]:
    """Every row of the register, in batches, from a server-side cursor."""
    zone = ZoneInfo(tz)
    topics = await _topic_labels(session)
    query = select(*_FIELDS).where(*filter_conditions(user, flt)).order_by(Request.number) \
        .execution_options(yield_per=BATCH)
    result = await session.stream(query)
    async for batch in result.partitions(BATCH):
        yield [_row(values, zone, topics) for values in batch]
