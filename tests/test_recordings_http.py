"""Serving recordings (DESIGN §5): Range forms, 416, ETag/304, access, ids, audit."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from journal.models import AuditEntry, Recording, Request
from recordings.ranges import ByteRange, Unsatisfiable, parse_range
from tests.conftest import scenario_dirs, trace_items
from tests.helpers import bearer, create_user, login
from tests.test_recordings import replay, settled

SCENARIOS = {s.name[:3]: s for s in scenario_dirs()}
needs_traces = pytest.mark.skipif(not {"s01", "s04", "s05"} <= SCENARIOS.keys(),
                                  reason="recorded traces not available")


async def recordings_by_number(harness: Any) -> dict[int, Recording]:
    async with harness.services.db.session() as session:
        rows = await session.execute(
            select(Request.number, Recording).join(Recording, Recording.request_id == Request.id))
        return {number: rec for number, rec in rows}


@needs_traces
async def test_range_forms_etag_and_audit(make_settings: Any, start_service: Any,
                                          replay_peer: Any) -> None:
    scenario = SCENARIOS["s01"]
    harness = await replay(scenario, make_settings, start_service, replay_peer,
                           scenario / "recordings")
    await create_user(harness.services, "admin", "admin")
    token = await login(harness, "admin")
    (number, rec), = (await recordings_by_number(harness)).items()
    data = (scenario / "recordings" / rec.relative_path).read_bytes()
    size = len(data)
    url = harness.url(f"/api/v1/requests/{number}/recordings/{rec.id}")

    async def get(range_header: str | None, **headers: str) -> tuple[int, Any, bytes]:
        if range_header is not None:
            headers["Range"] = range_header
        async with harness.http.get(url, headers={**bearer(token), **headers}) as resp:
            return resp.status, resp.headers, await resp.read()

    cases = {
        "bytes=0-99": (0, 99),  # first
        "bytes=1000-1999": (1000, 1999),  # middle
        f"bytes={size - 64}-{size - 1}": (size - 64, size - 1),  # last
        f"bytes={size - 10}-{size + 5000}": (size - 10, size - 1),  # clipped at the end
        "bytes=-500": (size - 500, size - 1),  # suffix
        "bytes=100-": (100, size - 1),  # open
    }
    for header, (start, end) in cases.items():
        status, headers, body = await get(header)
        assert status == 206, header
        assert headers["Content-Range"] == f"bytes {start}-{end}/{size}"
        assert int(headers["Content-Length"]) == end - start + 1
        assert body == data[start:end + 1]
        assert headers["ETag"] == f'"{rec.sha256}"' and headers["Accept-Ranges"] == "bytes"
    for header in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0"):
        status, headers, _body = await get(header)
        assert status == 416, header
        assert headers["Content-Range"] == f"bytes */{size}"
    status, _headers, body = await get("bytes=0-1,5-9")  # several ranges: the whole file
    assert status == 200 and body == data
    status, headers, body = await get(None, **{"If-None-Match": f'"{rec.sha256}"'})
    assert status == 304 and body == b"" and headers["ETag"] == f'"{rec.sha256}"'
    status, _headers, body = await get("bytes=0-9", **{"If-Range": '"other"'})
    assert status == 200 and body == data
    status, _headers, body = await get(None, **{"If-None-Match": '"stale"'})
    assert status == 200 and body == data
    async with harness.http.head(url, headers=bearer(token)) as resp:
        assert resp.status == 200 and int(resp.headers["Content-Length"]) == size

    async with harness.services.db.session() as session:
        entries = list(await session.scalars(
            select(AuditEntry).where(AuditEntry.action == "play_recording")
            .order_by(AuditEntry.id)))
    assert len(entries) == len(cases) + 3 + 1 + 3 + 1
    assert all(e.user_login == "admin" and e.request_number == number
               and e.detail["recording_id"] == rec.id for e in entries)
    assert entries[0].detail["range"] == "bytes=0-99" and entries[0].detail["status"] == 206


@needs_traces
async def test_ids_paths_and_other_requests_are_refused(
        tmp_path: Path, make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    folder = tmp_path / "rec"
    for key in ("s01", "s04"):
        shutil.copytree(SCENARIOS[key] / "recordings", folder, dirs_exist_ok=True)
    (tmp_path / "secret.wav").write_bytes(b"RIFF secret")
    peer = await replay_peer(trace_items(SCENARIOS["s01"]) + trace_items(SCENARIOS["s04"]))
    settings = make_settings(ami_port=peer.port, recordings_dir=folder)
    harness = await start_service(settings, http=True)
    worker = harness.services.recordings
    worker.stable_s = 0.05
    await peer.done.wait()
    await harness.wait_calls_done()
    await settled(harness)
    await create_user(harness.services, "admin", "admin")
    token = await login(harness, "admin")
    recs = await recordings_by_number(harness)
    assert set(recs) == {1, 2}

    async def status_of(path: str) -> int:
        async with harness.http.get(harness.url(path), headers=bearer(token)) as resp:
            await resp.read()
            return resp.status

    base = "/api/v1/requests/1/recordings"
    assert await status_of(f"{base}/{recs[1].id}") == 200
    assert await status_of(f"{base}/{recs[2].id}") == 404  # another request's recording
    assert await status_of(f"/api/v1/requests/2/recordings/{recs[1].id}") == 404
    assert await status_of(f"{base}/999999") == 404
    assert await status_of("/api/v1/requests/99/recordings/1") == 404
    assert await status_of(f"{base}/abc") == 400
    assert await status_of(f"{base}/-1") == 400
    for evil in ("..%2F..%2Fsecret.wav", "%2Fetc%2Fpasswd", "..", "1%2F..%2F..%2Fsecret.wav"):
        assert await status_of(f"{base}/{evil}") in (400, 404), evil
    async with harness.http.get(harness.url(f"{base}/{recs[1].id}")) as resp:
        assert resp.status == 401


@needs_traces
async def test_smo_sees_only_its_own_requests_recordings(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    scenario = SCENARIOS["s05"]
    harness = await replay(scenario, make_settings, start_service, replay_peer,
                           scenario / "recordings")
    services = harness.services
    await create_user(services, "smo1", "smo", smo="SMO1")
    await create_user(services, "smo2", "smo", smo="SMO2")
    await create_user(services, "op101", "operator", extension="101")
    (number, rec), = (await recordings_by_number(harness)).items()
    for user, expected in (("smo1", 200), ("smo2", 404), ("op101", 404)):
        token = await login(harness, user)
        for path in (f"/api/v1/requests/{number}/recordings",
                     f"/api/v1/requests/{number}/recordings/{rec.id}"):
            async with harness.http.get(harness.url(path), headers=bearer(token)) as resp:
                assert resp.status == expected, (user, path)
                if expected == 404:
                    body = await resp.json()
                    assert body["error"]["code"] == "not_found"


def test_parse_range_unit() -> None:
    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-0", 100) == ByteRange(0, 0)
    assert parse_range("bytes=-100", 50) == ByteRange(0, 49)
    assert parse_range("bytes=5-3", 100) is None
    assert parse_range("items=0-5", 100) is None
    assert parse_range("bytes=abc", 100) is None
    with pytest.raises(Unsatisfiable):
        parse_range("bytes=100-", 100)
    with pytest.raises(Unsatisfiable):
        parse_range("bytes=-5", 0)
