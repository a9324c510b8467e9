"""Screen-pop latency: 1,000 websocket clients, 100 concurrent calls replayed over TCP AMI.

Processes on loopback: the AMI replay peer, the service (SQLite in a temporary folder,
HTTP on 127.0.0.1), one holding the 100 clients whose phones ring, one holding the other 900
websocket clients, and this one, which only starts them and reports. The s01 trace is copied
100 times with fresh ids (``refresh_ids``), each copy ringing its own extension (1001…1100),
and the copies are interleaved (one call starting every ``--stagger`` seconds), so about 100
calls are in progress at once. The service records when each phone's ``Newstate`` Ringing
arrives (the pipeline's ``feed`` is wrapped); clients record when the ``call.ringing`` frame
arrives. CLOCK_MONOTONIC is system-wide on Linux, so the two are comparable.

The process holding the other 900 clients (they stand for browsers on other machines) runs at
``--load-nice`` 10 by default: on a two-core machine at equal priority it takes the CPU from the
service and from the measured pages (the service itself is not favoured: it runs at 0). Only
that process is niced: until 2026-12-07 this one was, after the first run, so that the
two-instance run's services, PBX peer and ringing pages inherited nice 10 and competed with
the load at equal priority.

The clients whose phones ring time each frame by the kernel's receive timestamp on their
socket (``SO_TIMESTAMPNS``), which is the frame's arrival at the client; when their process then
got a core to read it is printed too. On loopback the kernel stamps a TCP segment as it
enters the receiving side, which runs inside the service's send, so "written → received by
the client's kernel" is near zero unless something holds the segment (it is printed to show
that). TCP stamps a read with its last segment: a pop read together with a later frame would
carry the later one's time, which is why these pages live in a process of their own.

Printed: p50 / p99 / max delay for the screen pop (the client bound to the ringing extension),
split into AMI → published (intake and database: the wait until the intake takes the event's
batch, then that batch's transaction and the hop back to the loop), published → written to
that client's socket (the hub) and written → received by the client's kernel; the delay for
every recipient of the pop (fan-out to admins and operators); frames sent, slow consumers
dropped, the service's garbage collections and RSS, and how busy the machine was (a saturated
machine measures its scheduler). Target: screen-pop p99 ≤ 20 ms.

    .venv/bin/python bench/screenpop.py [--clients 1000] [--calls 100] [--stagger 0.05]

``--instances 2`` (PostgreSQL, HOTLINE_BUS=postgresql): first the single-instance run as above,
then two service processes on one fresh schema — A ingests the PBX, B stands by — with
``--clients`` pages on each (2,000 in all; the ringing phones' pages alternate between A and
B), and the pop figures per instance and across both, printed beside the single-instance one.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing as mp
import os
import re
import socket
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TRACE = REPO.parent / "shared" / "ami-traces" / "s01-answered-l1" / "trace.jsonl"
if not TRACE.exists():
    TRACE = REPO / "hotline" / "demo_data" / "s01-answered-l1" / "trace.jsonl"
SECRET = "bench-secret"
_EXT = re.compile(r"(?<![\d.])101(?!\d)")


# ------------------------------------------------------------------ the traffic
def build_traffic(calls: int, stagger_s: float) -> list[Any]:
    """``calls`` copies of s01, fresh ids, extension 1000+n, start times ``stagger_s`` apart."""
    from telephony.trace import TraceItem, read_trace, refresh_ids

    items = read_trace(TRACE)
    head: list[TraceItem] = []
    for item in items:  # the banner and the login block's FullyBooted
        head.append(item)
        if item.header("Event") == "FullyBooted":
            break
    body = [i for i in items if i.is_message and not i.is_response
            and i.header("Event") != "FullyBooted"]
    first_t = body[0].t
    merged: list[TraceItem] = []
    for n in range(1, calls + 1):
        ext = str(1000 + n)
        offset = n * stagger_s - first_t
        for item in refresh_ids(body, n):
            pairs = tuple((k, _EXT.sub(ext, v)) for k, v in item.pairs)
            merged.append(TraceItem(item.t + offset, pairs=pairs))
    merged.sort(key=lambda i: i.t)
    return head + merged


def run_peer(conn: Any, calls: int, stagger_s: float, speed: float) -> None:
    from telephony.replay import ReplayPeer

    async def main() -> None:
        peer = ReplayPeer(build_traffic(calls, stagger_s), speed=speed, secret=SECRET)
        port = await peer.start()
        conn.send(("port", port, peer.stats.events_sent))
        await peer.done.wait()
        conn.send(("done", peer.stats.events_sent))
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # until told
        await peer.close()

    asyncio.run(main())


# ------------------------------------------------------------------ the service
class GcPauses:
    """How long each garbage collection held the service's event loop, by generation."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {}
        self._began = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.pauses.setdefault(info["generation"], []).append(
                (time.perf_counter() - self._began) * 1000)

    def start(self) -> None:
        import gc

        gc.callbacks.append(self._callback)

    def stop(self) -> dict[int, list[float]]:
        import gc

        gc.callbacks.remove(self._callback)
        return self.pauses


