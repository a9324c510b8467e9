"""Recording download throughput: 50 concurrent clients against a running service.

Generates WAV files of 1-50 MB in a temporary folder, starts the service (SQLite, no PBX,
HTTP on 127.0.0.1, in a child process so client and server each get a core), links the files
to requests, then lets 50 aiohttp clients fetch them — half whole files, half with ``Range`` —
for a fixed time. Prints MB/s, p99 time-to-first-byte, and plain file copy throughput of the
same files measured in the same run, with the ratio. Stops by itself; loopback only.

    .venv/bin/python -m bench.recordings [--seconds 10] [--clients 50]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import multiprocessing
import os
import random
import shutil
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

SIZES_MB = (1, 2, 5, 10, 20, 50, 1, 3, 8, 15, 30, 50)
CHUNK = 1024 * 1024
HARD_LIMIT_S = 180.0


def write_wav(path: Path, size: int) -> None:
    """A valid 8 kHz 16-bit mono WAV of exactly ``size`` bytes (noise is good enough)."""
    data_bytes = size - 44
    header = (b"RIFF" + struct.pack("<I", size - 8) + b"WAVEfmt "
              + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
              + b"data" + struct.pack("<I", data_bytes))
    block = os.urandom(CHUNK)
    with path.open("wb") as out:
        out.write(header)
        left = data_bytes
        while left > 0:
            out.write(block[:min(CHUNK, left)])
            left -= CHUNK


def serve(folder: str, port_queue: Any, stop: Any) -> None:
    """Child process: the service with linked recordings, until ``stop`` is set."""
    asyncio.run(_serve(Path(folder), port_queue, stop))


async def _serve(folder: Path, port_queue: Any, stop: Any) -> None:
    if os.environ.get("SWI"):
        sys.setswitchinterval(float(os.environ["SWI"]))
    from aiohttp import web

    from config import load_settings
    from hotline.assembly import build_services
    from hotline.web.app import create_app
    from journal.models import Call, Recording, Request
    from journal.users import add_user

    settings = load_settings(database_url=f"sqlite+aiosqlite:///{folder / 'bench.sqlite3'}",
                             recordings_dir=folder / "files", spill_dir=folder / "spill",
                             http_host="127.0.0.1", http_port=0, log_level="warning")
    services = build_services(settings)
    await services.db.upgrade_schema()
    await services.start(connect_ami=False)
    now = datetime.now(UTC)
    ids = []
    async with services.db.sessions.begin() as session:
        await add_user(session, "bench", "bench-password-1", "admin")
        for number, path in enumerate(sorted((folder / "files").glob("*.wav")), 1):
            request = Request(number=number, created_at=now, pbx_id="pbx1",
                              linkedid=f"bench.{number}", status="new", level="1")
            session.add(request)
            await session.flush()
            call = Call(request_id=request.id, pbx_id="pbx1", linkedid=f"bench.{number}",
                        started_at=now, ended_at=now)
            session.add(call)
            await session.flush()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            recording = Recording(request_id=request.id, call_id=call.id, pbx_id="pbx1",
                                  pbx_path=f"/x/{path.name}", relative_path=path.name,
                                  status="linked", started_at=now, linked_at=now,
                                  bytes=path.stat().st_size, sha256=digest)
            session.add(recording)
            await session.flush()
            ids.append((number, recording.id, path.stat().st_size))
    runner = web.AppRunner(create_app(services), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    port_queue.put((port, ids))
    while not stop.is_set():
        await asyncio.sleep(0.1)
    await runner.cleanup()
    await services.stop()


def copy_throughput(files: list[Path], target: Path, rounds: int = 3) -> tuple[float, float]:
    """Best-of-``rounds`` MB/s of shutil.copyfile (kernel copy) and of a 1 MB read/write
    loop over the same files (best-of: the machine is shared, noise only slows things)."""
    total = sum(f.stat().st_size for f in files)
    kernel = userspace = 0.0
    for _ in range(rounds):
        target.mkdir(exist_ok=True)
        start = time.perf_counter()
        for f in files:
            shutil.copyfile(f, target / f.name)
        kernel = max(kernel, total / (time.perf_counter() - start) / 1e6)
        shutil.rmtree(target)
        target.mkdir()
        start = time.perf_counter()
        for f in files:
            with f.open("rb") as src, (target / f.name).open("wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
        userspace = max(userspace, total / (time.perf_counter() - start) / 1e6)
        shutil.rmtree(target)
    return kernel, userspace


async def login(port: int) -> str:
    async with aiohttp.ClientSession() as session, session.post(
            f"http://127.0.0.1:{port}/api/v1/auth/login",
            json={"login": "bench", "password": "bench-password-1"}) as r:
        token: str = (await r.json())["token"]
    return token


async def clients(port: int, ids: list[tuple[int, int, int]], n: int,
                  seconds: float) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    token = await login(port)
    stats: dict[str, Any] = {"bytes": 0, "ttfb": [], "requests": 0, "ranged": 0, "errors": 0}
    connector = aiohttp.TCPConnector(limit=n)
    # A larger read buffer keeps the (Python) client from being the bottleneck.
    async with aiohttp.ClientSession(connector=connector, read_bufsize=4 * CHUNK) as session:
        headers = {"Authorization": f"Bearer {token}"}
        end = time.perf_counter() + seconds

        async def one(index: int) -> None:
            rnd = random.Random(index)
            while time.perf_counter() < end:
                number, rec_id, size = rnd.choice(ids)
                h = dict(headers)
                ranged = index % 2 == 1
                if ranged:
                    h["Range"] = _random_range(rnd, size)
                t0 = time.perf_counter()
                url = f"{base}/api/v1/requests/{number}/recordings/{rec_id}"
                async with session.get(url, headers=h) as resp:
                    chunk = await resp.content.readany()
                    stats["ttfb"].append(time.perf_counter() - t0)
                    while chunk:
                        stats["bytes"] += len(chunk)
                        chunk = await resp.content.readany()
                    if resp.status not in (200, 206):
                        stats["errors"] += 1
                stats["requests"] += 1
                stats["ranged"] += ranged

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        stats["elapsed"] = time.perf_counter() - t0
    return stats


async def curl_clients(port: int, ids: list[tuple[int, int, int]], n: int,
                       seconds: float) -> dict[str, Any]:
    """The same load from one ``curl --parallel`` process (a C client with keep-alive), so the
    figure is the server's and not the Python client's. Batches of requests run back to back
    until ``seconds`` have passed; every transfer reports status, bytes and time to first byte."""
    base = f"http://127.0.0.1:{port}"
    token = await login(port)
    stats: dict[str, Any] = {"bytes": 0, "ttfb": [], "requests": 0, "ranged": 0, "errors": 0}
    rnd = random.Random(1)
    t0 = time.perf_counter()
    end = t0 + seconds
    while time.perf_counter() < end:
        blocks = []
        for index in range(n * 8):
            number, rec_id, size = rnd.choice(ids)
            lines = [f'url = "{base}/api/v1/requests/{number}/recordings/{rec_id}"',
                     'output = "/dev/null"', f'header = "Authorization: Bearer {token}"',
                     'write-out = "%{http_code} %{size_download} %{time_starttransfer}\\n"']
            if index % 2 == 1:
                lines.append(f'header = "Range: {_random_range(rnd, size)}"')
                stats["ranged"] += 1
            blocks.append("\n".join(lines))
        config = "\nnext\n".join(blocks) + "\n"
        proc = await asyncio.create_subprocess_exec(
            "curl", "-s", "--parallel", "--parallel-max", str(n), "-K", "-",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL)
        out, _ = await proc.communicate(config.encode())
        for line in out.decode().splitlines():
            code, size_down, ttfb = line.split()
            stats["bytes"] += int(size_down)
            stats["ttfb"].append(float(ttfb))
            stats["requests"] += 1
            if code not in ("200", "206"):
                stats["errors"] += 1
    stats["elapsed"] = time.perf_counter() - t0
    return stats


def raw_clients(port: int, token: str, ids: list[tuple[int, int, int]], n: int,
                seconds: float) -> dict[str, Any]:
    """The same load from ``n`` threads, each with one keep-alive socket that reads bodies with
    ``recv_into`` a 1 MB buffer (the GIL is released while the kernel copies): the leanest
    client Python has, so the figure is the server's. Only Content-Length bodies (all ours)."""
    stats: dict[str, Any] = {"bytes": 0, "ttfb": [], "requests": 0, "ranged": 0, "errors": 0}
    lock = threading.Lock()
    end = time.perf_counter() + seconds

    def one(index: int) -> None:
        rnd = random.Random(index)
        buffer = memoryview(bytearray(CHUNK))
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while time.perf_counter() < end:
                number, rec_id, size = rnd.choice(ids)
                head = (f"GET /api/v1/requests/{number}/recordings/{rec_id} HTTP/1.1\r\n"
                        f"Host: bench\r\nAuthorization: Bearer {token}\r\n")
                ranged = index % 2 == 1
                if ranged:
                    head += f"Range: {_random_range(rnd, size)}\r\n"
                t0 = time.perf_counter()
                sock.sendall((head + "\r\n").encode())
                received = b""
                while b"\r\n\r\n" not in received:
                    got = sock.recv_into(buffer)
                    if not got:
                        raise ConnectionError("server closed the connection")
                    received += bytes(buffer[:got])
                ttfb = time.perf_counter() - t0
                status, body = _parse_head(received)
                left = status[1] - len(body)
                while left > 0:
                    got = sock.recv_into(buffer, min(left, CHUNK))
                    if not got:
                        raise ConnectionError("server closed the connection mid-body")
                    left -= got
                with lock:
                    stats["bytes"] += status[1]
                    stats["ttfb"].append(ttfb)
                    stats["requests"] += 1
                    stats["ranged"] += ranged
                    stats["errors"] += status[0] not in (200, 206)

    t0 = time.perf_counter()
    workers = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stats["elapsed"] = time.perf_counter() - t0
    return stats


