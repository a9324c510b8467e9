"""Where the intake's transactions run: a thread of their own, off the busy event loop.

The service's event loop fans every notification out to a thousand websockets; a transaction
run on that loop waits for a turn of it at every statement (through aiosqlite three or four
times a statement: cursor, execute, fetch, close), and those waits, not the database, were
most of a screen pop's delay. Here a whole transaction is one hand-over from the loop:

- SQLite: a plain ``sqlite3`` connection in a one-thread executor (``SqliteWriter``);
- PostgreSQL: a second event loop in a thread with its own asyncpg pool (``LoopWriter``) —
  asyncpg is bound to the loop that opened its connections — and a third for ``write_soon``.

``work`` is synchronous SQLAlchemy Core over a ``Connection``; it is committed when it returns
and rolled back when it raises.

``write_soon`` is for one statement the caller does not wait for (an early screen pop's note,
journal/intake/early.py): handed over without a turn of the loop, it runs beside the batch in
progress on PostgreSQL (its own connection, autocommitted, not waiting for the WAL flush: such
a row may be lost in a database crash, a journal fact never is) and right after it on SQLite;
``done`` is called on the loop once it is committed, or with the exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from sqlalchemy import Engine, event
from sqlalchemy.engine import URL, Connection, create_engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

T = TypeVar("T")
Work = Callable[[Connection], T]
Done = Callable[[BaseException | None], None]


class Writer(Protocol):
    async def open(self) -> None: ...

    async def run(self, work: Work[T]) -> T: ...

    def write_soon(self, work: Work[None], done: Done) -> None: ...

    async def close(self) -> None: ...


class SqliteWriter:
    """One ``sqlite3`` connection used from one thread."""

    def __init__(self, url: URL, on_connect: Callable[[Any, Any], None]) -> None:
        self._engine: Engine = create_engine(url.set(drivername="sqlite"), pool_size=1,
                                             max_overflow=0, connect_args={"timeout": 30},
                                             hide_parameters=True)
        event.listen(self._engine, "connect", on_connect)
        self._thread: ThreadPoolExecutor | None = None  # started on first use

    async def open(self) -> None:
        """Connect now, not at the first write."""
        await self.run(lambda conn: None)

    def _executor(self) -> ThreadPoolExecutor:
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        return self._thread

    async def run(self, work: Work[T]) -> T:
        engine = self._engine

        def in_thread() -> T:
            with engine.begin() as conn:
                return work(conn)

        return await asyncio.get_running_loop().run_in_executor(self._executor(), in_thread)

    def write_soon(self, work: Work[None], done: Done) -> None:
        engine, loop = self._engine, asyncio.get_running_loop()

        def in_thread() -> None:
            outcome: BaseException | None = None
            try:
                with engine.begin() as conn:
                    work(conn)
            except Exception as exc:
                outcome = exc
            _report(loop, done, outcome)

        self._executor().submit(in_thread)

    async def close(self) -> None:
        """Close the connection (the writer stays usable: it reconnects)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.get_running_loop().run_in_executor(thread, self._engine.dispose)
            thread.shutdown(wait=True)


class LoopWriter:
    """Event loops in threads of their own, with their own async engines: one for the
    transactions, one for ``write_soon`` (so an early pop's note never waits behind the CPU
    work of a batch between its statements)."""

    def __init__(self, url: URL | str, **engine_kwargs: Any) -> None:
        self._url = url
        self._engine_kwargs = engine_kwargs
        self._loop: asyncio.AbstractEventLoop | None = None  # started on first use
        self._soon_loop: asyncio.AbstractEventLoop | None = None
        self._engine: AsyncEngine | None = None
        self._soon: AsyncEngine | None = None  # write_soon's: autocommit, no WAL flush wait
        self._soon_running: set[Future[None]] = set()
        self._threads: list[threading.Thread] = []

    def _start(self) -> asyncio.AbstractEventLoop:
        loops = []
        for name in ("db-writer", "db-writer-soon"):
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name=name, daemon=True)
            thread.start()
            loops.append(loop)
            self._threads.append(thread)
        self._loop, self._soon_loop = loops
        kwargs = self._engine_kwargs
        self._engine = create_async_engine(self._url, **kwargs)
        connect_args = dict(kwargs.get("connect_args") or {})
        connect_args["server_settings"] = {**connect_args.get("server_settings", {}),
                                           "synchronous_commit": "off"}
        self._soon = create_async_engine(
            self._url, **{**kwargs, "connect_args": connect_args, "pool_size": 1,
                          "max_overflow": 0, "isolation_level": "AUTOCOMMIT"})
        return loops[0]

    async def open(self) -> None:
        """Connect both pools now: the first pop must not wait for a connection."""
        loop = self._loop or self._start()
        engine, soon, soon_loop = self._engine, self._soon, self._soon_loop
        assert engine is not None and soon is not None and soon_loop is not None

        async def connect(pool: AsyncEngine) -> None:
            async with pool.connect():
                pass

        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(connect(engine), loop))
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(connect(soon), soon_loop))

    async def run(self, work: Work[T]) -> T:
        loop = self._loop or self._start()
        engine = self._engine
        assert engine is not None

        async def in_thread() -> T:
            async with engine.begin() as conn:
                return await conn.run_sync(work)

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(in_thread(), loop))

    def write_soon(self, work: Work[None], done: Done) -> None:
        if self._loop is None:
            self._start()
        soon, soon_loop, caller = self._soon, self._soon_loop, asyncio.get_running_loop()
        assert soon is not None and soon_loop is not None

        async def in_thread() -> None:
            outcome: BaseException | None = None
            try:
                async with soon.connect() as conn:
                    await conn.run_sync(work)
            except Exception as exc:
                outcome = exc
            except BaseException as exc:  # cancelled by close(): the caller must know too
                _report(caller, done, exc)
                raise
            _report(caller, done, outcome)

        running = asyncio.run_coroutine_threadsafe(in_thread(), soon_loop)
        self._soon_running.add(running)
        running.add_done_callback(self._soon_running.discard)

    async def close(self) -> None:
        loop, soon_loop, engine, soon = self._loop, self._soon_loop, self._engine, self._soon
        threads, self._threads = self._threads, []
        self._loop = self._soon_loop = self._engine = self._soon = None
        if loop is None or soon_loop is None or engine is None or soon is None:
            return
        # A write not waited for must not be left mid-statement on a stopped loop (holding its
        # locks): let it finish, or cancel it.
        running = [asyncio.wrap_future(f) for f in list(self._soon_running)]
        if running:
            _done, late = await asyncio.wait(running, timeout=2)
            for waiting in late:
                waiting.cancel()
            await asyncio.wait(running, timeout=2)
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(engine.dispose(), loop))
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(soon.dispose(), soon_loop))
        for each in (loop, soon_loop):
            each.call_soon_threadsafe(each.stop)
        for thread in threads:
            await asyncio.get_running_loop().run_in_executor(None, thread.join)
        for each in (loop, soon_loop):
            each.close()


def _report(loop: asyncio.AbstractEventLoop, done: Done, outcome: BaseException | None) -> None:
    """Tell a ``write_soon`` caller, on its own loop, how the write ended."""
    with contextlib.suppress(RuntimeError):  # its loop is closed: nobody waits any more
        loop.call_soon_threadsafe(done, outcome)