def _cpu_times() -> tuple[int, int]:
    """The machine's (busy, all) CPU ticks so far, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


async def sample_cpu(busy: list[float], every_s: float = 0.5) -> None:
    """The machine's busy share of each ``every_s`` while the calls run (until cancelled)."""
    before = _cpu_times()
    while True:
        await asyncio.sleep(every_s)
        now = _cpu_times()
        if now[1] > before[1]:
            busy.append((now[0] - before[0]) / (now[1] - before[1]))
        before = now


def _rss_kib() -> tuple[int, int]:
    fields = dict(line.split(":", 1) for line in
                  Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def run_service(conn: Any, ami_port: int, clients: int, workdir: str,
                backend: str = "sqlite", bus: str = "local", shared_schema: str | None = None,
                ingest: bool = True) -> None:
    """One service instance. ``ingest`` False: a second instance on ``shared_schema`` (its
    users and PBX are the first one's); it only serves pages."""
    from datetime import UTC, datetime

    from aiohttp import web
    from sqlalchemy import select

    from config import load_settings
    from hotline.assembly import build_services
    from hotline.logs import setup_logging
    from hotline.runtime import settle_heap, shorten_gil_switch
    from hotline.web.app import create_app
    from hotline.web.ws import HUB
    from journal.models import Request, User
    from journal.users import hash_password, open_session
    from telephony.ami import AmiClient

    setup_logging("warning", False)

    async def main() -> None:
        from bench.ingest import PG_URL, pg_schema

        schema, drop = (shared_schema, None) if shared_schema is not None else \
            await pg_schema() if backend == "postgresql" else (None, None)
        settings = load_settings(
            bus=bus,
            database_url=PG_URL if backend == "postgresql"
            else f"sqlite+aiosqlite:///{workdir}/journal.sqlite3",
            ami_host="127.0.0.1", ami_port=ami_port, ami_secret=SECRET,
            hotline_numbers="88007070561", l2_targets="7001",
            smo_lines="88001002030=SMO1", recordings_dir=f"{workdir}/rec",
            spill_dir=f"{workdir}/spill", http_port=0, log_level="warning")
        services = build_services(settings, db_schema=schema)
        if ingest:
            await services.db.upgrade_schema()
        await services.start(connect_ami=False)
        arrivals: dict[tuple[str, str], float] = {}
        feed = services.pipeline.feed

        def timed_feed(headers: Any) -> None:
            if headers.get("Event") == "Newstate" and headers.get("ChannelState") == "5":
                dest = str(headers.get("Channel", ""))
                ext = dest.split("/", 1)[-1].rsplit("-", 1)[0]
                arrivals.setdefault((str(headers.get("Linkedid")), ext), time.monotonic())
            feed(headers)

        services.pipeline.feed = timed_feed  # type: ignore[method-assign]
        published: dict[str, float] = {}
        publish = services.bus.publish

        unwritten: dict[str, list[str]] = {}  # extension → pops published, not yet written

        # When the intake took the batch that published each pop (its commit began).
        batch_taken: dict[str, float] = {}
        commit = services.intake._commit
        taken_at = [0.0]

        async def timed_commit(*args: Any, **kwargs: Any) -> bool:
            taken_at[0] = time.monotonic()
            return await commit(*args, **kwargs)

        services.intake._commit = timed_commit  # type: ignore[method-assign]

        # The rings popped as they rang, not by their own batch (journal/intake/early.py).
        early_keys: set[str] = set()
        early = services.intake.early
        assert early is not None
        early_pop = early._pop

        popped_at: dict[str, float] = {}  # when each early pop was made

        def timed_early_pop(event: Any, committed: Any) -> Any:
            note = early_pop(event, committed)
            key = f"{note.request_number}|{note.data['extension']}"
            early_keys.add(key)
            popped_at[key] = time.monotonic()
            return note

        early._pop = timed_early_pop  # type: ignore[method-assign]

        # The early store's steps, per pop: handed to the writer, its thread began the INSERT,
        # the INSERT committed (in the thread).
        steps: dict[str, list[float]] = {}
        write_soon = services.db.write_soon

        def timed_write_soon(work: Any, done: Any) -> None:
            keys = [f"{n.request_number}|{n.data.get('extension')}"
                    for n in getattr(work, "keywords", {}).get("notes", ())]
            for key in keys:
                steps[key] = [time.monotonic()]

            def timed_work(connection: Any) -> None:
                began = time.monotonic()
                work(connection)
                ended = time.monotonic()
                for key in keys:
                    steps[key] += [began, ended]

            write_soon(timed_work, done)

        services.db.write_soon = timed_write_soon  # type: ignore[method-assign]

        def timed_publish(note: Any) -> None:
            key = f"{note.request_number}|{note.data.get('extension')}"
            # The first publication only: on PostgreSQL an instance's own NOTIFY may hand a
            # pop out before the writer thread's reply does (the bus drops the later one).
            if note.type == "call.ringing" and key not in published:
                published[key] = time.monotonic()
                if ingest and key not in early_keys:
                    batch_taken[key] = taken_at[0]
                unwritten.setdefault(str(note.data["extension"]), []).append(key)
            publish(note)

        services.bus.publish = timed_publish  # type: ignore[method-assign]
        pauses = GcPauses()

        # 1,000 users: every 10th an admin, a few SMO and auditors, the rest operators;
        # one password hash for all (argon2 a thousand times would only slow the set-up).
        password_hash = hash_password("bench-password-1")
        tokens: list[tuple[str, str]] = []
        async with services.db.sessions.begin() as session:
            users = []
            for i in range(clients if ingest else 0):
                role = "admin" if i % 10 == 0 else "smo" if i % 50 == 7 else \
                    "auditor" if i % 50 == 9 else "operator"
                users.append(User(login=f"u{i}", password_hash=password_hash, role=role,
                                  smo="SMO1" if role == "smo" else None,
                                  extension=str(1000 + i), created_at=datetime.now(UTC),
                                  failed_logins=0, locked=False))
            session.add_all(users)
            await session.flush()
            for user in users:
                token, _csrf = await open_session(session, user, 2)
                tokens.append((user.extension or "", token))
        app = create_app(services)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        settle_heap()  # as `hotline serve` does once it listens
        shorten_gil_switch()
        hub = app[HUB]
        written: dict[str, float] = {}  # when each pop went to its bound client's socket
        flush_one = hub._flush_one

        async def timed_flush_one(connection: Any) -> None:
            await flush_one(connection)
            keys = unwritten.pop(connection.user.extension or "", None)
            if keys and connection.transport is not None \
                    and not connection.transport.get_write_buffer_size():
                now = time.monotonic()
                for key in keys:
                    written[key] = now
            elif keys:
                unwritten[connection.user.extension] = keys  # still queued (socket full)

        hub._flush_one = timed_flush_one  # type: ignore[method-assign]
        conn.send(("ready", port, tokens, _rss_kib(), schema))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, conn.recv)  # "start"
        pauses.start()
        s = settings
        if ingest:
            services.ami = AmiClient(
                host=s.ami_host or "127.0.0.1", port=s.ami_port, username=s.ami_username,
                secret=s.ami_secret.get_secret_value(), event_sink=services.pipeline.feed,
                on_login=services.pipeline.begin_snapshot)
            services.ami.start()
        await loop.run_in_executor(None, conn.recv)  # "report"
        async with services.db.session() as session:
            numbers = {lid: n for lid, n in await session.execute(
                select(Request.linkedid, Request.number))}
        conn.send(("report", {f"{lid}|{ext}": t for (lid, ext), t in arrivals.items()},
                   numbers, _rss_kib(), (hub.sent, getattr(hub, "writes", 0)), hub.dropped_slow,
                   len(hub.connections),
                   services.health(), published, written, pauses.stop(), batch_taken, steps,
                   popped_at))
        await loop.run_in_executor(None, conn.recv)  # "stop"
        await runner.cleanup()
        await services.stop()
        if drop is not None:
            await drop()

    asyncio.run(main())


