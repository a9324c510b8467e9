"""Who receives which notification: the request's routing scope as the stream goes by.

The websocket hub asks ``receives`` (journal/access.py) for every notification and
every connection, so it needs each request's level / SMO / corruption flag quickly. This module
keeps them in a small, short-lived cache shared by all connections:

- notes that carry routing (``request.created``, ``request.routed``, ``request.updated`` or
  ``request.closed`` with ``level``/``smo``/``corruption``) are recorded as *transitions* keyed
  by the note id, so a note is judged by the request's state as of that note (deterministic:
  the ``call.transferred`` that precedes a ``request.routed`` is still judged at level 1);
- anything else is loaded from the database once (single-flight) and kept ``ttl_s`` seconds.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from sqlalchemy import func, select

from journal.access import receives
from journal.db import Database
from journal.models import Notification as StoredNotification
from journal.models import Request
from journal.notes import UNKNOWN, Note, RequestScope, stored_note
from journal.users import Principal

# Every ``request.*`` note may change who sees the request (routing, corruption flag).
ROUTING_PREFIX = "request."
# These also reach whoever saw the request just before, so their pages can drop it.
LEAVING_TYPES = frozenset({"request.routed", "request.updated"})


@dataclass(slots=True)
class _Entry:
    """One request's scope: ``base`` as the database had it when every note up to
    ``base_as_of`` was committed, plus transitions the stream reported (kept across reloads)."""

    base: RequestScope
    base_as_of: int
    loaded_at: float
    prior: RequestScope | None = None  # what the stream said before the last reload
    ids: list[int] = field(default_factory=list)       # transition note ids, sorted
    scopes: list[RequestScope] = field(default_factory=list)  # the scope after each of them

    def at(self, note_id: int) -> RequestScope:
        """The scope as of note ``note_id``."""
        index = bisect.bisect_right(self.ids, note_id)
        if note_id > self.base_as_of:
            if index and self.ids[index - 1] > self.base_as_of:
                return self.scopes[index - 1]
            return self.base
        # An older note than the database state: judge it by what the stream said then.
        if index:
            return self.scopes[index - 1]
        return self.prior if self.prior is not None else self.base

    def latest(self) -> RequestScope:
        if self.ids and self.ids[-1] > self.base_as_of:
            return self.scopes[-1]
        return self.base

    def record(self, note_id: int, scope: RequestScope) -> None:
        index = bisect.bisect_left(self.ids, note_id)
        if index < len(self.ids) and self.ids[index] == note_id:
            return  # another connection recorded it already
        self.ids.insert(index, note_id)
        self.scopes.insert(index, scope)
        if len(self.ids) > 32:
            del self.ids[0], self.scopes[0]


class ScopeCache:
    """Request number → routing scope, shared by every websocket connection."""

    def __init__(self, db: Database, ttl_s: float = 5.0, max_entries: int = 20_000,
                 idle_s: float = 600.0) -> None:
        self.db = db
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        # An entry not (re)loaded for this long is forgotten: a request in use is reloaded
        # every ``ttl_s`` anyway, so only the requests of the last minutes stay (memory flat
        # over a day: a cap alone let a day's requests fill it and stay; issue 10 item 4).
        self.idle_s = idle_s
        self.high_water = 0  # the highest note id seen so far
        self.loads = 0       # database look-ups (tests, metrics)
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._loading: dict[int, asyncio.Future[_Entry]] = {}

    async def _entry(self, number: int, told: tuple[RequestScope, int] | None = None) -> _Entry:
        """The request's entry, read again once ``ttl_s`` old. ``told``: its scope as of a
        note id, from whoever committed that note (the intake) — as good as a read."""
        entry = self._entries.get(number)
        if entry is not None and time.monotonic() - entry.loaded_at < self.ttl_s:
            return entry
        if told is not None:
            return self._refresh(number, entry, *told)
        pending = self._loading.get(number)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[_Entry] = asyncio.get_running_loop().create_future()
        self._loading[number] = future
        try:
            entry = self._refresh(number, entry, *await self._load(number))
            future.set_result(entry)
            return entry
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: nobody else may be waiting
            raise
        finally:
            del self._loading[number]

    def _refresh(self, number: int, old: _Entry | None, scope: RequestScope, as_of: int) -> _Entry:
        """Replace an entry by a fresh reading, keeping the transitions the stream reported."""
        fresh = _Entry(scope, as_of, time.monotonic())
        if old is not None:
            fresh.prior = old.latest()
            fresh.ids, fresh.scopes = old.ids, old.scopes
        self._put(number, fresh)
        return fresh

    def _put(self, number: int, entry: _Entry) -> None:
        entries = self._entries
        entries[number] = entry
        entries.move_to_end(number)
        while len(entries) > self.max_entries:
            entries.popitem(last=False)
        # Oldest (re)load first: forget from the front while they are idle. An entry marked
        # for a reload (``loaded_at`` < 0, see ``judge``) is being read again right now: kept.
        stale = entry.loaded_at - self.idle_s
        while entries:
            oldest = next(iter(entries.values()))
            if not 0 <= oldest.loaded_at < stale or oldest is entry:
                break
            entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    async def _load(self, number: int) -> tuple[RequestScope, int]:
        """The request's scope now, and the last notification id committed before it."""
        self.loads += 1
        async with self.db.session() as session:
            as_of = await session.scalar(select(func.max(StoredNotification.id)))
            row = (await session.execute(
                select(Request.level, Request.smo, Request.corruption)
                .where(Request.number == number))).first()
        scope = UNKNOWN if row is None else RequestScope(row[0], row[1], bool(row[2]))
        return scope, int(as_of or 0)

    async def judge(self, note: Note) -> tuple[RequestScope, RequestScope]:
        """(scope before the note, scope as of the note) for its request."""
        number = note.request_number
        note_id = note.id
        if note_id is not None and note_id > self.high_water:
            self.high_water = note_id
        if number is None:
            return UNKNOWN, UNKNOWN
        if note.type == "request.created" and note_id is not None \
                and number not in self._entries:
            # A new request: the note itself says everything, no need to ask the database.
            scope = _apply(UNKNOWN, note) or UNKNOWN
            self._put(number, _Entry(scope, note_id, time.monotonic()))
            return UNKNOWN, scope
        routing = note.type.startswith(ROUTING_PREFIX)
        told = note.scope
        entry = await self._entry(number, (told, note_id) if told is not None
                                  and note_id is not None and not routing else None)
        if routing and note_id is not None:
            before = entry.at(note_id - 1)
            after = _apply(before, note)
            if after is None:
                # A change the note does not spell out: read the request again.
                entry.loaded_at = -1e9
                entry = await self._entry(number)
                after = entry.latest()
            entry.record(note_id, after)
            return before, after
        scope = entry.at(note_id) if note_id is not None else entry.latest()
        return scope, scope

    async def visible(self, user: Principal, note: Note) -> bool:
        """May ``user`` receive ``note``? (journal/access.py decides, this supplies the facts.)"""
        before, after = await self.judge(note)
        return allowed(user, note, before, after)


