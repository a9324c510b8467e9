"""Sending recording bytes: the sending threads, the event-loop fallback, clients that go away
or stall, files that shrink — on the recorded traces' audio and on a large file."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from recordings.api import SEND_THREADS
from recordings.storage import LocalStorage, StoredFile
from recordings.transfer import ClientStalled, SendfileThreads, _send_blocking
from tests.helpers import bearer, create_user, login
from tests.test_recordings import replay
from tests.test_recordings_http import SCENARIOS, needs_traces, recordings_by_number


def test_blocking_send_exact_bytes_short_file_and_stall(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024)
    path = tmp_path / "a.wav"
    path.write_bytes(data)
    left, right = socket.socketpair()
    with left, right:
        left.setblocking(False)
        received = bytearray()

        def reader(n: int) -> None:
            while len(received) < n:
                received.extend(right.recv(1 << 20))

        async def run() -> int:
            reading = asyncio.to_thread(reader, 1_000_000)
            sent = asyncio.to_thread(_send_blocking, left.fileno(), path, 500, 1_000_000, 5000)
            return (await asyncio.gather(sent, reading))[0]

        assert asyncio.run(run()) == 1_000_000
        assert bytes(received) == data[500:1_000_500]
        # Asked past the end (the file shrank after stat): what there is, and the count says so.
        received.clear()

        async def run_short() -> int:
            reading = asyncio.to_thread(reader, 100)
            sent = asyncio.to_thread(_send_blocking, left.fileno(), path, len(data) - 100,
                                     1000, 5000)
            return (await asyncio.gather(sent, reading))[0]

        assert asyncio.run(run_short()) == 100
        # Nobody reads: the socket buffer fills, then the stall timeout cuts the transfer.
        with pytest.raises(ClientStalled):
            _send_blocking(left.fileno(), path, 0, len(data), 200)


def test_a_client_that_goes_away_ends_the_transfer(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(os.urandom(8 * 1024 * 1024))
    left, right = socket.socketpair()
    with left:
        left.setblocking(False)
        right.close()
        with pytest.raises(OSError):  # EPIPE / ECONNRESET, never a hang
            _send_blocking(left.fileno(), path, 0, path.stat().st_size, 5000)


async def _admin_harness(tmp_path: Path, make_settings: Any, start_service: Any,
                         replay_peer: Any, **overrides: Any) -> tuple[Any, str]:
    folder = tmp_path / "rec"
    shutil.copytree(SCENARIOS["s01"] / "recordings", folder)
    harness = await replay(SCENARIOS["s01"], make_settings, start_service, replay_peer, folder,
                           **overrides)
    await create_user(harness.services, "admin", "admin")
    return harness, await login(harness, "admin")


@needs_traces
@pytest.mark.parametrize("path", ["threads", "event_loop"])
async def test_both_sending_paths_serve_the_same_bytes(
        path: str, tmp_path: Path, make_settings: Any, start_service: Any, replay_peer: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    if path == "event_loop":  # every thread busy: the loop's own sendfile takes over
        monkeypatch.setattr(SendfileThreads, "can_take", lambda self, transport: False)
    harness, token = await _admin_harness(tmp_path, make_settings, start_service, replay_peer)
    (number, rec), = (await recordings_by_number(harness)).items()
    data = (tmp_path / "rec" / rec.relative_path).read_bytes()
    url = harness.url(f"/api/v1/requests/{number}/recordings/{rec.id}")
    for header, expected in ((None, data), ("bytes=0-0", data[:1]),
                             ("bytes=-4096", data[-4096:]), ("bytes=44-", data[44:])):
        headers = bearer(token) | ({"Range": header} if header else {})
        async with harness.http.get(url, headers=headers) as resp:
            assert resp.status == (206 if header else 200)
            assert await resp.read() == expected


@needs_traces
async def test_clients_that_leave_mid_download_do_not_disturb_the_others(
        tmp_path: Path, make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness, token = await _admin_harness(tmp_path, make_settings, start_service, replay_peer)
    (number, rec), = (await recordings_by_number(harness)).items()
    big = tmp_path / "rec" / rec.relative_path
    with big.open("ab") as out:  # large enough that socket buffers cannot hold it
        out.write(os.urandom(40 * 1024 * 1024))
    data = big.read_bytes()
    port = harness.server.port
    path = f"/api/v1/requests/{number}/recordings/{rec.id}"

    async def leave_early() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\r\n"
                     .encode())
        await reader.readexactly(64 * 1024)
        writer.transport.abort()

    await asyncio.gather(*(leave_early() for _ in range(8)))
    async with harness.http.get(harness.url(path), headers=bearer(token)) as resp:
        assert resp.status == 200 and await resp.read() == data
    threads = harness.server.app[SEND_THREADS]
    for _ in range(100):  # the abandoned transfers end (EPIPE), their threads are free again
        if threads.busy == 0:
            break
        await asyncio.sleep(0.05)
    assert threads.busy == 0


@needs_traces
async def test_a_file_that_shrank_after_stat_cuts_the_connection(
        tmp_path: Path, make_settings: Any, start_service: Any, replay_peer: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    harness, token = await _admin_harness(tmp_path, make_settings, start_service, replay_peer)
    (number, rec), = (await recordings_by_number(harness)).items()
    real_stat = LocalStorage._stat

    def stat_then_shrink(self: LocalStorage, relative: str) -> StoredFile | None:
        found = real_stat(self, relative)
        assert found is not None and found.path is not None
        with found.path.open("r+b") as out:
            out.truncate(found.size - 1000)
        return found

    monkeypatch.setattr(LocalStorage, "_stat", stat_then_shrink)
    url = harness.url(f"/api/v1/requests/{number}/recordings/{rec.id}")
    with pytest.raises(aiohttp.ClientPayloadError):  # never a silently short "complete" body
        async with harness.http.get(url, headers=bearer(token)) as resp:
            await resp.read()
