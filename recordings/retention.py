"""Retention: recordings of closed requests older than RECORDINGS_KEEP_DAYS are deleted.

Only closed requests qualify — a recording of an open request is never purged. The row stays
(status ``purged``, ``purged_at``; checksum and path kept as evidence of what existed) and each
deletion is written to the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from journal.audit import audit
from journal.models import Recording, Request
from recordings.worker import RecordingsWorker


@dataclass(slots=True)
class PurgeReport:
    purged: list[tuple[int, int, str]] = field(default_factory=list)  # number, id, path
    already_absent: int = 0


async def purge(worker: RecordingsWorker, keep_days: int, *, now: datetime | None = None,
                dry_run: bool = False) -> PurgeReport:
    """Delete files of closed requests' recordings started more than ``keep_days`` ago."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=keep_days)
    report = PurgeReport()
    async with worker.db.session() as session:
        rows = (await session.execute(
            select(Recording.id, Recording.relative_path, Request.number)
            .join(Request, Request.id == Recording.request_id)
            .where(Request.closed_at.is_not(None), Recording.purged_at.is_(None),
                   Recording.started_at < cutoff, Recording.pbx_id == worker.pbx_id)
            .order_by(Recording.id))).all()
    for recording_id, relative, number in rows:
        report.purged.append((number, recording_id, relative))
        if dry_run:
            continue
        stored = await worker.storage.stat(relative)
        if stored is None:
            report.already_absent += 1
        # Audit and mark first, then delete: no file ever goes without its audit record.
        async with worker.db.sessions.begin() as session:
            recording = await session.get(Recording, recording_id)
            assert recording is not None
            recording.status = "purged"
            recording.purged_at = datetime.now(UTC)
            audit(session, None, "purge_recording", number, None, recording_id=recording_id,
                  path=relative, sha256=recording.sha256, keep_days=keep_days,
                  file_present=stored is not None)
        if stored is not None:
            await worker.storage.delete(stored)
    return report