# ------------------------------------------------------------------ the clients
class RawClient(asyncio.Protocol):
    """A minimal websocket client (handshake, unmasked server frames, pong) so that a
    thousand of them in one process measure the service, not the client library."""

    def __init__(self, ext: str, request: bytes, ready: Any,
                 received: list[tuple[int, str, str, float, float]], counts: list[int]) -> None:
        self.ext = ext
        self.request = request
        self.ready = ready
        self.received = received
        self.counts = counts
        self.buffer = bytearray()
        self.upgraded = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.feed(data, now, now)

    def feed(self, data: bytes, arrived: float, read: float) -> None:
        """Bytes from the socket: ``arrived`` when the kernel received them, ``read`` when
        this process got to them (the same unless the socket is timestamped)."""
        buf = self.buffer
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(bytes(buf[:200]).decode(errors="replace"))
            del buf[:end + 4]
            self.upgraded = True
        pos = 0
        while len(buf) - pos >= 2:
            opcode, size = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
            start = pos + 2
            if size == 126:
                if len(buf) - pos < 4:
                    break
                size, start = int.from_bytes(buf[pos + 2:pos + 4], "big"), pos + 4
            elif size == 127:
                if len(buf) - pos < 10:
                    break
                size, start = int.from_bytes(buf[pos + 2:pos + 10], "big"), pos + 10
            if len(buf) < start + size:
                break
            payload = bytes(buf[start:start + size])
            pos = start + size
            if opcode == 1:
                self.counts[0] += 1
                if b'"call.ringing"' in payload:
                    frame = json.loads(payload)
                    self.received.append((frame["request_number"], frame["extension"],
                                          self.ext, arrived, read))
                elif b'"hello"' in payload:
                    self.ready()
            elif opcode == 9 and self.transport is not None:  # ping → masked pong
                mask = os.urandom(4)
                body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                self.transport.write(bytes((0x8A, 0x80 | len(body))) + mask + body)
            elif opcode == 8 and self.transport is not None:
                self.transport.close()
        del buf[:pos]