def allowed(user: Principal, note: Note, before: RequestScope, after: RequestScope) -> bool:
    """The access decision for one user, given the request's scope before and as of the note."""
    if receives(user, note, after.level, after.smo, after.corruption):
        return True
    return note.type in LEAVING_TYPES and before.level is not None and \
        receives(user, note, before.level, before.smo, before.corruption)


def _apply(before: RequestScope, note: Note) -> RequestScope | None:
    """The scope after a routing note, or None when the note does not tell."""
    kind = note.type
    data = note.data
    if kind == "request.created":
        return RequestScope(str(data.get("level") or "1"), data.get("smo"),
                            bool(data.get("corruption", False)))
    corruption = before.corruption
    if kind == "request.corruption":
        corruption = True
    elif "corruption" in data:
        corruption = bool(data["corruption"])
    elif "corruption" in (data.get("fields") or ()):
        return None  # the flag changed, the note does not say to what
    if "level" not in data:
        if kind in ("request.routed", "request.updated") and before.level is None:
            return None
        if kind == "request.routed" or ("fields" in data and {"level", "smo"} & set(
                data.get("fields") or ())):
            return None
        return RequestScope(before.level, before.smo, corruption)
    level = data.get("level")
    smo = data.get("smo", before.smo) if level == "smo" else None
    return RequestScope(None if level is None else str(level), smo, corruption)


async def missed_notes(db: Database, user: Principal, after_id: int,
                       limit: int = 500, scan_limit: int = 5000) -> tuple[list[Note], bool]:
    """What ``user`` may see of the stored notifications after ``after_id``, oldest first:
    at most ``limit`` of them (scanning at most ``scan_limit`` rows); and whether more remain."""
    found: list[Note] = []
    scanned = 0
    cursor = after_id
    chunk = 500
    while scanned < scan_limit:
        async with db.session() as session:
            rows = list(await session.scalars(
                select(StoredNotification).where(StoredNotification.id > cursor)
                .order_by(StoredNotification.id).limit(chunk)))
        # Judged by each request's state now: a reconnecting client gets only what it may
        # see today (one query per chunk, past the live cache).
        scopes = await current_scopes(db, {r.request_number for r in rows
                                           if r.request_number is not None})
        for row in rows:
            scanned += 1
            cursor = row.id
            note = stored_note(row.id, row.type, row.request_number, row.payload, row.at)
            scope = scopes.get(row.request_number, UNKNOWN) \
                if row.request_number is not None else UNKNOWN
            if receives(user, note, scope.level, scope.smo, scope.corruption):
                found.append(note)
                if len(found) >= limit:
                    return found, await _more_after(db, cursor)
        if len(rows) < chunk:
            return found, False
    return found, await _more_after(db, cursor)


async def latest_note_id(db: Database) -> int:
    """The newest stored notification id (0 when there is none)."""
    async with db.session() as session:
        return int(await session.scalar(select(func.max(StoredNotification.id))) or 0)


async def current_scopes(db: Database, numbers: set[int]) -> dict[int, RequestScope]:
    """The routing scope of these requests as the database has it now."""
    if not numbers:
        return {}
    async with db.session() as session:
        rows = await session.execute(
            select(Request.number, Request.level, Request.smo, Request.corruption)
            .where(Request.number.in_(numbers)))
        return {n: RequestScope(level, smo, bool(corruption)) for n, level, smo, corruption in rows}


async def _more_after(db: Database, note_id: int) -> bool:
    async with db.session() as session:
        return await session.scalar(
            select(StoredNotification.id).where(StoredNotification.id > note_id).limit(1)
        ) is not None
