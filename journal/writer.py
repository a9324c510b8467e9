"""Where the intake's transactions run: a thread of their own, off the busy event loop.

The service's event loop fans every notification out to a thousand websockets; a transaction
run on that loop waits for a turn of it at every statement (through aiosqlite three or four
times a statement: cursor, execute, fetch, close), and those waits, not the database, were
most of a screen pop's delay. Here a whole transaction is one hand-over from the loop:

- SQLite: a plain ``sqlite3`` connection in a one-thread executor (``SqliteWriter``);
- PostgreSQL: a second event loop in a thread with its own asyncpg pool (``LoopWriter``) —
  asyncpg is bound to the loop that opened its connections.

``work`` is synchronous SQLAlchemy Core over a ``Connection``; it is committed when it returns
and rolled back when it raises.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from sqlalchemy import Engine, event
from sqlalchemy.engine import URL, Connection, create_engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

T = TypeVar("T")
Work = Callable[[Connection], T]


class Writer(Protocol):
    async def run(self, work: Work[T]) -> T: ...

    async def close(self) -> None: ...


class SqliteWriter:
    """One ``sqlite3`` connection used from one thread."""

    def __init__(self, url: URL, on_connect: Callable[[Any, Any], None]) -> None:
        self._engine: Engine = create_engine(url.set(drivername="sqlite"), pool_size=1,
                                             max_overflow=0, connect_args={"timeout": 30},
                                             hide_parameters=True)
        event.listen(self._engine, "connect", on_connect)
        self._thread: ThreadPoolExecutor | None = None  # started on first use

    async def run(self, work: Work[T]) -> T:
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        engine = self._engine

        def in_thread() -> T:
            with engine.begin() as conn:
                return work(conn)

        return await asyncio.get_running_loop().run_in_executor(self._thread, in_thread)

    async def close(self) -> None:
        """Close the connection (the writer stays usable: it reconnects)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.get_running_loop().run_in_executor(thread, self._engine.dispose)
            thread.shutdown(wait=True)


class LoopWriter:
    """An event loop in a thread of its own, with its own async engine."""

    def __init__(self, url: URL | str, **engine_kwargs: Any) -> None:
        self._url = url
        self._engine_kwargs = engine_kwargs
        self._loop: asyncio.AbstractEventLoop | None = None  # started on first use
        self._engine: AsyncEngine | None = None
        self._thread: threading.Thread | None = None

    def _start(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="db-writer", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        self._engine = create_async_engine(self._url, **self._engine_kwargs)
        return loop

    async def run(self, work: Work[T]) -> T:
        loop = self._loop or self._start()
        engine = self._engine
        assert engine is not None

        async def in_thread() -> T:
            async with engine.begin() as conn:
                return await conn.run_sync(work)

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(in_thread(), loop))

    async def close(self) -> None:
        loop, thread, engine = self._loop, self._thread, self._engine
        self._loop = self._thread = self._engine = None
        if loop is None or thread is None or engine is None:
            return
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(engine.dispose(), loop))
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.get_running_loop().run_in_executor(None, thread.join)
        loop.close()