class _SocketWriter:
    """What RawClient needs of a transport, over a plain socket read with ``recvmsg``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def write(self, data: bytes) -> None:
        self.sock.send(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()


# Linux: the kernel's receive time of the data returned by recvmsg, as struct timespec
# (CLOCK_REALTIME). Python's socket module does not name them.
SO_TIMESTAMPNS = 35
REALTIME_MINUS_MONOTONIC = time.time() - time.monotonic()


async def _stamped_connection(port: int, client: RawClient) -> _SocketWriter:
    """A connection whose frames are timed when the kernel received them, not when this
    process got a CPU to read them: on a machine shared with the service and 900 other pages,
    a page's process can wait tens of ms for a core, which a browser on its own machine does
    not."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    writer = _SocketWriter(sock)
    client.transport = writer  # type: ignore[assignment]
    sock.send(client.request)

    def readable() -> None:
        try:
            data, ancillary, _flags, _addr = sock.recvmsg(1 << 16, socket.CMSG_SPACE(16))
        except (BlockingIOError, InterruptedError):
            return
        read = time.monotonic()
        if not data:
            loop.remove_reader(sock.fileno())
            return
        arrived = read
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= 16:
                seconds, nanoseconds = struct.unpack("qq", payload[:16])
                arrived = seconds + nanoseconds / 1e9 - REALTIME_MINUS_MONOTONIC
        client.feed(data, min(arrived, read), read)

    loop.add_reader(sock.fileno(), readable)
    return writer


