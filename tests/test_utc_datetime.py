"""UtcDateTime (issue 11): every datetime column stores UTC and gives back aware UTC datetimes on
SQLite and PostgreSQL alike, whether read through the ORM, a Core select or an aggregate; a
naive datetime is refused rather than guessed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import StatementError

from journal.db import Database
from journal.models import Base, CelMark, UtcDateTime

MSK = timezone(timedelta(hours=3))
AT_MSK = datetime(2026, 11, 25, 7, 19, 30, 123456, tzinfo=MSK)
AT_UTC = datetime(2026, 11, 25, 4, 19, 30, 123456, tzinfo=UTC)


def test_every_datetime_column_is_utc_datetime() -> None:
    for table in Base.metadata.tables.values():
        for column in table.columns:
            if column.type.python_type is datetime:
                assert isinstance(column.type, UtcDateTime), column


async def test_aware_utc_in_and_out_on_both_backends(db_url: tuple[str, str | None]) -> None:
    db = Database(db_url[0], schema=db_url[1])
    try:
        await db.upgrade_schema()
        async with db.sessions.begin() as session:
            session.add(CelMark(pbx_id="pbx1", high_water=AT_MSK, updated_at=AT_UTC))
        async with db.session() as session:
            mark = await session.scalar(select(CelMark))
            assert mark is not None
            latest = await session.scalar(select(func.max(CelMark.high_water)))
            found = await session.scalar(
                select(CelMark.pbx_id).where(CelMark.high_water == AT_MSK))
            raw = await session.scalar(text("SELECT high_water FROM cel_marks"))
        for value in (mark.high_water, mark.updated_at, latest):
            assert value == AT_UTC and value.tzinfo is UTC
        assert found == "pbx1"  # a bound aware value is compared as UTC too
        # Stored as UTC: SQLite's text is the UTC wall time (raw SQL gets it naive, as before).
        if db.is_sqlite:
            assert raw == "2026-11-25 04:19:30.123456"
        else:
            assert raw == AT_UTC
        async with db.sessions.begin() as session:
            session.add(CelMark(pbx_id="pbx2", high_water=AT_UTC.replace(tzinfo=None),
                                updated_at=AT_UTC))
            with pytest.raises(StatementError, match="naive datetime"):
                await session.flush()
    finally:
        await db.dispose()
