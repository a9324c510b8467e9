"""A real TCP AMI peer that replays recorded traces (what tests, the demo and benchmarks use).

It speaks the manager protocol like Asterisk: banner, Login (with a real secret check), Ping,
CoreShowChannels (answered from the channels alive at that point of the trace), Originate,
Logoff. Events stream at the recorded pace times ``speed`` (``speed <= 0``: as fast as the
socket takes them). Recorder markers of a lost connection make the peer drop the client, as the
real PBX did; ``drops``/``gap`` inject extra drops for tests: after the N-th event the client is
cut and the next ``gap`` events happen while it is away (they only change the channel table).
Test knobs: ``hold_on_drop`` keeps the peer refusing new sessions after such a drop until
:meth:`resume` (the PBX is unreachable while a test restarts the service); ``answer_pings``
False makes the peer ignore Ping actions (a half-dead PBX, for the ping timeout);
``events_after_listing`` holds the stream after a login until that session's CoreShowChannels
is answered (the listing shows exactly the channels up at the cut, then the events go on).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from telephony.framing import AmiFramer, encode_message, headers_of
from telephony.trace import TraceItem, refresh_ids

log = logging.getLogger(__name__)

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
_CHANNEL_KEYS = ("Channel", "ChannelState", "ChannelStateDesc", "CallerIDNum", "CallerIDName",
                 "ConnectedLineNum", "ConnectedLineName", "Language", "AccountCode", "Context",
                 "Exten", "Priority", "Uniqueid", "Linkedid")


class ChannelTable:
    """The channels alive at the current point of the trace, for CoreShowChannels."""

    def __init__(self) -> None:
        self.channels: dict[str, dict[str, str]] = {}

    def apply(self, pairs: Sequence[tuple[str, str]]) -> None:
        headers = dict(pairs)
        event = headers.get("Event")
        if event == "Shutdown":
            self.channels.clear()
            return
        uniqueid = headers.get("Uniqueid")
        if not uniqueid or "Channel" not in headers:
            return
        if event == "Hangup":
            self.channels.pop(uniqueid, None)
            return
        row = self.channels.get(uniqueid)
        if row is None:
            if event != "Newchannel":
                return
            row = self.channels[uniqueid] = {"BridgeId": "", "Application": "",
                                             "ApplicationData": ""}
        for key in _CHANNEL_KEYS:
            if key in headers:
                row[key] = headers[key]
        if event == "BridgeEnter":
            row["BridgeId"] = headers.get("BridgeUniqueid", "")
        elif event == "BridgeLeave":
            row["BridgeId"] = ""
        elif event == "Newexten":
            row["Application"] = headers.get("Application", "")
            row["ApplicationData"] = headers.get("AppData", "")

    def listing(self, action_id: str) -> list[list[tuple[str, str]]]:
        rows = [[("Event", "CoreShowChannel"), ("ActionID", action_id)]
                + [(k, row.get(k, "")) for k in _CHANNEL_KEYS]
                + [("BridgeId", row["BridgeId"]), ("Application", row["Application"]),
                   ("ApplicationData", row["ApplicationData"])]
                for row in self.channels.values()]
        rows.append([("Event", "CoreShowChannelsComplete"), ("ActionID", action_id),
                     ("EventList", "Complete"), ("ListItems", str(len(rows)))])
        return rows


@dataclass
class _Session:
    writer: asyncio.StreamWriter
    logged_in: bool = False
    closed: bool = False


@dataclass
class ReplayStats:
    sessions: int = 0
    logins_refused: int = 0
    events_sent: int = 0
    actions: list[dict[str, str]] = field(default_factory=list)


class ReplayPeer:
    """Serve ``items`` (a trace, or several concatenated) to AMI clients over TCP."""

    def __init__(
        self,
        items: Iterable[TraceItem],
        *,
        speed: float = 1.0,
        username: str = "journal",
        secret: str = "journal-secret",
        drops: Iterable[int] = (),
        gap: int = 0,
        inject: dict[int, bytes] | None = None,
        rounds: int | None = 1,
        round_pause_s: float = 0.0,
        first_round: int = 0,
        on_round: Callable[[int], None] | None = None,
        hold_on_drop: bool = False,
        answer_pings: bool = True,
        rate: float = 0.0,
        events_after_listing: bool = False,
    ) -> None:
        # One round is streamed as it comes (a load of millions of messages generated
        # lazily); several rounds replay the same items, so they are kept.
        self.items: Iterable[TraceItem] = items if rounds == 1 else list(items)
        self.speed = speed
        # Events per second, evenly paced (benchmarks: latency at a fixed offered load);
        # overrides ``speed`` when > 0.
        self.rate = rate
        self.username = username
        self.secret = secret
        self.drops = set(drops)
        self.gap = gap
        self.inject = dict(inject or {})
        self.rounds = rounds
        self.round_pause_s = round_pause_s
        self.first_round = first_round
        self.on_round = on_round
        self.hold_on_drop = hold_on_drop
        self.answer_pings = answer_pings
        self.events_after_listing = events_after_listing
        # False while the peer plays an unreachable PBX: new sessions are closed at once.
        self.accepting = True
        self.table = ChannelTable()
        self.stats = ReplayStats()
        self.done = asyncio.Event()
        self.uptime = 1
        self._session: _Session | None = None
        self._session_ready = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._streamer: asyncio.Task[None] | None = None
        self.port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._serve, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._streamer = asyncio.create_task(self._stream())
        return self.port

    def resume(self) -> None:
        """Accept sessions again after a ``hold_on_drop`` drop."""
        self.accepting = True

    async def close(self) -> None:
        if self._streamer is not None:
            self._streamer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._streamer
        self._drop_session()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    # ------------------------------------------------------------ client side
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.accepting:
            writer.close()
            return
        session = _Session(writer)
        self.stats.sessions += 1
        writer.write(BANNER)
        framer = AmiFramer()
        framer.banner = ""  # clients send no banner
        try:
            while not session.closed:
                data = await reader.read(65536)
                if not data:
                    break
                for pairs in framer.feed(data):
                    self._answer(session, headers_of(pairs))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            session.closed = True
            if self._session is session:
                self._session = None
                self._session_ready.clear()
            writer.close()

    def _answer(self, session: _Session, action: dict[str, str | list[str]]) -> None:
        name = str(action.get("Action", "")).lower()
        action_id = str(action.get("ActionID", ""))
        reply: list[tuple[str, str]] = [("Response", "Success"), ("ActionID", action_id)]
        self.stats.actions.append({k: str(v) for k, v in action.items()})
        if name == "login":
            if action.get("Username") == self.username and action.get("Secret") == self.secret:
                reply.append(("Message", "Authentication accepted"))
                self._send(session, reply)
                self._send(session, [("Event", "FullyBooted"), ("Privilege", "system,all"),
                                     ("Uptime", str(self.uptime)),
                                     ("LastReload", str(self.uptime)),
                                     ("Status", "Fully Booted")])
                session.logged_in = True
                self._drop_session()
                self._session = session
                if not self.events_after_listing:
                    self._session_ready.set()
            else:
                self.stats.logins_refused += 1
                self._send(session, [("Response", "Error"), ("ActionID", action_id),
                                     ("Message", "Authentication failed")])
            return
        if not session.logged_in:
            self._send(session, [("Response", "Error"), ("ActionID", action_id),
                                 ("Message", "Permission denied")])
            return
        if name == "ping":
            if not self.answer_pings:
                return
            reply.append(("Ping", "Pong"))
        elif name == "coreshowchannels":
            reply += [("EventList", "start"), ("Message", "Channels will follow")]
            self._send(session, reply)
            for row in self.table.listing(action_id):
                self._send(session, row)
            if self.events_after_listing and session is self._session:
                self._session_ready.set()
            return
        elif name == "originate":
            reply.append(("Message", "Originate successfully queued"))
        elif name == "logoff":
            self._send(session, [("Response", "Goodbye"), ("ActionID", action_id),
                                 ("Message", "Thanks for all the fish.")])
            session.closed = True
            session.writer.close()
            return
        self._send(session, reply)

    def _send(self, session: _Session, pairs: Sequence[tuple[str, str]]) -> None:
        if not session.closed:
            session.writer.write(encode_message(list(pairs)))

    def _drop_session(self) -> None:
        session, self._session = self._session, None
        self._session_ready.clear()
        if session is not None:
            session.closed = True
            session.writer.close()

    # ------------------------------------------------------------ the timeline
    def _timeline(self) -> Iterator[TraceItem]:
        rounds = itertools.count() if self.rounds is None else range(self.rounds)
        for round_no in rounds:
            if self.on_round is not None:
                self.on_round(self.first_round + round_no)
            yield from refresh_ids(self.items, self.first_round + round_no)
            if self.round_pause_s:
                yield TraceItem(-1.0, marker="round-pause")

    async def _stream(self) -> None:
        # Recorded pace: the loop time and trace time of the first event since the last login
        # or pause; each event leaves at anchor + (t - t0) / speed, so late wake-ups (a loaded
        # machine) do not add up over a long call the way sleeping each gap would.
        anchor: tuple[float, float] | None = None
        loop = asyncio.get_running_loop()
        paced_from: float | None = None
        skipping = 0
        in_login_block = False
        pending = bytearray()
        for item in self._timeline():
            if item.marker == "round-pause":
                await asyncio.sleep(self.round_pause_s)
                anchor = None
                continue
            if item.banner is not None:
                in_login_block = True
                anchor = None
                continue
            if item.marker in ("recorder-reconnect", "connection-lost"):
                await self._flush(pending)
                self._drop_session()
                continue
            if item.marker is not None or item.is_response:
                continue
            event = item.header("Event")
            if in_login_block and event == "FullyBooted":
                uptime = item.header("Uptime") or "0"
                self.uptime = int(uptime) if uptime.isdigit() else 0
                in_login_block = False
                continue
            in_login_block = False
            if self.rate > 0:
                # Sent in small bursts on a fixed schedule: event n leaves at n / rate.
                if paced_from is None:
                    paced_from = loop.time()
                ahead = paced_from + self.stats.events_sent / self.rate - loop.time()
                if ahead > 0.002:
                    await self._flush(pending)
                    await asyncio.sleep(ahead)
            elif self.speed > 0:
                if anchor is None:
                    anchor = (loop.time(), item.t)
                ahead = anchor[0] + (item.t - anchor[1]) / self.speed - loop.time()
                if ahead > 0:
                    await self._flush(pending)
                    await asyncio.sleep(ahead)
            if not skipping:
                # Nobody is logged in: the PBX waits here, so the next login's CoreShowChannels
                # lists the channels as they are now, and this event follows it.
                session = self._session
                if session is None or session.closed:
                    await self._flush(pending)
                    await self._session_ready.wait()
                    anchor = (loop.time(), item.t) if anchor is not None else None
            self.table.apply(item.pairs)
            if skipping:
                skipping -= 1
                continue
            index = self.stats.events_sent
            if index in self.inject:
                pending += self.inject[index]
            pending += encode_message(list(item.pairs))
            self.stats.events_sent += 1
            if len(pending) > 65536 or (self.speed > 0 and self.rate <= 0):
                await self._flush(pending)
            if self.stats.events_sent in self.drops:
                await self._flush(pending)
                if self.hold_on_drop:
                    self.accepting = False
                self._drop_session()
                skipping = self.gap
        await self._flush(pending)
        self.done.set()

    async def _flush(self, pending: bytearray) -> None:
        if not pending:
            return
        session = self._session
        if session is None or session.closed:
            await self._session_ready.wait()
            session = self._session
        assert session is not None
        session.writer.write(bytes(pending))
        pending.clear()
        with contextlib.suppress(ConnectionError):
            await session.writer.drain()