def port_of(ports: list[int], ext: str) -> int:
    """Which instance a page uses: alternating by extension."""
    return ports[int(ext) % len(ports)] if ext.isdigit() else ports[0]


async def run_clients(ports: list[int], tokens: list[tuple[str, str]], ready: asyncio.Event,
                      received: list[tuple[int, str, str, float, float]], counts: list[int],
                      stamped: bool = False) -> Any:
    loop = asyncio.get_running_loop()
    connected = [0]

    def one_ready() -> None:
        connected[0] += 1
        if connected[0] == len(tokens):
            ready.set()

    transports = []
    # Connect in waves: 1,000 simultaneous handshakes would only measure the accept backlog.
    for i in range(0, len(tokens), 100):
        for ext, token in tokens[i:i + 100]:
            port = port_of(ports, ext)
            key = base64.b64encode(os.urandom(16)).decode()
            request = (f"GET /api/v1/events?token={token} HTTP/1.1\r\n"
                       f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                       f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                       f"Sec-WebSocket-Version: 13\r\n\r\n").encode()
            if stamped:
                transports.append(await _stamped_connection(
                    port, RawClient(ext, request, one_ready, received, counts)))
                continue
            transport, _ = await loop.create_connection(
                lambda e=ext, r=request: RawClient(e, r, one_ready, received, counts),
                "127.0.0.1", port)
            transports.append(transport)
        while connected[0] < min(i + 100, len(tokens)):
            await asyncio.sleep(0.01)
    return transports


