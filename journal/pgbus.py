"""The bus across service instances on one PostgreSQL (``HOTLINE_BUS=postgresql``).

Notifications are already stored (the ``notifications`` table is the outbox); a trigger
(migrations 0004, 0008) sends ``NOTIFY hotline_note_rows, '<schema> <id> <row as JSON>'`` for
every stored row, at commit. Each instance LISTENs on a dedicated asyncpg connection and hands
the rows to its local subscribers (the websocket hub, the playback index) as they arrive; a row
too large for a NOTIFY comes as ``'<schema> <id>'`` and is read from the outbox. A note this
instance published itself goes out at once and is not handed out twice (ids delivered here are
remembered). After a dropped listener connection the instance reconnects with back-off and
reads the outbox from the last id it delivered (minus a margin for transactions that committed
out of id order): nothing committed meanwhile is lost.

Control messages (a session ended, a user changed, a call-back is pending) ride
``NOTIFY hotline_control`` as JSON: handled here at once, and by every other instance when the
notification arrives. Both channels carry the schema, so instances of different journals (tests
with a schema each) on one database never mix.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import structlog

from journal.bus import Control, LocalBus
from journal.notes import Note, RequestScope, stored_note

log = structlog.get_logger(__name__)

NOTES_CHANNEL = "hotline_note_rows"
CONTROL_CHANNEL = "hotline_control"
# Ids kept to tell a note already handed out here (local publish or an earlier read).
REMEMBER_IDS = 20_000
# On reconnect, ids this far below the last delivered one are looked at again: a transaction
# that took a lower id may have committed after a higher one.
CATCH_UP_MARGIN = 1000
CATCH_UP_LIMIT = 5000
KEEPALIVE_S = 5.0
MAX_CONTROL_BYTES = 7000  # NOTIFY payloads stop at 8000 bytes
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def asyncpg_dsn(database_url: str) -> str:
    """The SQLAlchemy URL as asyncpg takes it."""
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


class PostgresBus(LocalBus):
    """LocalBus fan-out inside this instance, LISTEN/NOTIFY between instances."""

    def __init__(self, database_url: str, *, schema: str | None = None,
                 queue_size: int = 1000, instance: str | None = None,
                 backoff_max_s: float = 5.0) -> None:
        super().__init__(queue_size)
        self.dsn = asyncpg_dsn(database_url)
        self.schema = schema or "public"
        if not _IDENTIFIER.match(self.schema):
            raise ValueError(f"bad schema name {self.schema!r}")
        self.instance = instance or uuid.uuid4().hex[:12]
        self.backoff_max_s = backoff_max_s
        self.high_water: int | None = None  # the highest note id delivered here
        self.connected = asyncio.Event()
        self.connects = 0
        self.remote_notes = 0     # notes read from the outbox (published by another instance)
        self.remote_controls = 0
        self.caught_up = 0        # notes found by a catch-up read after a reconnect
        self._delivered: OrderedDict[int, None] = OrderedDict()
        self._wanted: set[int] = set()
        self._outgoing: list[str] = []
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: Any = None

    # ----------------------------------------------------------- lifecycle
    async def start(self, wait_s: float = 10.0) -> None:
        """Start listening; wait (bounded) for the first connection so that nothing published
        from now on is missed by this instance."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="pgbus")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), wait_s)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def drop_connection(self) -> None:
        """Cut the listener connection (tests: a dropped listener must lose nothing)."""
        conn = self._conn
        if conn is not None:
            conn.terminate()

    # ----------------------------------------------------------- publishing
    def publish(self, notification: Note) -> None:
        note_id = notification.id
        if note_id is not None:
            if note_id in self._delivered:
                return  # already read from the outbox (its NOTIFY came first)
            self._remember(note_id)
        super().publish(notification)

    def control(self, message: Control) -> None:
        self.deliver_control(message)
        payload = json.dumps({**message, "_from": self.instance, "_schema": self.schema},
                             ensure_ascii=False, default=str)
        if len(payload.encode()) > MAX_CONTROL_BYTES:
            log.error("pgbus.control_too_large", kind=message.get("kind"))
            return
        self._outgoing.append(payload)
        self._kick.set()

    def _remember(self, note_id: int) -> None:
        self._delivered[note_id] = None
        if len(self._delivered) > REMEMBER_IDS:
            self._delivered.popitem(last=False)
        if self.high_water is None or note_id > self.high_water:
            self.high_water = note_id

    # ----------------------------------------------------------- listening
    def _on_note(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        schema, _, rest = payload.partition(" ")
        raw, _, row_json = rest.partition(" ")
        if schema != self.schema or not raw.isdigit():
            return
        note_id = int(raw)
        if note_id in self._delivered:
            return
        note = _note_of_json(note_id, row_json) if row_json else None
        if note is None:  # too large to ride the NOTIFY (or unreadable): read the outbox
            self._wanted.add(note_id)
            self._kick.set()
            return
        self.remote_notes += 1
        self.publish(note)

    def _on_control(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if not isinstance(message, dict) or message.get("_schema") != self.schema \
                or message.get("_from") == self.instance:
            return
        self.remote_controls += 1
        self.deliver_control({k: v for k, v in message.items() if not k.startswith("_")})

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self.dsn, timeout=10)
                await conn.add_listener(NOTES_CHANNEL, self._on_note)
                await conn.add_listener(CONTROL_CHANNEL, self._on_control)
                # A closed connection wakes the loop at once (not at the next keep-alive).
                conn.add_termination_listener(lambda _conn: self._kick.set())
                self._conn = conn
                self.connects += 1
                await self._catch_up(conn)
                self.connected.set()
                backoff = 0.1
                log.info("pgbus.listening", instance=self.instance, connects=self.connects)
                await self._serve(conn)
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError,
                    TimeoutError) as exc:
                log.warning("pgbus.connection_lost", error=str(exc)[:200],
                            retry_in_s=round(backoff, 2))
            finally:
                self.connected.clear()
                self._conn = None
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.terminate()
            await asyncio.sleep(backoff)
            backoff = min(self.backoff_max_s, backoff * 2)

    async def _serve(self, conn: Any) -> None:
        """Read what NOTIFY announced, send queued control messages; ping when idle."""
        while not conn.is_closed():
            if not self._wanted and not self._outgoing:
                self._kick.clear()
                try:
                    await asyncio.wait_for(self._kick.wait(), KEEPALIVE_S)
                except TimeoutError:
                    await conn.fetchval("SELECT 1", timeout=KEEPALIVE_S)
                    continue
            while self._outgoing:
                payload = self._outgoing[0]
                await conn.execute("SELECT pg_notify($1, $2)", CONTROL_CHANNEL, payload)
                self._outgoing.pop(0)
            if self._wanted:
                wanted, self._wanted = self._wanted, set()
                try:
                    await self._deliver_rows(conn, sorted(wanted))
                except BaseException:
                    self._wanted |= wanted  # read again after the reconnect
                    raise
        raise ConnectionError("listener connection closed")

    async def _catch_up(self, conn: Any) -> None:
        table = f'"{self.schema}".notifications'
        if self.high_water is None:
            # A fresh instance starts from now: pages ask for older notes themselves.
            self.high_water = int(await conn.fetchval(f"SELECT coalesce(max(id), 0) FROM {table}"))
            return
        since = max(0, self.high_water - CATCH_UP_MARGIN)
        ids = [r[0] for r in await conn.fetch(
            f"SELECT id FROM {table} WHERE id > $1 ORDER BY id LIMIT {CATCH_UP_LIMIT}", since)]
        missing = [i for i in ids if i not in self._delivered]
        if missing:
            self.caught_up += len(missing)
            log.info("pgbus.caught_up", notes=len(missing))
            await self._deliver_rows(conn, missing)

    async def _deliver_rows(self, conn: Any, ids: Iterable[int]) -> None:
        rows = await conn.fetch(
            f'SELECT id, at, type, request_number, payload FROM "{self.schema}".notifications '
            "WHERE id = ANY($1::bigint[]) ORDER BY id", list(ids))
        for row in rows:
            note_id = int(row["id"])
            if note_id in self._delivered:
                continue
            self.remote_notes += 1
            self.publish(note_of(row))


def _note_of_json(note_id: int, row_json: str) -> Note | None:
    """A note from the trigger's JSON of its row and its request's scope (as the committing
    transaction left it: what a read of the request would have said); None if it does not
    read as one."""
    try:
        row = json.loads(row_json)
        payload = row["payload"]
        note = note_of({**row, "id": note_id,
                        "payload": payload if isinstance(payload, dict) else None,
                        "at": datetime.fromisoformat(row["at"]).astimezone(UTC)})
        scope = row.get("scope")
        if isinstance(scope, list) and len(scope) == 3:
            level, smo, corruption = scope
            note.scope = RequestScope(level, smo, bool(corruption))
        return note
    except (ValueError, TypeError, KeyError, AttributeError):
        log.warning("pgbus.unreadable_note", id=note_id)
        return None


def note_of(row: Any) -> Note:
    """A stored notification as the bus hands it out (as ``missed_notes`` builds it)."""
    payload = row["payload"]
    if isinstance(payload, str):
        payload = json.loads(payload)
    return stored_note(int(row["id"]), row["type"], row["request_number"], payload, row["at"])
