"""After-the-fact checks: link late files, report the gaps, re-hash for tampering.

``reconcile`` links files that appeared after their call (and marks still-absent ones
``missing``), then reports hotline calls without a recording and files without a call.
``verify`` re-hashes linked files and flags those whose content changed (``tampered``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from zoneinfo import ZoneInfo

from sqlalchemy import select

from journal.db import Database
from journal.models import Call, Recording, Request
from recordings.check import SERVABLE, examine_stored, mark_missing, sha256_stored
from recordings.storage import RecordingStorage
from recordings.worker import RecordingsWorker

Progress = Callable[[int, int], None]


@dataclass(slots=True)
class ReconcileReport:
    linked: list[tuple[int | None, int, str]] = field(default_factory=list)  # number, id, status
    missing: list[tuple[int | None, int, str]] = field(default_factory=list)  # number, id, path
    calls_without_recording: list[tuple[int | None, str, datetime]] = field(default_factory=list)
    files_without_call: list[str] = field(default_factory=list)


@dataclass(slots=True)
class VerifyReport:
    checked: int = 0
    tampered: list[tuple[int | None, int, str]] = field(default_factory=list)
    gone: list[tuple[int | None, int, str]] = field(default_factory=list)
    restored: list[tuple[int | None, int, str]] = field(default_factory=list)


def _noop(_done: int, _total: int) -> None:
    return None


async def reconcile(worker: RecordingsWorker, *, since: datetime | None = None,
                    progress: Progress = _noop) -> ReconcileReport:
    """Link what can be linked now and report completeness (calls started since ``since``)."""
    db = worker.db
    report = ReconcileReport()
    async with db.session() as session:
        query = (select(Recording.id, Recording.relative_path, Request.number)
                 .join(Call, Call.id == Recording.call_id)
                 .outerjoin(Request, Request.id == Recording.request_id)
                 .where(Recording.pbx_id == worker.pbx_id,
                        Recording.status.in_(("pending", "missing")),
                        Call.ended_at.is_not(None)))
        if since is not None:
            query = query.where(Recording.started_at >= since)
        rows = (await session.execute(query)).all()
    for done, (recording_id, relative, number) in enumerate(rows, 1):
        status = await worker.link(recording_id)
        if status is not None:
            report.linked.append((number, recording_id, status))
        else:
            await _set_missing(db, recording_id)
            report.missing.append((number, recording_id, relative))
        progress(done, len(rows))
    report.calls_without_recording = await _calls_without_recording(db, worker.pbx_id, since)
    report.files_without_call = await _orphans(worker.storage, await _known_names(db), since)
    return report


async def _set_missing(db: Database, recording_id: int) -> None:
    async with db.sessions.begin() as session:
        recording = await session.get(Recording, recording_id)
        if recording is not None and recording.status != "missing":
            await mark_missing(session, recording)


async def _calls_without_recording(db: Database, pbx_id: str,
                                   since: datetime | None) -> list[tuple[int | None, str,
                                                                         datetime]]:
    """Ended inbound calls of requests with no usable recording (none, or only missing)."""
    usable = (select(Recording.id)
              .where(Recording.call_id == Call.id,
                     Recording.status.not_in(("missing", "pending")))
              .exists())
    query = (select(Request.number, Call.linkedid, Call.started_at)
             .join(Request, Request.id == Call.request_id)
             .where(Call.pbx_id == pbx_id, Call.direction == "inbound",
                    Call.ended_at.is_not(None), ~usable)
             .order_by(Call.started_at))
    if since is not None:
        query = query.where(Call.started_at >= since)
    async with db.session() as session:
        return [tuple(row) for row in (await session.execute(query)).all()]  # type: ignore[misc]


async def _known_names(db: Database) -> set[str]:
    async with db.session() as session:
        paths = await session.scalars(select(Recording.relative_path))
        return {PurePosixPath(p).name for p in paths}


async def _orphans(storage: RecordingStorage, known: set[str],
                   since: datetime | None) -> list[str]:
    """Stored WAV files that no recording row names (modified since ``since``).

    Only the few unknown names are stat'ed (a dangling link, or a file older than ``since``,
    is left out)."""
    limit = since.timestamp() if since is not None else None
    found = []
    async for relative in storage.list_keys():
        name = PurePosixPath(relative).name
        if not name.endswith(".wav") or name in known:
            continue
        stored = await storage.stat(relative)
        if stored is None or (limit is not None and stored.mtime_ns / 1e9 < limit):
            continue
        found.append(relative)
    return sorted(found)


async def verify(worker: RecordingsWorker, *, progress: Progress = _noop) -> VerifyReport:
    """Re-hash every checked recording against the checksum taken when it was linked."""
    db = worker.db
    report = VerifyReport()
    async with db.session() as session:
        rows = (await session.execute(
            select(Recording, Request.number)
            .outerjoin(Request, Request.id == Recording.request_id)
            .where(Recording.pbx_id == worker.pbx_id, Recording.status.in_(SERVABLE),
                   Recording.sha256.is_not(None), Recording.purged_at.is_(None))
            .order_by(Recording.id))).all()
    for done, (recording, number) in enumerate(rows, 1):
        progress(done, len(rows))
        report.checked += 1
        stored = await worker.storage.stat(recording.relative_path)
        if stored is None:
            await _set_missing(db, recording.id)
            report.gone.append((number, recording.id, recording.relative_path))
            continue
        digest = await sha256_stored(worker.storage, stored)
        if digest != recording.sha256:
            if recording.status != "tampered":
                await _set_status(db, recording.id, "tampered")
            report.tampered.append((number, recording.id, recording.relative_path))
        elif recording.status == "tampered":
            facts = await examine_stored(worker.storage, stored)
            # The original bytes are back: they are what playback may serve again.
            await _set_status(db, recording.id, facts.status, file_mtime_ns=facts.mtime_ns)
            report.restored.append((number, recording.id, recording.relative_path))
    return report


async def _set_status(db: Database, recording_id: int, status: str,
                      file_mtime_ns: int | None = None) -> None:
    async with db.sessions.begin() as session:
        recording = await session.get(Recording, recording_id)
        if recording is not None:
            recording.status = status
            if file_mtime_ns is not None:
                recording.file_mtime_ns = file_mtime_ns


def recording_finder(storage: RecordingStorage, pbx_dir: str,
                     timezone: str = "UTC") -> Callable[[str, datetime], Awaitable[str | None]]:
    """For CEL backfill: the file of a call the journal never saw, as Asterisk named it.

    CEL carries no file name (Asterisk 12+ writes no application events to it), so the file is
    found the way ``reconcile`` finds files without a call: among the stored WAV files, in the
    date folders (``Y/m/d``, the PBX's local date) around the call's start, the one whose name
    ends with ``-<Linkedid>.wav`` (the dialplan's ``…-${UNIQUEID}`` of the trunk leg)."""
    zone = ZoneInfo(timezone)
    base = pbx_dir.rstrip("/")

    async def find(linkedid: str, started_at: datetime) -> str | None:
        suffix = f"-{linkedid}.wav"
        local = started_at.astimezone(zone)
        for day in (local, local - timedelta(days=1), local + timedelta(days=1)):
            prefix = day.strftime("%Y/%m/%d/")
            async for relative in storage.list_keys(prefix):
                if PurePosixPath(relative).name.endswith(suffix):
                    return f"{base}/{relative}"
        return None

    return find