def run_client_group(conn: Any, ports: list[int], tokens: list[tuple[str, str]],
                     stamped: bool, nice: int) -> None:
    """A group of pages in a process of its own. The pages whose phones ring are stamped by the
    kernel and are not niced: an operator's page does not share a CPU with 900 other pages, so
    their event loop must not be the one draining 900 sockets in epoll order before it sees
    the pop. The other pages stand for browsers on other machines: niced, so that on a shared
    two-core machine they do not take the CPU from the service (only this process is niced:
    a niced parent would hand its niceness to every process it starts afterwards)."""
    if nice:
        os.nice(nice)

    async def main() -> None:
        ready = asyncio.Event()
        received: list[tuple[int, str, str, float, float]] = []
        counts = [0]
        sockets = await run_clients(ports, tokens, ready, received, counts, stamped=stamped)
        await asyncio.wait_for(ready.wait(), 180)
        conn.send(("ready", len(sockets)))
        loop = asyncio.get_running_loop()
        while await loop.run_in_executor(None, conn.recv) == "count":
            conn.send(counts[0])
        conn.send((received, counts[0]))  # "report"
        for transport in sockets:
            transport.close()

    asyncio.run(main())


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def run_once(args: argparse.Namespace, instances: int) -> tuple[list[float], bool]:
    """One run with ``instances`` service processes; prints its figures; returns the bound
    clients' pop delays and whether the target was met."""
    ctx = mp.get_context("spawn")
    peer_conn, peer_child = ctx.Pipe()
    peer = ctx.Process(target=run_peer, args=(peer_child, args.calls, args.stagger, args.speed),
                       daemon=True)
    peer.start()
    _, ami_port, _ = peer_conn.recv()
    workdir = tempfile.mkdtemp(prefix="hotline-bench-")
    bus = "postgresql" if instances > 1 else "local"
    loop = asyncio.get_running_loop()
    services: list[tuple[Any, Any]] = []  # (pipe, process), the ingesting one first
    svc_conn, svc_child = ctx.Pipe()
    service = ctx.Process(target=run_service,
                          args=(svc_child, ami_port, args.clients * instances, workdir,
                                args.backend, bus),
                          daemon=True)
    service.start()
    services.append((svc_conn, service))
    _, http_port, tokens, rss_idle, schema = await loop.run_in_executor(None, svc_conn.recv)
    ports = [http_port]
    for n in range(1, instances):
        other_conn, other_child = ctx.Pipe()
        other = ctx.Process(target=run_service,
                            args=(other_child, ami_port, 0, f"{workdir}/{n}", args.backend, bus,
                                  schema, False), daemon=True)
        other.start()
        services.append((other_conn, other))
        ports.append((await loop.run_in_executor(None, other_conn.recv))[1])

    t0 = time.monotonic()
    # Call n (1…calls) rings extension 1000 + n: those users' pages get the pops (and are
    # stamped); users are numbered from extension 1000, so not the first `calls` of them.
    rings = {str(1000 + n) for n in range(1, args.calls + 1)}
    groups: list[tuple[Any, Any]] = []  # (pipe, process): the ringing pages, the rest
    connected_pages = []
    for stamped, group_tokens, nice in (
            (True, [t for t in tokens if t[0] in rings], 0),
            (False, [t for t in tokens if t[0] not in rings], args.load_nice)):
        if not group_tokens:
            continue
        group_conn, group_child = ctx.Pipe()
        group = ctx.Process(target=run_client_group,
                            args=(group_child, ports, group_tokens, stamped, nice), daemon=True)
        group.start()
        groups.append((group_conn, group))
        connected_pages.append((await loop.run_in_executor(None, group_conn.recv))[1])
    print(f"{sum(connected_pages)} websocket clients connected to {instances} "
          f"instance(s) in {time.monotonic() - t0:.1f} s ({connected_pages[0]} bound to ringing "
          f"phones, in their own process; the rest in a process at nice {args.load_nice})")

    async def frames_received() -> int:
        total = 0
        for group_conn, _group in groups:
            group_conn.send("count")
            total += await loop.run_in_executor(None, group_conn.recv)
        return total

    for conn, _process in services:
        conn.send("start")
    started = time.monotonic()
    busy: list[float] = []
    sampler = asyncio.create_task(sample_cpu(busy))
    await loop.run_in_executor(None, peer_conn.recv)  # the PBX sent everything
    sampler.cancel()
    # Let the last calls' frames arrive.
    last, now_received = -1, await frames_received()
    while now_received != last:
        last = now_received
        await asyncio.sleep(1.0)
        now_received = await frames_received()
    elapsed = time.monotonic() - started
    reports = []
    for conn, _process in services:
        conn.send("report")
        reports.append(await loop.run_in_executor(None, conn.recv))
    (_, arrivals, numbers, rss, sent, dropped, connected, health, _published, _written,
     gc_pauses, batch_taken, steps, popped_at) = reports[0]
    sent, writes = sent
    for other in reports[1:]:
        sent += other[4][0]
        writes += other[4][1]
        dropped += other[5]
        connected += other[6]
    # Published / written on the instance that serves each client.
    published_at_instance = [r[8] for r in reports]
    written_at_instance = [r[9] for r in reports]

    received: list[tuple[int, str, str, float, float]] = []
    frames = 0
    for group_conn, group in groups:
        group_conn.send("report")
        group_received, group_count = await loop.run_in_executor(None, group_conn.recv)
        received.extend(group_received)
        frames += group_count
        group.join(10)
    by_number = {n: lid for lid, n in numbers.items()}
    pops: list[float] = []
    pops_by_instance: list[list[float]] = [[] for _ in range(instances)]
    fanout: list[float] = []
    journal: list[float] = []  # AMI arrival → notification published (intake, database)
    standby: list[float] = []  # AMI arrival → published on a standby (+ the NOTIFY)
    to_batch: list[float] = []  # AMI arrival → the intake took the batch (waiting for one)
    in_batch: list[float] = []  # the batch taken → published (its transaction, the hop back)
    hub: list[float] = []      # published → frame at the bound client (websocket hub)
    to_socket: list[float] = []  # published → written to the bound client's socket
    delivery: list[float] = []   # written → received by the client's kernel (loopback TCP)
    reading: list[float] = []    # received → read by the client process (its CPU wait)
    read_pops: list[float] = []  # the same, to when the client process read the frame
    slowest: list[tuple[Any, ...]] = []  # each pop's steps, for the slowest ones
    for number, ext, client_ext, at, read_at in received:
        lid = by_number.get(number)
        started_at = arrivals.get(f"{lid}|{ext}")
        if started_at is None:
            continue
        delay_ms = (at - started_at) * 1000
        fanout.append(delay_ms)
        if client_ext == ext:
            index = ports.index(port_of(ports, client_ext))
            pops.append(delay_ms)
            pops_by_instance[index].append(delay_ms)
            read_pops.append((read_at - started_at) * 1000)
            published_at = published_at_instance[0].get(f"{number}|{ext}")
            local_at = published_at_instance[index].get(f"{number}|{ext}")
            slowest.append((delay_ms, index, started_at, steps.get(f"{number}|{ext}", []),
                            published_at, local_at,
                            written_at_instance[index].get(f"{number}|{ext}"), at))
            if published_at is not None and local_at is not None:
                journal.append((published_at - started_at) * 1000)
                taken = batch_taken.get(f"{number}|{ext}")
                if taken is not None:
                    to_batch.append((taken - started_at) * 1000)
                    in_batch.append((published_at - taken) * 1000)
                hub.append((at - local_at) * 1000)
                if index:
                    standby.append((local_at - started_at) * 1000)
                written_at = written_at_instance[index].get(f"{number}|{ext}")
                if written_at is not None:
                    to_socket.append((written_at - local_at) * 1000)
                    delivery.append((at - written_at) * 1000)
                    reading.append((read_at - at) * 1000)

    print(f"{args.calls} calls ({len(numbers)} requests), {health['pipeline']['messages']} AMI "
          f"messages in {elapsed:.1f} s; {sent} frames sent in {writes} writes, {frames} "
          f"received, {dropped} slow consumers dropped, {connected} still connected")
    print(line("screen pop (bound client)" + (", across instances" if instances > 1 else ""),
               pops))
    if instances > 1:
        for index, values in enumerate(pops_by_instance):
            role = "the ingesting instance" if index == 0 else "a standby, via NOTIFY"
            print(line(f"  screen pop on instance {'AB'[index]} ({role})", values))
    print(line("call.ringing, every recipient", fanout))
    print(line("  of the pop: AMI → published (intake + database)", journal))
    if instances > 1:
        print(line("    … and published on the standby (+ its NOTIFY), its pages' pops", standby))
    print(f"    popped as it rang (journal/intake/early.py: the request committed before the "
          f"ring, or at that commit): {len(journal) - len(to_batch)} of {len(journal)}")
    waited_for_start: list[float] = []  # a ring that came while its call's start was written
    queued_for_store: list[float] = []  # a pop made, waiting for the store in flight
    for key, made in popped_at.items():
        lid = by_number.get(int(key.split("|")[0]))
        rang = arrivals.get(f"{lid}|{key.split('|')[1]}")
        if rang is not None and (made - rang) * 1000 > 0.5:
            waited_for_start.append((made - rang) * 1000)
        if key in steps:
            queued_for_store.append((steps[key][0] - made) * 1000)
    print(line("      of them, rang before their call's start was committed: the wait",
               waited_for_start))
    print(line("      pop made → handed to the writer (a store in flight before it)",
               [v for v in queued_for_store if v > 0.5]))
    print(line("    by the ring's own batch: AMI → the batch taken by the intake (tracker, the "
               "batch before)", to_batch))
    print(line("    by the ring's own batch: batch taken → published (the transaction, back to "
               "the loop)", in_batch))
    print(line("  of the pop: published on the client's instance → client (hub)", hub))
    print(line("    published → written to the socket (service)", to_socket))
    print(line("    written → received by the client's kernel", delivery))
    print(line("(received → read by the client process, waiting for a core)", reading))
    print(line("(screen pop as read by the client process)", read_pops))
    print("the slowest pops, ms from the ring's AMI event: handed to the writer / its INSERT "
          "began / committed / published on the ingesting instance / on the page's instance / "
          "written / received")
    for delay_ms, index, started_at, marks, published_at, local_at, written_at, at in sorted(
            slowest, key=lambda r: r[0], reverse=True)[:4]:
        # A pop by its ring's own batch has no early-store steps: "-" keeps the columns.
        stamps = [*[*marks, None, None, None][:3], published_at, local_at, written_at, at]
        print(f"  {delay_ms:5.1f} on {'AB'[index]}: " + " / ".join(
            "-" if t is None else f"{(t - started_at) * 1000:.1f}" for t in stamps))
    print("ingesting service's garbage collections while the calls ran: " + (", ".join(
        f"generation {gen}: {len(ms)}, longest {max(ms):.1f} ms"
        for gen, ms in sorted(gc_pauses.items())) or "none"))
    if busy:
        print(f"machine's CPU busy while the PBX sent (every 0.5 s, all cores): mean "
              f"{statistics.mean(busy):.0%}, busiest {max(busy):.0%}")
    print(f"ingesting service's RSS: {rss[0] / 1024:.0f} MiB now, {rss[1] / 1024:.0f} MiB peak "
          f"({rss_idle[0] / 1024:.0f} MiB before the clients connected)")
    target = args.target_ms if instances == 1 else args.target_two_ms
    ok = bool(pops) and pct(pops, 0.99) <= target and len(pops) == args.calls
    print(f"target screen-pop p99 <= {target:.0f} ms ({instances} instance(s)): "
          f"{'met' if ok else 'NOT met'}")

    # The standbys first: the ingesting one drops the schema.
    for conn, process in reversed(services):
        conn.send("stop")
        process.join(20)
    peer_conn.send("stop")
    peer.join(5)
    return pops, ok


