"""Recordings: every scenario's hotline recordings are linked to the right request and leg with
the right size, duration and checksum; missing, late, empty and tampered files; retrieval."""

from __future__ import annotations

import asyncio
import hashlib
import wave
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from journal.models import Call, CallLeg, Recording, Request
from tests.conftest import load_meta, scenario_dirs, service_env, trace_items
from tests.helpers import bearer, create_user, login

SCENARIOS = scenario_dirs()
S01 = next((s for s in SCENARIOS if s.name.startswith("s01")), None)


def hotline_recordings(meta: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in meta.get("recordings_produced", [])
            if Path(r["asterisk_path"]).name.startswith("in-")]


def wav_duration(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


async def replay(scenario: Path, make_settings: Any, start_service: Any, replay_peer: Any,
                 recordings_dir: Path, http: bool = True, **overrides: Any) -> Any:
    peer = await replay_peer(trace_items(scenario))
    settings = make_settings(ami_port=peer.port, recordings_dir=recordings_dir,
                             **service_env(load_meta(scenario)), **overrides)
    harness = await start_service(settings, http=http)
    worker = harness.services.recordings
    worker.stable_s = 0.05
    worker.poll_s = 0.05
    await peer.done.wait()
    await harness.wait_calls_done()
    await settled(harness)
    return harness


async def settled(harness: Any, timeout_s: float = 15.0) -> None:
    """Until every AMI message read is committed, every call ended and every recording of
    an ended call checked (the replay peer being done does not mean the service has read it
    all yet)."""
    services = harness.services
    worker = services.recordings
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last = -1
    while loop.time() < deadline:
        messages = services.pipeline.stats.messages
        async with services.db.session() as session:
            open_calls = await session.scalar(
                select(func.count()).select_from(Call).where(Call.ended_at.is_(None)))
            pending = await session.scalar(
                select(func.count()).select_from(Recording)
                .where(Recording.status == "pending"))
        if messages == last and not open_calls and not pending and not worker.busy \
                and services.intake.committed_events == services.pipeline.stats.call_events:
            return
        last = messages
        await asyncio.sleep(0.1)
    raise AssertionError("the service did not settle in time")


async def admin_token(harness: Any) -> str:
    await create_user(harness.services, "admin", "admin")
    return await login(harness, "admin")


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_scenario_recordings_linked(scenario: Path, make_settings: Any,
                                          start_service: Any, replay_peer: Any) -> None:
    meta = load_meta(scenario)
    harness = await replay(scenario, make_settings, start_service, replay_peer,
                           scenario / "recordings")
    token = await admin_token(harness)
    expected = hotline_recordings(meta)
    async with harness.services.db.session() as session:
        rows = list(await session.scalars(select(Recording)))
        assert {r.pbx_path for r in rows if r.request_id} == {e["asterisk_path"]
                                                              for e in expected}
        for item in expected:
            file = scenario / item["copied_to"]
            rec = next(r for r in rows if r.pbx_path == item["asterisk_path"])
            assert rec.bytes == item["bytes"] == file.stat().st_size
            assert rec.sha256 == hashlib.sha256(file.read_bytes()).hexdigest()
            assert rec.duration_s == pytest.approx(wav_duration(file), abs=0.001)
            assert rec.status == ("empty" if item["bytes"] == 44 else "linked")
            # The right request (the one of the call) and the right leg (MixMonitor ran on the
            # caller's channel, whose Uniqueid ends the file name).
            call = await session.get(Call, rec.call_id)
            assert call is not None and call.request_id == rec.request_id
            request = await session.get(Request, rec.request_id)
            assert request is not None and request.linkedid == call.linkedid
            assert not request.recording_missing
            uniqueid = Path(item["asterisk_path"]).stem.rsplit("-", 1)[-1]
            assert rec.leg_uniqueid == uniqueid
            legs = set(await session.scalars(
                select(CallLeg.uniqueid).where(CallLeg.call_id == call.id)))
            assert uniqueid in legs
            number = request.number
            url = harness.url(f"/api/v1/requests/{number}/recordings")
            async with harness.http.get(url, headers=bearer(token)) as resp:
                assert resp.status == 200
                listing = (await resp.json())["items"]
            (entry,) = [e for e in listing if e["id"] == rec.id]
            assert entry["sha256"] == rec.sha256 and entry["bytes"] == rec.bytes
            assert entry["status"] == rec.status
            async with harness.http.get(harness.url(entry["url"]),
                                        headers=bearer(token)) as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"] == "audio/wav"
                assert resp.headers["Accept-Ranges"] == "bytes"
                assert resp.headers["ETag"] == f'"{rec.sha256}"'
                assert int(resp.headers["Content-Length"]) == rec.bytes
                assert await resp.read() == file.read_bytes()
