"""CEL tables built from the recorded traces' ``Event: CEL`` messages (cel_manager was on), in
cel_pgsql's shape, on SQLite (as cel_sqlite3_custom writes it) and on PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

# AMI CEL header → cel_pgsql column
HEADERS = {
    "EventName": "eventtype", "EventTime": "eventtime", "CallerIDname": "cid_name",
    "CallerIDnum": "cid_num", "CallerIDani": "cid_ani", "CallerIDrdnis": "cid_rdnis",
    "CallerIDdnid": "cid_dnid", "Exten": "exten", "Context": "context", "Channel": "channame",
    "Application": "appname", "AppData": "appdata", "AMAFlags": "amaflags",
    "AccountCode": "accountcode", "UniqueID": "uniqueid", "LinkedID": "linkedid",
    "Peer": "peer", "Userfield": "userdeftype", "Extra": "extra",
}
TEXT_COLUMNS = [c for c in HEADERS.values() if c != "eventtime"]


def cel_rows(scenario: Path) -> list[dict[str, Any]]:
    """The CEL records of a trace, as rows (eventtime a string, the PBX's wall time)."""
    rows = []
    with (scenario / "trace.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            item = json.loads(line)
            msg = item.get("msg")
            if not msg:
                continue
            headers = {k: v for k, v in msg}
            if headers.get("Event") != "CEL":
                continue
            rows.append({column: headers.get(header) or "" for header, column in HEADERS.items()})
    return rows


def cel_table(name: str = "cel", schema: str | None = None, *, pg: bool = False) -> sa.Table:
    time_type: sa.types.TypeEngine[Any] = sa.DateTime() if pg else sa.Text()
    return sa.Table(
        name, sa.MetaData(schema=schema),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("eventtime", time_type),
        *[sa.Column(column, sa.Text) for column in TEXT_COLUMNS],
    )


async def build_cel_db(url: str, rows: list[dict[str, Any]], *, schema: str | None = None,
                       table: str = "cel") -> None:
    """Create the ``cel`` table (if missing) and append ``rows`` in order."""
    from datetime import datetime

    pg = url.startswith("postgresql")
    cel = cel_table(table, schema, pg=pg)
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(cel.metadata.create_all)
            if rows:
                values = []
                for row in rows:
                    row = dict(row)
                    if pg:
                        row["eventtime"] = datetime.fromisoformat(row["eventtime"])
                    values.append(row)
                await conn.execute(sa.insert(cel), values)
    finally:
        await engine.dispose()
