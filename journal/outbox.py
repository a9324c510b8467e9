"""The outbox: the only way a notification leaves the journal. Notes are stored in the
transaction that made them (each gets its ``id``), then published after the commit — never
before, so a page is never told of a request the journal does not hold; a note whose
transaction rolled back is never published."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from journal.bus import Bus
from journal.models import Notification
from journal.notes import Note

_INSERT = insert(Notification).returning(Notification.id, sort_by_parameter_order=True)


def _rows(notes: Sequence[Note]) -> list[dict[str, object]]:
    return [{"at": datetime.fromisoformat(n.at), "type": n.type,
             "request_number": n.request_number, "payload": n.payload()} for n in notes]


class Outbox:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    @staticmethod
    def store(conn: Connection, notes: Sequence[Note]) -> None:
        """Inside the intake's transaction (Core, the writer thread): one multi-row INSERT …
        RETURNING for the whole batch; the ids come back in parameter order."""
        if notes:
            ids = conn.scalars(_INSERT, _rows(notes))
            for note, row_id in zip(notes, ids, strict=True):
                note.id = row_id

    @staticmethod
    async def store_in(session: AsyncSession, notes: Sequence[Note]) -> None:
        """Inside a journal action's transaction (the ORM session)."""
        if notes:
            ids = await session.scalars(_INSERT, _rows(notes))
            for note, row_id in zip(notes, ids, strict=True):
                note.id = row_id

    def publish(self, notes: Sequence[Note]) -> None:
        """After the commit."""
        for note in notes:
            self.bus.publish(note)
