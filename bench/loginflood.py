"""Login flood: /healthz and screen-pop latency while 32 clients sign in in parallel.

Issue 10, item 2: argon2 ran on the event loop, so a burst of sign-ins (a shift starting, or
someone guessing passwords) held up everything else the loop does — the health check, the AMI
intake and the screen pops. This bench starts the same processes as ``bench/screenpop.py``
(its replay peer, its service and its process of clients whose phones ring, reused as they
are), then:

1. probes ``GET /healthz`` every ``--probe-interval`` seconds for ``--idle`` seconds (no load);
2. starts ``--clients`` sign-in clients in a process of their own, each posting correct
   credentials back to back for ``--seconds``, while the AMI replay rings ``--calls`` phones
   spread over the same time, and the probe goes on.

Printed: /healthz p50 / p99 / max idle and under the flood, sign-ins done (and their latency),
and the screen pop (AMI ``AgentCalled`` → frame received by the bound client's kernel) p50 /
p99 / max during the flood. Runs on loopback only; SQLite in a temporary folder by default.

    .venv/bin/python -m bench.loginflood [--clients 32] [--seconds 10] [--calls 40]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.screenpop import line, run_client_group, run_peer, run_service  # noqa: E402

PASSWORD = "bench-password-1"  # what bench.screenpop's service gives every user


def run_flood(conn: Any, port: int, clients: int, seconds: float, logins: list[str]) -> None:
    """``clients`` concurrent sign-in loops for ``seconds``; reports latencies and statuses."""
    import aiohttp

    async def main() -> None:
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        url = f"http://127.0.0.1:{port}/api/v1/auth/login"
        connector = aiohttp.TCPConnector(limit=clients)
        async with aiohttp.ClientSession(connector=connector) as http:
            conn.send("ready")
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # "go"
            deadline = time.monotonic() + seconds

            async def worker(n: int) -> None:
                i = n
                while time.monotonic() < deadline:
                    started = time.monotonic()
                    async with http.post(url, json={"login": logins[i % len(logins)],
                                                     "password": PASSWORD}) as resp:
                        await resp.read()
                        statuses[resp.status] = statuses.get(resp.status, 0) + 1
                    latencies.append((time.monotonic() - started) * 1000)
                    i += clients

            await asyncio.gather(*(worker(n) for n in range(clients)))
        conn.send((latencies, statuses))

    asyncio.run(main())


async def probe(port: int, seconds: float, interval_s: float) -> list[float]:
    """/healthz latencies (ms), one request at a time, one every ``interval_s``."""
    import aiohttp

    latencies: list[float] = []
    url = f"http://127.0.0.1:{port}/healthz"
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.monotonic()
            async with http.get(url) as resp:
                await resp.read()
            latencies.append((time.monotonic() - started) * 1000)
            await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - started)))
    return latencies


async def main(args: argparse.Namespace) -> int:
    ctx = mp.get_context("spawn")
    loop = asyncio.get_running_loop()
    stagger = args.seconds / max(1, args.calls + 1)
    peer_conn, peer_child = ctx.Pipe()
    peer = ctx.Process(target=run_peer, args=(peer_child, args.calls, stagger, 1.0),
                       daemon=True)
    peer.start()
    _, ami_port, _ = await loop.run_in_executor(None, peer_conn.recv)
    workdir = tempfile.mkdtemp(prefix="hotline-bench-")
    users = max(args.calls + 1, args.clients)
    svc_conn, svc_child = ctx.Pipe()
    service = ctx.Process(target=run_service,
                          args=(svc_child, ami_port, users, workdir, args.backend), daemon=True)
    service.start()
    _, http_port, tokens, _rss, _schema = await loop.run_in_executor(None, svc_conn.recv)

    # Call n rings extension 1000 + n (bench.screenpop): these pages get the pops.
    group_conn, group_child = ctx.Pipe()
    group = ctx.Process(target=run_client_group,
                        args=(group_child, [http_port], tokens[:args.calls + 1]), daemon=True)
    group.start()
    await loop.run_in_executor(None, group_conn.recv)

    flood_conn, flood_child = ctx.Pipe()
    logins = [f"u{i}" for i in range(users)]
    flood = ctx.Process(target=run_flood, args=(flood_child, http_port, args.clients,
                                                args.seconds, logins), daemon=True)
    flood.start()
    await loop.run_in_executor(None, flood_conn.recv)  # "ready"

    idle = await probe(http_port, args.idle, args.probe_interval)
    flood_conn.send("go")
    svc_conn.send("start")  # the AMI client connects; the peer starts ringing phones
    loaded = await probe(http_port, args.seconds, args.probe_interval)
    login_ms, statuses = await loop.run_in_executor(None, flood_conn.recv)
    await asyncio.sleep(1.0)  # the last pops' frames
    svc_conn.send("report")
    (_, arrivals, numbers, _rss, _sent, _dropped, _connected, _health, _published, _written,
     _gc) = await loop.run_in_executor(None, svc_conn.recv)
    group_conn.send("report")
    received, _count = await loop.run_in_executor(None, group_conn.recv)

    by_number = {n: lid for lid, n in numbers.items()}
    pops: list[float] = []
    for number, ext, client_ext, at, _read in received:
        started_at = arrivals.get(f"{by_number.get(number)}|{ext}")
        if started_at is not None and client_ext == ext:
            pops.append((at - started_at) * 1000)

    print(f"{args.clients} clients signing in for {args.seconds:.0f} s: {len(login_ms)} sign-ins "
          f"({', '.join(f'{k}: {v}' for k, v in sorted(statuses.items()))}), "
          f"{len(login_ms) / args.seconds:.1f}/s")
    print(line("sign-in", login_ms))
    print(line("/healthz idle", idle))
    print(line("/healthz during the flood", loaded))
    print(line(f"screen pop during the flood ({len(numbers)} calls rang)", pops))

    group.join(10)
    svc_conn.send("stop")
    service.join(20)
    flood.join(5)
    peer.terminate()
    peer.join(5)
    return 0


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32, help="parallel sign-in clients")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long they sign in")
    parser.add_argument("--calls", type=int, default=40,
                        help="calls ringing during the flood (spread over --seconds)")
    parser.add_argument("--idle", type=float, default=3.0, help="seconds probed without load")
    parser.add_argument("--probe-interval", type=float, default=0.02)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    return asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(cli())
