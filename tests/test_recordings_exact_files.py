"""Issue 10, items 5 and 6: a recording is linked only to the file at its exact path (glob
characters are literal, nothing is searched for), and playback serves only the file that was
linked (no symlink followed, a replaced file refused, the ETag never kept for other bytes)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from hotline.web.recordings_api import PLAYBACK_INDEX
from journal.models import Recording
from recordings.locate import recording_key
from recordings.reconcile import reconcile
from tests.conftest import load_meta
from tests.helpers import bearer, create_user, login
from tests.test_recordings import hotline_recordings, replay
from tests.test_recordings_http import SCENARIOS, needs_traces, recordings_by_number


def _scenario_file(code: str) -> tuple[Path, str]:
    scenario = SCENARIOS[code]
    item = hotline_recordings(load_meta(scenario))[0]
    return scenario / item["copied_to"], item["relative_to_monitor_dir"]


def test_recording_key_is_the_exact_part_below_the_pbx_folder() -> None:
    base = "/var/spool/asterisk/monitor"
    assert recording_key(f"{base}/2026/11/25/in-1.wav", base) == "2026/11/25/in-1.wav"
    assert recording_key(f"{base}/2026/11/25/in-*.wav", base + "/") == "2026/11/25/in-*.wav"
    for outside in ("/tmp/in-1.wav", f"{base}x/in-1.wav", f"{base}/../in-1.wav",
                    f"{base}/2026/./in-1.wav", f"{base}//in-1.wav", f"{base}/a\x00.wav",
                    f"{base}/a\\b.wav", base, f"{base}/"):
        assert recording_key(outside, base) is None, outside


async def _rename_recording(harness: Any, rec: Recording, relative: str,
                            pbx_path: str | None = None) -> None:
    pbx_dir = harness.services.settings.recordings_pbx_dir.rstrip("/")
    async with harness.services.db.sessions.begin() as session:
        await session.execute(update(Recording).where(Recording.id == rec.id).values(
            relative_path=relative, pbx_path=pbx_path or f"{pbx_dir}/{relative}",
            status="missing"))


@needs_traces
async def test_glob_characters_in_a_recording_name_never_link_another_file(
        tmp_path: Path, make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    folder = tmp_path / "rec"
    folder.mkdir()
    harness = await replay(SCENARIOS["s01"], make_settings, start_service, replay_peer, folder,
                           recordings_missing_after_s=0.3)
    await create_user(harness.services, "op101", "operator", extension="101")
    operator = await login(harness, "op101")
    worker = harness.services.recordings
    (number, rec), = (await recordings_by_number(harness)).items()
    # Another request's recording (an SMO's, s05) sits in the same day folder.
    smo_file, smo_relative = _scenario_file("s05")
    (folder / smo_relative).parent.mkdir(parents=True)
    shutil.copyfile(smo_file, folder / smo_relative)
    day = smo_relative.rsplit("/", 1)[0]
    url = harness.url(f"/api/v1/requests/{number}/recordings/{rec.id}")
    pbx_dir = harness.services.settings.recordings_pbx_dir.rstrip("/")
    for name in (f"{day}/in-*.wav", f"{day}/in-88007070561-?79161234567-*", f"{day}/[i]n-*",
                 f"{day}/**/*.wav", "*.wav", "in-*.wav"):
        await _rename_recording(harness, rec, name)
        report = await reconcile(worker)
        assert [r_id for _n, r_id, _p in report.missing] == [rec.id], name
        harness.server.app[PLAYBACK_INDEX].clear()
        async with harness.http.get(url, headers=bearer(operator)) as resp:
            assert resp.status == 404, name
            assert (await resp.json())["error"]["code"] == "recording_unavailable"
    # Names that leave the PBX folder, or whose stored path is not exactly MIXMONITOR_FILENAME
    # below it, name no file, even when a file is where the stored path points.
    for relative, pbx_path in ((smo_relative, f"/tmp/{smo_relative}"),
                               (smo_relative, f"{pbx_dir}/{day}/../{smo_relative}"),
                               (smo_relative.rsplit("/", 1)[1], f"/elsewhere/{smo_relative}"),
                               (f"{day}/x\x00.wav", f"{pbx_dir}/{day}/x\x00.wav")):
        if "\x00" in relative and harness.services.db.engine.dialect.name == "postgresql":
            continue  # PostgreSQL text cannot hold NUL at all
        await _rename_recording(harness, rec, relative, pbx_path)
        assert [r for _n, r, _p in (await reconcile(worker)).missing] == [rec.id], pbx_path
    # A name with glob characters is an ordinary name: the file of exactly that name is linked.
    own_file, _own_relative = _scenario_file("s01")
    literal = f"{day}/in-[1]-*?.wav"
    shutil.copyfile(own_file, folder / literal)
    await _rename_recording(harness, rec, literal)
    report = await reconcile(worker)
    assert [(r_id, status) for _n, r_id, status in report.linked] == [(rec.id, "linked")]
    async with harness.http.get(url, headers=bearer(operator)) as resp:
        assert resp.status == 200 and await resp.read() == own_file.read_bytes()


@needs_traces
async def test_a_symlink_at_the_exact_path_is_never_linked(
        tmp_path: Path, make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    folder = tmp_path / "rec"
    folder.mkdir()
    harness = await replay(SCENARIOS["s01"], make_settings, start_service, replay_peer, folder,
                           http=False, recordings_missing_after_s=0.3)
    worker = harness.services.recordings
    (_number, rec), = (await recordings_by_number(harness)).items()
    smo_file, smo_relative = _scenario_file("s05")
    (folder / smo_relative).parent.mkdir(parents=True)
    shutil.copyfile(smo_file, folder / smo_relative)
    (folder / rec.relative_path).symlink_to(folder / smo_relative)
    assert [r for _n, r, _p in (await reconcile(worker)).missing] == [rec.id]


async def _linked_harness(tmp_path: Path, make_settings: Any, start_service: Any,
                          replay_peer: Any) -> tuple[Any, str, str, Recording, Path]:
    folder = tmp_path / "rec"
    shutil.copytree(SCENARIOS["s01"] / "recordings", folder)
    harness = await replay(SCENARIOS["s01"], make_settings, start_service, replay_peer, folder)
    await create_user(harness.services, "admin", "admin")
    token = await login(harness, "admin")
    (number, rec), = (await recordings_by_number(harness)).items()
    assert rec.status == "linked" and rec.file_mtime_ns is not None
    url = harness.url(f"/api/v1/requests/{number}/recordings/{rec.id}")
    return harness, token, url, rec, folder / rec.relative_path


async def _get(harness: Any, url: str, token: str, **headers: str) -> tuple[int, Any, bytes]:
    async with harness.http.get(url, headers=bearer(token) | headers) as resp:
        return resp.status, resp.headers, await resp.read()


@needs_traces
async def test_a_file_swapped_after_linking_is_refused(
        tmp_path: Path, make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness, token, url, rec, path = await _linked_harness(tmp_path, make_settings,
                                                           start_service, replay_peer)
    original = path.read_bytes()
    status, headers, body = await _get(harness, url, token, Range="bytes=0-9")
    assert status == 206 and headers["ETag"] == f'"{rec.sha256}"'
    stat = path.stat()
    other, _relative = _scenario_file("s05")
    copy = tmp_path / "copy.wav"
    copy.write_bytes(original)
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    def as_link(target: Path) -> None:
        path.unlink()
        path.symlink_to(target)

    def replaced(data: bytes, mtime_ns: int | None = None) -> None:
        path.unlink()
        path.write_bytes(data)
        if mtime_ns is not None:
            os.utime(path, ns=(mtime_ns, mtime_ns))

    swaps = {
        "symlink to another recording": lambda: as_link(other),
        "symlink to an identical copy": lambda: as_link(copy),
        "another file": lambda: replaced(other.read_bytes()),
        "same size, other time": lambda: replaced(original[:-1] + b"\x01"),
        "same bytes, other time": lambda: replaced(original),
        "longer, same time": lambda: replaced(original + b"x" * 10, stat.st_mtime_ns),
        "a folder instead": lambda: (path.unlink(), path.mkdir()),
    }
    for what, swap in swaps.items():
        swap()
        for extra in ({}, {"Range": "bytes=0-9"}, {"If-None-Match": f'"{rec.sha256}"'}):
            status, _headers, body = await _get(harness, url, token, **extra)
            assert status == 409, (what, extra)
            assert b'"recording_changed"' in body
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
            path.touch()
        replaced(original, stat.st_mtime_ns)
        assert (await _get(harness, url, token))[:3:2] == (200, original), what
    # A folder on the way swapped for a symlink (to an identical tree) is refused too.
    day = path.parent
    shutil.copytree(day, tmp_path / "day-copy", copy_function=shutil.copy2)
    shutil.rmtree(day)
    day.symlink_to(tmp_path / "day-copy")
    assert (await _get(harness, url, token))[0] == 409


@needs_traces
async def test_the_etag_changes_when_the_file_does(
        tmp_path: Path, make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness, token, url, rec, path = await _linked_harness(tmp_path, make_settings,
                                                           start_service, replay_peer)
    # A row linked before file times were kept: the time joins the tag.
    async with harness.services.db.sessions.begin() as session:
        await session.execute(update(Recording).where(Recording.id == rec.id)
                              .values(file_mtime_ns=None))
    harness.server.app[PLAYBACK_INDEX].clear()
    status, headers, _body = await _get(harness, url, token)
    first = headers["ETag"]
    assert status == 200 and first.startswith(f'"{rec.sha256}-')
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.unlink()
    path.write_bytes(bytes(data))  # same size, new time
    os.utime(path, ns=(path.stat().st_mtime_ns + 10**9,) * 2)
    status, headers, body = await _get(harness, url, token, **{"If-None-Match": first})
    assert status == 200 and headers["ETag"] != first and body == bytes(data)


@pytest.mark.parametrize("header", ["bytes=" + "9" * 5000 + "-", "bytes=-" + "9" * 5000,
                                    "bytes=0-" + "9" * 5000, "bytes=٣-", "bytes=0-٣"])
@needs_traces
async def test_huge_or_non_ascii_range_numbers_get_a_4xx_or_the_file(
        header: str, tmp_path: Path, make_settings: Any, start_service: Any,
        replay_peer: Any) -> None:
    harness, token, url, _rec, path = await _linked_harness(tmp_path, make_settings,
                                                            start_service, replay_peer)
    status, _headers, body = await _get(harness, url, token, Range=header)
    size = path.stat().st_size
    if header.startswith("bytes=9"):
        assert status == 416 and b'"range_not_satisfiable"' in body
    elif header.startswith(("bytes=-9", "bytes=0-9")):  # more than the file: all of it
        assert status == 206 and len(body) == size
    else:  # not a byte range: ignored, the whole file
        assert status == 200 and len(body) == size
