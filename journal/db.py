"""Database engine: SQLite (aiosqlite) by default, PostgreSQL (asyncpg) in production."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from journal import migrations
from journal.writer import LoopWriter, SqliteWriter, Writer

REQUEST_COUNTER = "request"

T = TypeVar("T")


class Database:
    """An engine plus a session factory; the schema comes from the migrations
    (``upgrade_schema``, ``hotline db upgrade``), never from ``metadata.create_all``."""

    def __init__(self, url: str, *, schema: str | None = None, echo: bool = False) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        # Statement parameters are citizens' data: never in logs or error messages.
        kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
            # Each aiosqlite connection is a thread: keep enough of them that concurrent
            # readers (recording playbacks, pages) reuse connections instead of opening and
            # closing overflow ones for every request.
            kwargs["pool_size"] = 20
            kwargs["max_overflow"] = 20
        else:
            kwargs["pool_size"] = 10
            kwargs["max_overflow"] = 10
            if schema:
                kwargs["connect_args"] = {"server_settings": {"search_path": schema}}
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # Where the intake's transactions run (see ``transact``).
        self._writer: Writer = SqliteWriter(parsed, _sqlite_pragmas) if self.is_sqlite else \
            LoopWriter(url, echo=echo, hide_parameters=True, pool_size=2, max_overflow=2,
                       connect_args=kwargs.get("connect_args", {}))

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    async def upgrade_schema(self) -> migrations.Upgraded:
        """Bring the schema to the code's revision: from empty, from an earlier revision, or a
        first-release journal (adopted). Raises ``migrations.SchemaError`` when it cannot."""
        async with self.engine.begin() as conn:
            return await conn.run_sync(migrations.upgrade)

    async def schema_state(self) -> migrations.SchemaState:
        async with self.engine.connect() as conn:
            return await conn.run_sync(migrations.state)

    async def require_current_schema(self) -> None:
        """Raise ``migrations.SchemaError`` (one line naming `hotline db upgrade`) unless the
        database is at the code's revision: the service never runs on a schema it does not
        know."""
        problem = (await self.schema_state()).problem()
        if problem is not None:
            raise migrations.SchemaError(problem)

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
            return True
        except Exception:
            return False

    async def transact(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` inside one transaction (committed when it returns, rolled back when it
        raises) and return what it returns: in one hand-over to a thread of its own
        (journal/writer.py), so that its statements do not wait for turns of the service's
        event loop."""
        return await self._writer.run(work)

    async def open_writer(self) -> None:
        """Connect the writer now (service start), not at the first call's write."""
        await self._writer.open()

    def write_soon(self, work: Callable[[Connection], None],
                   done: Callable[[BaseException | None], None]) -> None:
        """One statement not waited for, beside the intake's batch (journal/writer.py);
        ``done`` is called on this loop once it is committed, or with the exception."""
        self._writer.write_soon(work, done)

    async def dispose(self) -> None:
        """Close every connection (the database object stays usable: it reconnects)."""
        await self.engine.dispose()
        await self._writer.close()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
