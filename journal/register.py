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

from journal.classifier import current_topics
from journal.models import Request
from journal.queries import RequestFilter, filter_conditions
from journal.users import Principal

BATCH = 2000
# (key, title, kind) — kinds as journal.analytics' columns.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("number", "Номер", "int"), ("created_at", "Дата и время", "text"),
    ("line", "Линия", "text"), ("caller_number", "Телефон", "text"),
    ("full_name", "Ф. И. О.", "text"), ("kind", "Вид", "text"), ("topic", "Тема", "text"),
    ("summary", "Содержание", "text"), ("result", "Результат", "text"),
    ("level", "Уровень", "text"), ("smo", "СМО", "text"), ("status", "Статус", "text"),
    ("operator", "Оператор", "text"), ("outcome", "Исход звонка", "text"),
    ("urgent", "Срочное", "text"), ("complaint_justified", "Жалоба обоснована", "text"),
    ("deferred_due_at", "Срок отсроченного ответа", "text"),
    ("closed_at", "Закрыто", "text"),
)
_FIELDS = [getattr(Request, key) for key, _, _ in COLUMNS]
_YES_NO = {True: "да", False: "нет", None: ""}


def _local(value: datetime | None, zone: ZoneInfo) -> str:
    if value is None:
        return ""
    return value.astimezone(zone).strftime("%d.%m.%Y %H:%M")


def _row(values: Any, zone: ZoneInfo, topics: dict[str, str]) -> dict[str, Any]:
    row = dict(zip((key for key, _, _ in COLUMNS), values, strict=True))
    if row["topic"]:
        row["topic"] = topics.get(row["topic"], row["topic"])
    for key in ("created_at", "deferred_due_at", "closed_at"):
        row[key] = _local(row[key], zone)
    row["urgent"] = _YES_NO[bool(row["urgent"])]
    row["complaint_justified"] = _YES_NO[row["complaint_justified"]]
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
