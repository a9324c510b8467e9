"""The websocket hub, ``GET /api/v1/events``: where a screen pop is sent (DESIGN §5).

Each connection has its own bounded subscription on the bus; every notification passes
journal/access.py (via journal/notify.py) for that connection's user. On connect the client gets
``{"type": "hello", "last_event_id": M, ...}`` (M: where a reconnect may resume from, so a
page that drops before any numbered frame arrived misses nothing); with ``?last_event_id=N`` it
first gets what it missed from the ``notifications`` table (at most 500, filtered), then live
events, without duplicates. A client that cannot keep up is closed with 4008 "slow consumer";
one whose session ended, with 4001 (at once on logout, else at the periodic check).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import structlog
from aiohttp import WSMsgType, web
from sqlalchemy import select

from hotline.web.auth import COOKIE, current_user
from hotline.web.context import SERVICES, SESSION_ENDED_HOOKS, TOKEN
from hotline.web.errors import ApiError
from hotline.web.frames import FrameCache
from hotline.web.params import ascii_int
from journal.bus import Subscription
from journal.models import User, UserSession
from journal.notes import Note, RequestScope
from journal.notify import ScopeCache, allowed, latest_note_id, missed_notes
from journal.users import Principal, token_digest

log = structlog.get_logger(__name__)

PATH = "/api/v1/events"
HEARTBEAT_S = 20.0          # aiohttp ping/pong; a dead peer is dropped after it
BACKLOG_LIMIT = 500         # at most this many missed events on resume
CLOSE_SLOW = 4008
CLOSE_SESSION_ENDED = 4001
CLOSE_GOING_AWAY = 1001
MAX_WRITE_BUFFER = 1 << 20  # bytes a client may leave unread before it counts as slow
WRITE_SLICE_S = 0.001  # fan-out work between two turns of the event loop
# Under load, a round of writes to every page starts at most this often; what is published
# meanwhile waits for the next round and goes out in the same write (a screen pop never waits).
ROUND_EVERY_S = 0.1


@dataclass(eq=False)
class Connection:
    """One open websocket: who, its bounded subscription, where it has got to."""

    user: Principal
    token_hash: str
    ws: web.WebSocketResponse
    subscription: Subscription
    transport: asyncio.Transport | None
    sent_upto: int = 0
    # Ids sent from the backlog (and the id a resume asked after): a live copy is skipped. Not
    # "every id up to": with several instances a note may arrive after one with a higher id.
    resumed_after: int = 0
    backlog_ids: frozenset[int] = frozenset()
    live: bool = False  # the backlog is out; live notifications may be written
    flushing: bool = False  # one writer at a time keeps the order
    closing: bool = field(default=False)


class Hub:
    """All websocket connections of this service instance."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        services = app[SERVICES]
        self.services = services
        self.scopes = ScopeCache(services.db)
        self.frames = FrameCache()
        self.connections: set[Connection] = set()
        self.watch_interval_s = 1.0
        self.revalidate_every_s = 30.0
        self.close_timeout_s = 2.0
        self.round_every_s = ROUND_EVERY_S
        self.sent = 0     # frames
        self.writes = 0   # socket writes that carried them
        self.dropped_slow = 0
        self._verdicts: dict[int, tuple[RequestScope, RequestScope]] = {}
        self._watchdog: asyncio.Task[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._trigger: Subscription | None = None
        # The dispatcher's work: the phones that ring (at once), then the round in progress.
        self._urgent: deque[Connection] = deque()
        self._queued_urgent: set[Connection] = set()
        self._to_write: deque[Connection] = deque()
        self._queued_for_write: set[Connection] = set()
        self._round_due = False  # notes came since the last round began
        self._next_round = 0.0   # loop time before which no new round begins
        self._background: set[asyncio.Task[None]] = set()

    # ----------------------------------------------------------- lifecycle
    async def start(self, _app: web.Application) -> None:
        self._watchdog = asyncio.create_task(self._watch(), name="ws-watchdog")
        self._dispatcher = asyncio.create_task(self._dispatch(), name="ws-dispatch")

    async def stop(self, _app: web.Application) -> None:
        for task in (self._watchdog, self._dispatcher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await asyncio.gather(*(self.close(c, CLOSE_GOING_AWAY, "server shutdown")
                               for c in list(self.connections)), return_exceptions=True)

    # ----------------------------------------------------------- a connection
    async def handle(self, request: web.Request) -> web.StreamResponse:
        user = current_user(request)
        last_event_id = _last_event_id(request)
        _check_origin(request)
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, compress=False, max_msg_size=64 * 1024)
        await ws.prepare(request)
        # Subscribe before reading the backlog: nothing published meanwhile is lost, and
        # duplicates are skipped by id.
        subscription = self.services.bus.subscribe(kind="ws", login=user.login)
        transport = request.transport
        conn = Connection(user, token_digest(request[TOKEN]), ws, subscription,
                          transport if isinstance(transport, asyncio.Transport) else None)
        self.connections.add(conn)
        try:
            backlog: list[Note] = []
            truncated = False
            # Read after subscribing: whatever comes later reaches this connection live.
            newest = await latest_note_id(self.services.db)
            if last_event_id is not None:
                conn.sent_upto = conn.resumed_after = last_event_id
                backlog, truncated = await missed_notes(self.services.db, user, last_event_id,
                                                        BACKLOG_LIMIT)
            now = datetime.now(UTC).isoformat()
            await ws.send_str(json.dumps({
                "id": None, "type": "hello", "at": now, "request_number": None,
                "user": user.public(), "server_time": now, "heartbeat_s": HEARTBEAT_S,
                "last_event_id": _resume_point(last_event_id, newest, truncated),
                "resumed": len(backlog), "truncated": truncated,
            }, ensure_ascii=False))
            conn.backlog_ids = frozenset(n.id for n in backlog if n.id is not None)
            for note in backlog:
                await ws.send_str(self.frames.frame(note))
                conn.sent_upto = max(conn.sent_upto, note.id or 0)
            conn.live = True
            await self.flush([conn])  # what was published while the backlog went out
            async for message in ws:
                if message.type == WSMsgType.TEXT and message.data == "ping":
                    await ws.send_str(json.dumps({"id": None, "type": "pong",
                                                  "at": datetime.now(UTC).isoformat(),
                                                  "request_number": None}))
                # Other client messages carry nothing the server acts on.
        finally:
            self._detach(conn)
        return ws

    def _detach(self, conn: Connection) -> None:
        """Stop feeding a connection (idempotent)."""
        self.connections.discard(conn)
        self.services.bus.unsubscribe(conn.subscription)

    # ----------------------------------------------------------- fan-out
    async def _dispatch(self) -> None:
        """Wake once per burst of notifications (not once per connection and notification)
        and write to every connection from its own bounded subscription queue.

        The connections whose phone rings in a burst are written at once (the screen pop, with
        whatever was queued before it, in order). Every other connection is written in rounds:
        one starts as soon as notes come after a quiet spell, then at most every
        ``ROUND_EVERY_S``, so under load a page gets several notes in one write instead of a
        write each — a write to a socket costs far more than the bytes in it. The writes go out
        in slices of about ``WRITE_SLICE_S`` with a turn of the event loop between them: one
        round to a thousand sockets is ~10 ms of work, and in one piece it would hold up the
        intake's commits and the AMI reader (the next screen pop) for that long.
        """
        trigger = self._trigger = self.services.bus.subscribe(kind="ws-dispatch")
        loop = asyncio.get_running_loop()
        try:
            while True:
                self._begin_round(loop.time())
                notes: list[Note] = []
                if not self._urgent and not self._to_write:
                    # Idle, or a round is due later: wait for a note or for that round.
                    timer = loop.call_at(self._next_round, trigger.queue.wake) \
                        if self._round_due else None
                    try:
                        first = await trigger.queue.get()  # None: woken without a note
                    finally:
                        if timer is not None:
                            timer.cancel()
                    if first is not None:
                        notes.append(first)
                while not trigger.queue.empty():
                    notes.append(trigger.queue.get_nowait())
                trigger.overflowed = False  # only a wake-up call: connections have the notes
                if notes:
                    await self._judge_all(notes)
                    self._order_writes(notes)
                    self._begin_round(loop.time())
                await self._write_slice()
                if self._urgent or self._to_write:
                    await asyncio.sleep(0)
        finally:
            self._trigger = None
            self.services.bus.unsubscribe(trigger)

    async def _judge_all(self, notes: list[Note]) -> None:
        """Each note's request scope, once for all connections, in order."""
        for note in notes:
            note_id = note.id
            if note_id is not None and note_id not in self._verdicts:
                self._verdicts[note_id] = await self.scopes.judge(note)
        while len(self._verdicts) > 4096:
            del self._verdicts[next(iter(self._verdicts))]

    def _order_writes(self, notes: list[Note]) -> None:
        """The phones that ring in this burst are to be written at once; every connection
        in the next round."""
        self._round_due = True
        ringing = {n.data.get("extension") for n in notes if n.type == "call.ringing"}
        if ringing:
            _enqueue(self._urgent, self._queued_urgent,
                     [c for c in self.connections if c.user.extension in ringing])

    def _begin_round(self, now: float) -> None:
        """Start a round of writes to every connection if one is due and the last one began
        ``round_every_s`` ago (connections still waiting from before stay first)."""
        if not self._round_due or now < self._next_round:
            return
        self._round_due = False
        self._next_round = now + self.round_every_s
        _enqueue(self._to_write, self._queued_for_write, self.connections)

    async def _write_slice(self) -> None:
        """Write connections for about ``WRITE_SLICE_S``: the ringing phones, then the round."""
        deadline = time.perf_counter() + WRITE_SLICE_S
        for to_write, queued in ((self._urgent, self._queued_urgent),
                                 (self._to_write, self._queued_for_write)):
            while to_write:
                conn = to_write.popleft()
                queued.discard(conn)
                await self.flush((conn,))
                if time.perf_counter() >= deadline:
                    return

    def _retry_later(self, conns: list[Connection]) -> None:
        """Hand connections to the dispatcher (their socket was full, or they overflowed)."""
        fresh = _enqueue(self._to_write, self._queued_for_write, conns)
        if fresh and self._trigger is not None:
            self._trigger.queue.wake()

    async def flush(self, conns: Iterable[Connection]) -> None:
        """Write what each connection's queue holds, as far as its socket takes it."""
        for conn in conns:
            if not conn.live or conn.closing or conn.flushing:
                continue
            conn.flushing = True
            try:
                await self._flush_one(conn)
            finally:
                conn.flushing = False

    async def _flush_one(self, conn: Connection) -> None:
        subscription = conn.subscription
        if subscription.overflowed:
            self._close_later(conn, CLOSE_SLOW, "slow consumer")
            return
        transport = conn.transport
        if transport is None or transport.is_closing():
            return
        queue = subscription.queue
        # Leave the rest queued (bounded) while the client does not read; if the queue
        # overflows meanwhile, the client is dropped as a slow consumer.
        if transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            return
        out: list[bytes] = []
        while not queue.empty():
            note = queue.get_nowait()
            note_id = note.id
            if note_id is not None:
                if note_id <= conn.resumed_after or note_id in conn.backlog_ids:
                    continue  # the client has it (asked to resume after it, or the backlog)
                verdict = self._verdicts.get(note_id)
                if verdict is None:
                    verdict = self._verdicts[note_id] = await self.scopes.judge(note)
                conn.sent_upto = max(conn.sent_upto, note_id)
            else:
                verdict = await self.scopes.judge(note)
            if allowed(conn.user, note, *verdict):
                out.append(self.frames.wire(note))
        if out:
            # The same pre-framed bytes for every client, straight to the socket, one write
            # per burst: a pop fans out to a thousand pages and aiohttp's per-message path
            # costs ~10x more. Frames are whole and the loop is single-threaded: nothing
            # interleaves with aiohttp's own pings.
            transport.write(out[0] if len(out) == 1 else b"".join(out))
            self.sent += len(out)
            self.writes += 1

    async def close(self, conn: Connection, code: int, reason: str) -> None:
        """Close with ``code``; a client that does not even take the close frame is cut."""
        if conn.closing:
            return
        conn.closing = True
        # Detach before the close frame leaves: once the client sees the close, the hub holds
        # nothing of it (no subscription filling up, no place in the fan-out).
        self._detach(conn)
        if code == CLOSE_SLOW:
            self.dropped_slow += 1
            log.warning("ws.slow_consumer", login=conn.user.login)
        # On timeout aiohttp closes the transport itself (the client was not reading).
        with contextlib.suppress(TimeoutError, ConnectionError, RuntimeError):
            await asyncio.wait_for(conn.ws.close(code=code, message=reason.encode()),
                                   self.close_timeout_s)

    def _close_later(self, conn: Connection, code: int, reason: str) -> None:
        task = asyncio.create_task(self.close(conn, code, reason))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def end_user(self, login: str) -> int:
        """Close (4001) every socket of this user now (locked, changed by an administrator)."""
        conns = [c for c in self.connections if c.user.login == login and not c.closing]
        for conn in conns:
            self._close_later(conn, CLOSE_SESSION_ENDED, "session ended")
        return len(conns)

    def end_session(self, token_hash: str) -> int:
        """Close (4001) every socket signed in with this session now, e.g. on logout."""
        conns = [c for c in self.connections if c.token_hash == token_hash and not c.closing]
        for conn in conns:
            self._close_later(conn, CLOSE_SESSION_ENDED, "session ended")
        return len(conns)

    # ----------------------------------------------------------- watchdog
    async def _watch(self) -> None:
        """Cut clients stuck in a send (their queue overflowed meanwhile) and clients whose
        session was closed, expired or locked."""
        loop = asyncio.get_running_loop()
        next_check = loop.time() + self.revalidate_every_s
        while True:
            await asyncio.sleep(self.watch_interval_s)
            # Retry clients whose socket was full; drop those whose queue overflowed. (While
            # a round is due, queued notes are only waiting for it.)
            waiting = self._round_due
            self._retry_later([c for c in self.connections if c.subscription.overflowed
                               or not (waiting or c.subscription.queue.empty())])
            if loop.time() >= next_check:
                next_check = loop.time() + self.revalidate_every_s
                try:
                    await self.revalidate()
                except Exception:
                    log.exception("ws.revalidate_failed")

    async def revalidate(self) -> None:
        """Close connections whose session no longer exists or whose user is locked."""
        conns = [c for c in self.connections if not c.closing]
        if not conns:
            return
        hashes = {c.token_hash for c in conns}
        now = datetime.now(UTC)
        async with self.services.db.session() as session:
            rows = await session.execute(
                select(UserSession.token_hash, UserSession.expires_at)
                .join(User, User.id == UserSession.user_id)
                .where(UserSession.token_hash.in_(hashes), User.locked.is_(False)))
            alive = {h for h, expires in rows if expires > now}
        for conn in conns:
            if conn.token_hash not in alive:
                self._close_later(conn, CLOSE_SESSION_ENDED, "session ended")


def _enqueue(to_write: deque[Connection], queued: set[Connection],
             conns: Iterable[Connection]) -> list[Connection]:
    """Append the connections not queued yet (in their order); return those appended."""
    fresh = [c for c in conns if c not in queued]
    to_write.extend(fresh)
    queued.update(fresh)
    return fresh


def _resume_point(asked: int | None, newest: int, truncated: bool) -> int:
    """What the hello frame offers as ``last_event_id``: the id a client that reconnects
    right after it can resume from without missing anything (numbered frames that follow
    only move it forward). A truncated backlog stops at what it sent."""
    if truncated and asked is not None:
        return asked
    return max(asked or 0, newest)


def _last_event_id(request: web.Request) -> int | None:
    raw = request.query.get("last_event_id")
    if raw in (None, ""):
        return None
    value = ascii_int(raw)
    if value is None:
        raise ApiError(400, "bad_parameter", "Параметр last_event_id должен быть целым числом")
    return value


def _check_origin(request: web.Request) -> None:
    """A cookie-signed socket must come from our own pages (cross-site websocket hijacking)."""
    from_cookie = "Authorization" not in request.headers and "token" not in request.query \
        and COOKIE in request.cookies
    origin = request.headers.get("Origin")
    if from_cookie and origin and urlsplit(origin).netloc != request.host:
        raise ApiError(403, "forbidden_origin", "Подключение с чужого сайта запрещено")


HUB = web.AppKey("ws_hub", Hub)


async def events(request: web.Request) -> web.StreamResponse:
    return await request.app[HUB].handle(request)


def attach(app: web.Application) -> None:
    hub = Hub(app)
    app[HUB] = hub
    if SESSION_ENDED_HOOKS not in app:
        app[SESSION_ENDED_HOOKS] = []
    app[SESSION_ENDED_HOOKS].append(hub.end_session)
    app.on_startup.append(hub.start)
    app.on_shutdown.append(hub.stop)
    app.router.add_get(PATH, events)
