"""Database engine: SQLite (aiosqlite) by default, PostgreSQL (asyncpg) in production."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, event, insert, select
from sqlalchemy.engine import Connection, create_engine, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from journal.models import Base, Counter

REQUEST_COUNTER = "request"

T = TypeVar("T")


class Database:
    """An engine plus a session factory; ``create_schema`` makes the tables if missing."""

    def __init__(self, url: str, *, schema: str | None = None, echo: bool = False) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"echo": echo}
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
        # SQLite file: the writer's own connection and thread (see ``transact``).
        self._writer: Engine | None = None
        self._writer_thread: ThreadPoolExecutor | None = None  # started on first use
        if self.is_sqlite and parsed.database and parsed.database != ":memory:":
            self._writer = create_engine(parsed.set(drivername="sqlite"), pool_size=1,
                                         max_overflow=0, connect_args={"timeout": 30})
            event.listen(self._writer, "connect", _sqlite_pragmas)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    async def create_schema(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with self.sessions.begin() as session:
            found = await session.scalar(select(Counter).where(Counter.name == REQUEST_COUNTER))
            if found is None:
                await session.execute(insert(Counter).values(name=REQUEST_COUNTER, value=0))

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
            return True
        except Exception:
            return False

    async def transact(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` inside one transaction (committed when it returns, rolled back when it
        raises) and return what it returns.

        On SQLite it runs in a thread of its own on a plain ``sqlite3`` connection: the whole
        transaction is one hop from the event loop. Through aiosqlite each statement is three
        or four hops (cursor, execute, fetch, close), and under load each hop waits for a turn
        of a loop busy fanning notifications out to a thousand websockets — that wait, not
        SQLite, was most of a screen pop's delay. On PostgreSQL asyncpg needs no threads:
        ``work`` runs on the loop through SQLAlchemy's ``run_sync``.
        """
        writer = self._writer
        if writer is None:
            async with self.engine.begin() as conn:
                return await conn.run_sync(work)
        if self._writer_thread is None:
            self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")

        def in_thread() -> T:
            with writer.begin() as conn:
                return work(conn)

        return await asyncio.get_running_loop().run_in_executor(self._writer_thread, in_thread)

    async def dispose(self) -> None:
        """Close every connection (the database object stays usable: it reconnects)."""
        await self.engine.dispose()
        thread, self._writer_thread = self._writer_thread, None
        if self._writer is not None and thread is not None:
            await asyncio.get_running_loop().run_in_executor(thread, self._writer.dispose)
            thread.shutdown(wait=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
