"""The daily completeness proof: inbound 8-800 calls according to CEL vs requests vs recordings.

Every inbound 8-800 call CEL shows for a day (the PBX's local day) must have a request; every
answered one a linked recording (an abandoned call may end before MixMonitor starts). A request
of that day whose call CEL does not know is listed too (CEL lost rows, or another PBX's id), but
only what is missing makes the proof fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from journal.backfill import rebuild
from journal.celsource import CelSource
from journal.db import Database
from journal.models import Call, Recording, Request
from telephony.routing import Routing

# A call may start before midnight and end after: read CEL this much around the day.
MARGIN = timedelta(hours=6)
# Recording statuses that mean the file was found and checked.
NOT_LINKED = ("missing", "pending")
CHUNK = 400


@dataclass(frozen=True, slots=True)
class Mismatch:
    kind: str  # "no_request" | "no_recording" | "not_in_cel"
    linkedid: str
    started_at: datetime
    caller: str
    request_number: int | None = None


@dataclass(slots=True)
class CompletenessReport:
    day: date
    cel_calls: int = 0
    requests: int = 0
    recordings_linked: int = 0
    answered: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return sum(1 for m in self.mismatches if m.kind != "not_in_cel")

    @property
    def complete(self) -> bool:
        return self.missing == 0


async def check_day(source: CelSource, db: Database, routing: Routing, *, pbx_id: str,
                    day: date, timezone: str = "UTC") -> CompletenessReport:
    zone = ZoneInfo(timezone)
    start = datetime.combine(day, time(), zone)
    end = datetime.combine(day + timedelta(days=1), time(), zone)
    linkedids, _newest = await source.linkedids_between(start - MARGIN, end + MARGIN)
    rows = await source.rows_of(linkedids) if linkedids else []
    calls = [c for c in rebuild(rows, routing) if start <= c.started_at < end]
    report = CompletenessReport(day, cel_calls=len(calls),
                                answered=sum(1 for c in calls if c.answered))
    linked = select(Recording.id).where(Recording.request_id == Request.id,
                                        Recording.status.not_in(NOT_LINKED)).exists()
    stored: dict[str, tuple[int | None, bool]] = {}
    wanted = [c.linkedid for c in calls]
    async with db.session() as session:
        for first in range(0, len(wanted), CHUNK):
            found = await session.execute(
                select(Call.linkedid, Request.number, linked)
                .join(Request, Request.id == Call.request_id)
                .where(Call.pbx_id == pbx_id, Call.linkedid.in_(wanted[first:first + CHUNK])))
            for lid, num, has in found:
                stored[lid] = (num, bool(has))
        day_requests = (await session.execute(
            select(Call.linkedid, Request.number, Call.started_at, Call.caller_number)
            .join(Request, Request.id == Call.request_id)
            .where(Call.pbx_id == pbx_id, Call.direction == "inbound",
                   Call.started_at >= start, Call.started_at < end))).all()
    in_cel = set()
    for call in calls:
        in_cel.add(call.linkedid)
        entry = stored.get(call.linkedid)
        if entry is None:
            report.mismatches.append(Mismatch("no_request", call.linkedid, call.started_at,
                                              call.caller))
            continue
        number, has_recording = entry
        report.requests += 1
        if has_recording:
            report.recordings_linked += 1
        elif call.answered and call.ended:  # a call in progress may still be recording
            report.mismatches.append(Mismatch("no_recording", call.linkedid, call.started_at,
                                              call.caller, number))
    for linkedid, number, started_at, caller in day_requests:
        if linkedid not in in_cel:
            report.mismatches.append(Mismatch("not_in_cel", linkedid, started_at,
                                              caller, number))
    report.mismatches.sort(key=lambda m: (m.started_at, m.linkedid))
    return report


def report_json(report: CompletenessReport) -> dict[str, Any]:
    return {
        "date": report.day.isoformat(), "cel_calls": report.cel_calls,
        "requests": report.requests, "answered": report.answered,
        "recordings_linked": report.recordings_linked, "missing": report.missing,
        "complete": report.complete,
        "mismatches": [{"kind": m.kind, "linkedid": m.linkedid,
                        "started_at": m.started_at.isoformat(), "caller": m.caller,
                        "request_number": m.request_number} for m in report.mismatches],
    }