def line(name: str, values: list[float]) -> str:
    if not values:
        return f"{name}: no samples"
    return (f"{name}: n={len(values)} p50={statistics.median(values):.1f} ms "
            f"p99={pct(values, 0.99):.1f} ms max={max(values):.1f} ms")


async def main(args: argparse.Namespace) -> int:
    if args.instances > 1 and args.backend != "postgresql":
        print("screenpop: --instances 2 needs --backend postgresql", file=sys.stderr)
        return 2
    print("== one instance ==")
    single, ok = await run_once(args, 1)
    if args.instances == 1:
        return 0 if ok else 1
    print(f"== {args.instances} instances on one PostgreSQL (HOTLINE_BUS=postgresql) ==")
    several, ok_several = await run_once(args, args.instances)
    print("== summary ==")
    print(line("screen pop, one instance", single))
    print(line(f"screen pop, {args.instances} instances", several))
    return 0 if ok and ok_several else 1


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--stagger", type=float, default=0.05,
                        help="seconds between call starts (0.05: all 100 within 5 s)")
    parser.add_argument("--speed", type=float, default=1.0, help="replay speed (1 = real time)")
    parser.add_argument("--target-ms", type=float, default=20.0)
    parser.add_argument("--target-two-ms", type=float, default=30.0,
                        help="the pop p99 goal with several instances")
    parser.add_argument("--instances", type=int, choices=[1, 2], default=1,
                        help="2: also run two instances on one PostgreSQL (--clients pages "
                        "on each), after the single-instance run, and print both")
    parser.add_argument("--load-nice", type=int, default=10,
                        help="CPU niceness of the process holding the clients whose phones do "
                        "not ring (they stand for browsers on other machines); 0 = equal")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite",
                        help="the journal's database (PostgreSQL: a fresh schema in "
                        "HOTLINE_TEST_PG_URL, dropped afterwards)")
    return asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(cli())
