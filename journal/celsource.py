"""Reading the PBX's CEL table (cel_pgsql, cel_sqlite3_custom, any SQLAlchemy URL), read-only.

``eventtime`` is the PBX's wall time without a zone (``HOTLINE_PBX_TIMEZONE``): bounds are
turned into that before they are compared. In SQLite the column is text
(``YYYY-MM-DD HH:MM:SS[.ffffff]``), compared as text; elsewhere a timestamp.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from telephony.cel import COLUMNS, BadCelRow, CelRow, extra_of_text, row_of

log = structlog.get_logger(__name__)

CHUNK = 400
_ASYNC_DRIVERS = {"postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg",
                  "sqlite": "sqlite+aiosqlite"}


def async_url(url: str) -> str:
    """A plain ``postgresql://`` / ``sqlite://`` URL gets this service's async driver."""
    parsed = make_url(url)
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver).render_as_string(hide_password=False) if driver \
        else url


class CelSource:
    """The CEL table of one PBX."""

    def __init__(self, url: str, *, table: str = "cel", timezone: str = "UTC") -> None:
        self.engine: AsyncEngine = create_async_engine(async_url(url), pool_pre_ping=True)
        schema, _, name = table.rpartition(".")
        self.schema = schema or None
        self.name = name
        self.zone = ZoneInfo(timezone)
        self._table: sa.TableClause | None = None
        self.bad_rows = 0

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    async def _cel(self) -> sa.TableClause:
        """The table with the columns it has (``id`` only where it exists)."""
        if self._table is None:
            async with self.engine.connect() as conn:
                found = await conn.run_sync(
                    lambda sync: {c["name"].lower() for c in
                                  sa.inspect(sync).get_columns(self.name, schema=self.schema)})
            if not {"eventtime", "uniqueid", "linkedid", "eventtype"} <= found:
                raise RuntimeError(f"CEL table {self.name!r} lacks cel_pgsql's columns "
                                   f"(has {sorted(found)[:20]})")
            names = [c for c in ("id", *COLUMNS) if c in found]
            self._table = sa.table(self.name, *[sa.column(c) for c in names],
                                   schema=self.schema)
        return self._table

    def _bound(self, at: datetime) -> Any:
        """A UTC instant as the PBX's wall time, as the column stores it."""
        local = at.astimezone(self.zone).replace(tzinfo=None)
        return local.isoformat(sep=" ") if self.is_sqlite else local

    def _rows(self, raw: Iterable[Any]) -> list[CelRow]:
        rows = []
        for mapping in raw:
            try:
                rows.append(row_of(mapping, self.zone))
            except BadCelRow as exc:
                self.bad_rows += 1
                log.warning("cel.bad_row", error=str(exc)[:200])
        return rows

    async def linkedids_between(self, start: datetime,
                                end: datetime | None = None) -> tuple[list[str], datetime | None]:
        """Linkedids with a row in [start, end), and the newest eventtime seen."""
        cel = await self._cel()
        time = cel.c.eventtime
        query = sa.select(cel.c.linkedid, sa.func.max(time)).where(time >= self._bound(start))
        if end is not None:
            query = query.where(time < self._bound(end))
        query = query.group_by(cel.c.linkedid)
        async with self.engine.connect() as conn:
            result = (await conn.execute(query)).all()
        linkedids = [str(lid) for lid, _t in result if lid]
        newest = None
        for _lid, value in result:
            try:
                at = row_of({"uniqueid": "-", "eventtime": value}, self.zone).at
            except BadCelRow:
                continue
            newest = at if newest is None or at > newest else newest
        return linkedids, newest

    async def rows_of(self, linkedids: Sequence[str]) -> list[CelRow]:
        """Every row of these Linkedids (a call's rows before the window or committed late
        included), and the earlier rows of channels that came from another call: a channel
        that joined this one (REFER/Replaces) started under another Linkedid, so its rows here
        lack a CHAN_START, and a transfer names the consultation channel."""
        cel = await self._cel()
        columns = [c for c in cel.c]
        raw: list[Any] = []
        async with self.engine.connect() as conn:
            for start in range(0, len(linkedids), CHUNK):
                chunk = list(linkedids[start:start + CHUNK])
                result = await conn.execute(sa.select(*columns).where(cel.c.linkedid.in_(chunk)))
                raw.extend(result.mappings().all())
            elsewhere = sorted(_moved_in(raw))
            for start in range(0, len(elsewhere), CHUNK):
                result = await conn.execute(sa.select(*columns).where(
                    cel.c.uniqueid.in_(elsewhere[start:start + CHUNK])))
                raw.extend(result.mappings().all())
        return self._rows(_unique(raw))

    async def close(self) -> None:
        await self.engine.dispose()


def _moved_in(raw: Sequence[Any]) -> set[str]:
    """Uniqueids whose first rows are under another Linkedid."""
    present: set[str] = set()
    started: set[str] = set()
    named: set[str] = set()
    for row in raw:
        uniqueid = str(row["uniqueid"] or "")
        present.add(uniqueid)
        kind = str(row["eventtype"] or "").upper()
        if kind == "CHAN_START":
            started.add(uniqueid)
        elif kind in ("ATTENDEDTRANSFER", "BLINDTRANSFER"):
            data = extra_of_text(str(row.get("extra") or ""))
            for key in ("channel2_uniqueid", "transferee_channel_uniqueid",
                        "transfer_target_channel_uniqueid"):
                value = data.get(key)
                if isinstance(value, str) and value not in ("", "N/A"):
                    named.add(value)
    return ((present - started) | (named - present)) - {""}


def _unique(raw: Sequence[Any]) -> list[Any]:
    """Rows read twice (by Linkedid and by Uniqueid) once: by ``id``, else by content."""
    seen: set[Any] = set()
    found = []
    for row in raw:
        key = row.get("id")
        if key is None:
            key = tuple(sorted((k, str(v)) for k, v in row.items()))
        if key not in seen:
            seen.add(key)
            found.append(row)
    return found
