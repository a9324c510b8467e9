"""The topic classifier: editable by the administrator, versioned (every edit is a new row, old
requests keep their stable code), seeded with the topics of the fund's reporting forms."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from journal.models import TopicVersion

SEED_TOPICS: tuple[tuple[str, str], ...] = (
    ("smo_choice", "Выбор и замена страховой медицинской организации"),
    ("policy", "Полис ОМС (оформление, замена, ЕНП)"),
    ("mo_choice", "Выбор медицинской организации, врача"),
    ("care_organisation", "Организация оказания медицинской помощи"),
    ("care_quality", "Качество медицинской помощи"),
    ("care_refusal", "Отказ в оказании медицинской помощи"),
    ("drugs", "Лекарственное обеспечение"),
    ("money_charged", "Взимание денежных средств за медицинскую помощь"),
    ("checkups", "Диспансеризация и профилактические осмотры"),
    ("out_of_region", "Медицинская помощь вне субъекта страхования"),
    ("corruption", "Коррупционные проявления"),
    ("not_oms", "Вопросы, не относящиеся к ОМС"),
    ("other", "Прочее"),
)


@dataclass(frozen=True, slots=True)
class Topic:
    code: str
    label: str
    version: int
    active: bool
    position: int

    def public(self) -> dict[str, Any]:
        return {"code": self.code, "label": self.label, "version": self.version,
                "active": self.active, "position": self.position}


async def ensure_seeded(session: AsyncSession) -> None:
    """Insert the seed topics into an empty classifier (a concurrent seeder may win: fine)."""
    if await session.scalar(select(func.count()).select_from(TopicVersion)):
        return
    now = datetime.now(UTC)
    try:
        async with session.begin_nested():
            session.add_all(TopicVersion(code=code, version=1, label=label, active=True,
                                         position=i, changed_by="seed", changed_at=now)
                            for i, (code, label) in enumerate(SEED_TOPICS))
    except IntegrityError:
        pass


async def current_topics(session: AsyncSession, *, include_inactive: bool = False) -> list[Topic]:
    """Each code at its highest version, in display order."""
    await ensure_seeded(session)
    latest = (select(TopicVersion.code, func.max(TopicVersion.version).label("v"))
              .group_by(TopicVersion.code).subquery())
    rows = await session.scalars(
        select(TopicVersion).join(latest, (TopicVersion.code == latest.c.code)
                                  & (TopicVersion.version == latest.c.v))
        .order_by(TopicVersion.position, TopicVersion.code))
    topics = [Topic(r.code, r.label, r.version, r.active, r.position) for r in rows]
    return topics if include_inactive else [t for t in topics if t.active]


async def active_codes(session: AsyncSession) -> set[str]:
    return {t.code for t in await current_topics(session)}


async def save_topic(session: AsyncSession, code: str, label: str, active: bool,
                     position: int | None, login: str | None) -> Topic:
    """Add a new version of ``code`` (or the first one for a new code)."""
    await ensure_seeded(session)
    previous = await session.scalar(
        select(TopicVersion).where(TopicVersion.code == code)
        .order_by(TopicVersion.version.desc()).limit(1))
    if position is None:
        position = previous.position if previous else len(SEED_TOPICS) + 100
    row = TopicVersion(code=code, version=(previous.version + 1) if previous else 1,
                       label=label, active=active, position=position, changed_by=login,
                       changed_at=datetime.now(UTC))
    session.add(row)
    await session.flush()
    return Topic(row.code, row.label, row.version, row.active, row.position)
