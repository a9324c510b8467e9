"""Sending recording bytes: the sending threads, the event-loop fallback, clients that go away
or stall, files that shrink — on the recorded traces' audio and on a large file."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
import pytest
from sqlalchemy import update

from hotline.web.recordings_api import PLAYBACK_INDEX, SEND_THREADS
from journal.models import Recording
from recordings.storage import LocalStorage
from recordings.transfer import ClientStalled, SendfileThreads, _send_blocking
from tests.helpers import bearer, create_user, login, wait_for
from tests.test_recordings import replay
from tests.test_recordings_http import SCENARIOS, needs_traces, recordings_by_number


def test_blocking_send_exact_bytes_short_file_and_stall(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024)
    path = tmp_path / "a.wav"
    path.write_bytes(data)
    left, right = socket.socketpair()
    with left, right, path.open("rb") as source:
        left.setblocking(False)
        received = bytearray()

        def reader(n: int) -> None:
            while len(received) < n:
                received.extend(right.recv(1 << 20))

        async def run() -> int:
            reading = asyncio.to_thread(reader, 1_000_000)
            sent = asyncio.to_thread(_send_blocking, left.fileno(), source.fileno(), 500,
                                     1_000_000, 5000)
            return (await asyncio.gather(sent, reading))[0]

        assert asyncio.run(run()) == 1_000_000
        assert bytes(received) == data[500:1_000_500]
        # Asked past the end (the file shrank after stat): what there is, and the count says so.
        received.clear()

        async def run_short() -> int:
            reading = asyncio.to_thread(reader, 100)
            sent = asyncio.to_thread(_send_blocking, left.fileno(), source.fileno(),
                                     len(data) - 100, 1000, 5000)
            return (await asyncio.gather(sent, reading))[0]

        assert asyncio.run(run_short()) == 100
        # Nobody reads: the socket buffer fills, then the stall timeout cuts the transfer.
        with pytest.raises(ClientStalled):
            _send_blocking(left.fileno(), source.fileno(), 0, len(data), 200)


def test_a_client_that_goes_away_ends_the_transfer(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(os.urandom(8 * 1024 * 1024))
    left, right = socket.socketpair()
    with left, path.open("rb") as source:
        left.setblocking(False)
        right.close()
        with pytest.raises(OSError):  # EPIPE / ECONNRESET, never a hang
            _send_blocking(left.fileno(), source.fileno(), 0, path.stat().st_size, 5000)


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
    async with harness.services.db.sessions.begin() as session:  # linked as it is now
        await session.execute(update(Recording).where(Recording.id == rec.id).values(
            bytes=len(data), file_mtime_ns=big.stat().st_mtime_ns))
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
async def test_a_file_that_shrank_after_it_was_opened_cuts_the_connection(
        tmp_path: Path, make_settings: Any, start_service: Any, replay_peer: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    harness, token = await _admin_harness(tmp_path, make_settings, start_service, replay_peer)
    (number, rec), = (await recordings_by_number(harness)).items()
    real_open = LocalStorage.open_linked

    def open_then_shrink(self: LocalStorage, relative: str, size: int | None,
                         mtime_ns: int | None) -> tuple[BinaryIO, os.stat_result]:
        opened = real_open(self, relative, size, mtime_ns)
        with (self.root / relative).open("r+b") as out:
            out.truncate(opened[1].st_size - 1000)
        return opened

    monkeypatch.setattr(LocalStorage, "open_linked", open_then_shrink)
    url = harness.url(f"/api/v1/requests/{number}/recordings/{rec.id}")
    with pytest.raises(aiohttp.ClientPayloadError):  # never a silently short "complete" body
        async with harness.http.get(url, headers=bearer(token)) as resp:
            await resp.read()


@needs_traces
async def test_a_hand_over_to_an_smo_takes_effect_at_once_for_remembered_recordings(
        tmp_path: Path, make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness, _admin = await _admin_harness(tmp_path, make_settings, start_service, replay_peer)
    await create_user(harness.services, "op101", "operator", extension="101")
    await create_user(harness.services, "smo1", "smo", smo="SMO1")
    operator, smo = await login(harness, "op101"), await login(harness, "smo1")
    (number, rec), = (await recordings_by_number(harness)).items()
    url = harness.url(f"/api/v1/requests/{number}/recordings/{rec.id}")
    index = harness.server.app[PLAYBACK_INDEX]

    async def status(token: str) -> int:
        async with harness.http.get(url, headers=bearer(token) | {"Range": "bytes=0-9"}) as r:
            await r.read()
            return r.status

    assert [await status(operator) for _ in range(5)] == [206] * 5
    assert index.loads == 1  # one database read for the burst of a player's Range requests
    assert await status(smo) == 404
    async with harness.http.post(harness.url(f"/api/v1/requests/{number}/route"),
                                 headers=bearer(operator),
                                 json={"to": "smo", "smo": "SMO1"}) as resp:
        assert resp.status == 200
    await wait_for(lambda: index.loads == 1 and not index._entries)
    assert await status(operator) == 404  # no longer the fund's: refused at once
    assert await status(smo) == 206


@needs_traces
async def test_a_recording_not_yet_linked_is_served_as_soon_as_it_is(
        tmp_path: Path, make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness, admin = await _admin_harness(tmp_path, make_settings, start_service, replay_peer)
    (number, rec), = (await recordings_by_number(harness)).items()
    async with harness.services.db.sessions.begin() as session:
        await session.execute(update(Recording).where(Recording.id == rec.id)
                              .values(status="pending"))
    url = harness.url(f"/api/v1/requests/{number}/recordings/{rec.id}")
    async with harness.http.get(url, headers=bearer(admin)) as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "recording_unavailable"
    async with harness.services.db.sessions.begin() as session:
        await session.execute(update(Recording).where(Recording.id == rec.id)
                              .values(status="linked"))
    async with harness.http.get(url, headers=bearer(admin)) as resp:
        assert resp.status == 200