def _parse_head(received: bytes) -> tuple[tuple[int, int], bytes]:
    """((status, content length), the body bytes that came with the head)."""
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in lines
                  if line.lower().startswith(b"content-length:"))
    return (int(lines[0].split()[1]), length), body


def _random_range(rnd: random.Random, size: int) -> str:
    start = rnd.randrange(0, size - 1)
    return rnd.choice([f"bytes={start}-{min(size - 1, start + 4 * CHUNK)}",
                       f"bytes=-{CHUNK}", f"bytes={start}-"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of one round")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of (file copy, HTTP load); the median round is the result")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--client", choices=["raw", "curl", "aiohttp"], default="raw",
                        help="raw: threads with keep-alive sockets reading into a 1 MB buffer "
                        "(default, the leanest client); curl: one curl --parallel process "
                        "(16 KB reads); aiohttp: Python asyncio clients")
    args = parser.parse_args(argv)
    rounds: list[tuple[float, float, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="hotline-bench-") as tmp:
        folder = Path(tmp)
        (folder / "files").mkdir()
        files = []
        for i, mb in enumerate(SIZES_MB):
            path = folder / "files" / f"rec-{i:02d}-{mb}mb.wav"
            write_wav(path, mb * 1024 * 1024)
            files.append(path)
        total_mb = sum(f.stat().st_size for f in files) / 1e6
        ctx = multiprocessing.get_context("spawn")
        port_queue, stop = ctx.Queue(), ctx.Event()
        server = ctx.Process(target=serve, args=(str(folder), port_queue, stop), daemon=True)
        server.start()
        try:
            port, ids = port_queue.get(timeout=60)
            for _ in range(args.rounds):
                # Copy and HTTP alternate, so a round's ratio compares like with like even
                # when the shared machine's speed drifts during the run.
                kernel, userspace = copy_throughput(files, folder / "copy")
                rounds.append((kernel, userspace, run_clients(args, port, ids)))
        finally:
            stop.set()
            server.join(15)
            if server.is_alive():
                server.terminate()
    print(f"files: {len(files)} WAV, 1-50 MB, {total_mb:.0f} MB in all; "
          f"{args.clients} {args.client} clients, half of them with Range", file=sys.stderr)
    ratios = []
    for n, (kernel, userspace, stats) in enumerate(rounds, 1):
        mbps = stats["bytes"] / stats["elapsed"] / 1e6
        ratios.append((mbps / kernel, n))
        ttfb = sorted(stats["ttfb"])
        print(f"round {n}: copy {kernel:7.1f} MB/s (kernel), {userspace:7.1f} MB/s "
              f"(read/write); HTTP {mbps:7.1f} MB/s in {stats['elapsed']:.1f} s, "
              f"{stats['requests']} requests ({stats['ranged']} with Range), "
              f"{stats['errors']} errors; TTFB median {statistics.median(ttfb) * 1000:.1f} ms, "
              f"p99 {_p99(ttfb) * 1000:.1f} ms; HTTP / kernel copy {mbps / kernel:6.1%}")
    ratio, median_round = sorted(ratios)[len(ratios) // 2]
    kernel, userspace, stats = rounds[median_round - 1]
    ttfb = sorted(stats["ttfb"])
    print(f"median round ({median_round}): HTTP / kernel copy {ratio:6.1%}, "
          f"HTTP / read-write copy {stats['bytes'] / stats['elapsed'] / 1e6 / userspace:6.1%}, "
          f"TTFB p99 {_p99(ttfb) * 1000:.1f} ms (target: >= 80 % of the kernel copy)")
    return 0 if all(s["errors"] == 0 for _, _, s in rounds) else 1


def run_clients(args: argparse.Namespace, port: int,
                ids: list[tuple[int, int, int]]) -> dict[str, Any]:
    if args.client == "raw":
        token = asyncio.run(login(port))
        return raw_clients(port, token, ids, args.clients, args.seconds)
    run = curl_clients if args.client == "curl" else clients
    stats: dict[str, Any] = asyncio.run(asyncio.wait_for(
        run(port, ids, args.clients, args.seconds), HARD_LIMIT_S))
    return stats


def _p99(values: list[float]) -> float:
    return values[min(len(values) - 1, int(len(values) * 0.99))] if values else float("nan")


if __name__ == "__main__":
    raise SystemExit(main())
