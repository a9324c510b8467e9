"""Recording files that are missing, late, flat, tampered or past retention."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from journal.models import AuditEntry, Recording, Request
from recordings.locate import UnsafePath, locate, safe_join
from recordings.reconcile import reconcile, verify
from recordings.retention import purge
from recordings.wav import inspect
from tests.conftest import load_meta, scenario_dirs, trace_items
from tests.test_recordings import hotline_recordings, replay, settled

SCENARIOS = {s.name[:3]: s for s in scenario_dirs()}
pytestmark = pytest.mark.skipif("s01" not in SCENARIOS or "s04" not in SCENARIOS,
                                reason="recorded traces not available")


def s01_file() -> tuple[Path, str]:
    scenario = SCENARIOS["s01"]
    item = hotline_recordings(load_meta(scenario))[0]
    return scenario / item["copied_to"], item["relative_to_monitor_dir"]


async def only_recording(harness: Any) -> tuple[Recording, Request]:
    async with harness.services.db.session() as session:
        rec = (await session.scalars(select(Recording))).one()
        req = await session.get(Request, rec.request_id)
    assert req is not None
    return rec, req


async def test_missing_file_flags_the_request_and_a_late_file_is_linked(
        tmp_path: Path, make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    folder = tmp_path / "late"
    folder.mkdir()
    harness = await replay(SCENARIOS["s01"], make_settings, start_service, replay_peer, folder,
                           http=False, recordings_missing_after_s=0.3)
    rec, req = await only_recording(harness)
    assert rec.status == "missing" and req.recording_missing
    source, relative = s01_file()
    (folder / relative).parent.mkdir(parents=True)
    shutil.copyfile(source, folder / relative)
    report = await reconcile(harness.services.recordings)
    assert [(n, s) for n, _id, s in report.linked] == [(req.number, "linked")]
    assert report.calls_without_recording == [] and report.files_without_call == []
    rec, req = await only_recording(harness)
    assert rec.status == "linked" and rec.bytes == source.stat().st_size
    assert not req.recording_missing


async def test_a_file_away_from_its_exact_path_is_not_linked_until_it_is_there(
        tmp_path: Path, make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await replay(SCENARIOS["s01"], make_settings, start_service, replay_peer,
                           tmp_path, http=False, recordings_missing_after_s=0.3)
    worker = harness.services.recordings
    report = await reconcile(worker)
    assert len(report.missing) == 1 and len(report.calls_without_recording) == 1
    source, relative = s01_file()
    shutil.copyfile(source, tmp_path / Path(relative).name)  # flat: not where Asterisk wrote it
    (tmp_path / "stray.wav").write_bytes(source.read_bytes()[:44])
    assert (await worker.rescan())["linked"] == 0  # never found by its name elsewhere
    assert (await only_recording(harness))[0].status == "missing"
    (tmp_path / relative).parent.mkdir(parents=True)
    shutil.copyfile(source, tmp_path / relative)
    assert (await worker.rescan())["linked"] == 1
    rec, req = await only_recording(harness)
    assert rec.status == "linked" and not req.recording_missing
    report = await reconcile(worker)
    assert report.calls_without_recording == [] and report.files_without_call == ["stray.wav"]


async def test_verify_reports_a_tampered_file(tmp_path: Path, make_settings: Any,
                                              start_service: Any, replay_peer: Any) -> None:
    folder = tmp_path / "rec"
    shutil.copytree(SCENARIOS["s01"] / "recordings", folder)
    harness = await replay(SCENARIOS["s01"], make_settings, start_service, replay_peer, folder,
                           http=False)
    worker = harness.services.recordings
    rec, _req = await only_recording(harness)
    assert rec.status == "linked"
    assert (await verify(worker)).tampered == []
    path = folder / rec.relative_path
    data = bytearray(path.read_bytes())
    original = bytes(data)
    data[5000] ^= 0xFF
    path.write_bytes(bytes(data))
    report = await verify(worker)
    assert [(r_id, p) for _n, r_id, p in report.tampered] == [(rec.id, rec.relative_path)]
    tampered, _req = await only_recording(harness)
    assert tampered.status == "tampered" and tampered.sha256 == rec.sha256
    path.write_bytes(original)
    assert len((await verify(worker)).restored) == 1
    assert (await only_recording(harness))[0].status == "linked"


async def test_truncated_file_is_flagged(tmp_path: Path, make_settings: Any,
                                         start_service: Any, replay_peer: Any) -> None:
    source, relative = s01_file()
    (tmp_path / relative).parent.mkdir(parents=True)
    (tmp_path / relative).write_bytes(source.read_bytes()[:30000])  # copy cut short
    harness = await replay(SCENARIOS["s01"], make_settings, start_service, replay_peer,
                           tmp_path, http=False)
    rec, _req = await only_recording(harness)
    assert rec.status == "truncated" and rec.bytes == 30000
    assert rec.duration_s == pytest.approx((30000 - 44) / 16000, abs=0.001)


async def test_purge_deletes_only_closed_requests_recordings(
        tmp_path: Path, make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    folder = tmp_path / "rec"
    shutil.copytree(SCENARIOS["s01"] / "recordings", folder)
    shutil.copytree(SCENARIOS["s04"] / "recordings", folder, dirs_exist_ok=True)
    peer = await replay_peer(trace_items(SCENARIOS["s01"]) + trace_items(SCENARIOS["s04"]))
    settings = make_settings(ami_port=peer.port, recordings_dir=folder)
    harness = await start_service(settings)
    worker = harness.services.recordings
    worker.stable_s = 0.05
    await peer.done.wait()
    await harness.wait_calls_done()
    await settled(harness)
    db = harness.services.db
    async with db.sessions.begin() as session:
        first = await session.scalar(select(Request).where(Request.number == 1))
        assert first is not None
        await session.execute(update(Request).where(Request.number == 1)
                              .values(status="closed", closed_at=datetime.now(UTC)))
    async with db.session() as session:
        recs = {r.request_id: r for r in await session.scalars(select(Recording))}
    closed_rec = recs[first.id]
    open_rec = next(r for rid, r in recs.items() if rid != first.id)
    assert (await purge(worker, 1825)).purged == []  # not old enough yet
    later = datetime.now(UTC) + timedelta(days=1826)
    report = await purge(worker, 1825, now=later)
    assert [(n, rid) for n, rid, _p in report.purged] == [(1, closed_rec.id)]
    assert not (folder / closed_rec.relative_path).exists()
    assert (folder / open_rec.relative_path).exists()
    async with db.session() as session:
        purged = await session.get(Recording, closed_rec.id)
        assert purged is not None and purged.status == "purged" and purged.purged_at
        assert purged.sha256 == closed_rec.sha256
        entries = list(await session.scalars(
            select(AuditEntry).where(AuditEntry.action == "purge_recording")))
    assert [(e.request_number, e.detail["recording_id"]) for e in entries] == \
        [(1, closed_rec.id)]
    assert (await purge(worker, 1825, now=later)).purged == []


def test_locate_finds_only_the_exact_path_and_never_escapes(tmp_path: Path) -> None:
    root = tmp_path / "monitor"
    name = "in-88007070561-84957776655-20261125-041847-1795580327.0.wav"
    (root / "2026/11/25/sub").mkdir(parents=True)
    (root / "2026/11/25/sub" / name).write_bytes(b"x")
    assert locate(root, f"2026/11/25/sub/{name}") == root / "2026/11/25/sub" / name
    # Not at the exact path: not there (no search below the date folder, nor by bare name).
    assert locate(root, f"2026/11/25/{name}") is None
    assert locate(root, name) is None
    assert locate(root, "2026/11/25/sub/in-*.wav") is None
    (tmp_path / "secret.wav").write_bytes(b"s")
    for bad in ("../secret.wav", "/etc/passwd", "2026/../../secret.wav", "a\x00b", "a//b",
                "./a", "a\\b"):
        assert locate(root, bad) is None
        with pytest.raises(UnsafePath):
            safe_join(root, bad)
    (root / "link.wav").symlink_to(tmp_path / "secret.wav")
    assert locate(root, "link.wav") is None
    (root / "inner.wav").symlink_to(root / "2026/11/25/sub" / name)  # inside, still a link
    assert locate(root, "inner.wav") is None
    (root / "2026/11/alias").symlink_to(root / "2026/11/25")
    assert locate(root, f"2026/11/alias/sub/{name}") is None


def test_wav_header_checks(tmp_path: Path) -> None:
    s02 = SCENARIOS.get("s02")
    if s02 is not None:
        item = hotline_recordings(load_meta(s02))[0]
        info = inspect(s02 / item["copied_to"])
        assert info.empty and info.status == "empty" and info.duration_s == 0
    source, _relative = s01_file()
    info = inspect(source)
    assert info.status == "linked" and info.sample_rate == 8000
    garbage = tmp_path / "g.wav"
    garbage.write_bytes(b"not a wav file at all")
    assert inspect(garbage).status == "truncated"
    unfinished = tmp_path / "u.wav"  # header never finalized: sizes still 0
    data = bytearray(source.read_bytes())
    data[40:44] = b"\x00\x00\x00\x00"
    unfinished.write_bytes(bytes(data))
    assert inspect(unfinished).status == "truncated"
    assert inspect(unfinished).duration_s == pytest.approx((len(data) - 44) / 16000, abs=0.001)
