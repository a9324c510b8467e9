"""The append-only audit log: who did or saw what, when, and from where.

A change writes its record in its own transaction (``audit``): both land or neither does.
A read that is served (a request, a list, the audit log, a report, a playback) has no transaction
of its own; its record goes through ``AuditWriter``, which commits the records of concurrent
readers together and lets each go on only once its record is durable — nothing is served
unaudited, and a burst of 50 playbacks costs one commit instead of 50 queued behind SQLite's
single writer.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from journal.models import AuditEntry
from journal.users import Principal


def audit_row(user: Principal | None, action: str, request_number: int | None = None,
              remote: str | None = None, **detail: Any) -> dict[str, Any]:
    return {"at": datetime.now(UTC), "user_login": user.login if user else None,
            "action": action, "request_number": request_number, "remote": remote,
            "detail": detail}


def audit(session: AsyncSession, user: Principal | None, action: str,
          request_number: int | None = None, remote: str | None = None,
          **detail: Any) -> None:
    """Add an audit record to the caller's transaction (nothing here updates or deletes)."""
    session.add(AuditEntry(**audit_row(user, action, request_number, remote, **detail)))


class AuditWriter:
    """Group commit for audit records of reads; ``record`` returns once the record is committed."""

    def __init__(self, engine: AsyncEngine, max_batch: int = 500) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        # Held between batches: no pool check-out and reset round trips per batch.
        self._conn: AsyncConnection | None = None

    async def record(self, user: Principal | None, action: str,
                     request_number: int | None = None, remote: str | None = None,
                     **detail: Any) -> None:
        """Write one record; raises if the database refused it (then serve nothing)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((audit_row(user, action, request_number, remote, **detail), done))
        if self._flusher is None or self._flusher.done():
            # Started, not run: every reader that arrives in this loop turn joins the batch.
            self._flusher = asyncio.create_task(self._flush(), name="audit-flush")
        # A reader that goes away still gets its record written (the batch owns it).
        await done

    async def drain(self) -> None:
        """Wait until every pending record is written (shutdown)."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    async def close(self) -> None:
        """Write what is pending and give the connection back (before the engine goes)."""
        await self.drain()
        await self._reset()

    async def _reset(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # already broken: nothing more to do
                await conn.close()

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[:self._max_batch]
            del self._pending[:self._max_batch]
            try:
                if self._conn is None:
                    self._conn = await self._engine.connect()
                # Core, not the ORM: one executemany with nothing to track afterwards.
                async with self._conn.begin():
                    await self._conn.execute(insert(AuditEntry),
                                             [row for row, _ in batch])
            except Exception as exc:  # handed to every waiting reader
                await self._reset()
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
