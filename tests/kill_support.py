"""The multi-call trace of the kill tests (issue 14) and the check of the journal after a kill.

Several recorded calls are interleaved into one stream, each copy with fresh Uniqueids,
Linkedids, bridge ids and channel names, as a PBX with several calls up would send them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from bench.load import interleave, templates
from hotline.service import Services
from journal.models import Call, Request
from telephony.callevents import CallAnswered
from telephony.events import parse_event
from telephony.framing import headers_of
from telephony.replay import ChannelTable
from telephony.routing import Routing
from telephony.trace import TraceItem, refresh_ids
from telephony.tracker import CallTracker
from tests.conftest import TRACES_ROOT, load_meta

# Four recordings, three calls at a time: an answer in a queue, an abandon, a ring group of
# Local channels, and an internal call plus a call to another DID (no request). Sized for CI
# (each boundary is two service starts); HOTLINE_KILL_MIX=s04,s05,s13 (any prefixes) kills
# through other recorded calls, by hand.
KILL_MIX = tuple(os.environ.get("HOTLINE_KILL_MIX", "s01,s02,s21,s10").split(","))
IN_FLIGHT = 3
DID = "88007070561"
# The peer's answer to a login, before the trace's own events.
LOGIN_EVENTS = frozenset({"FullyBooted", "CoreShowChannel", "CoreShowChannelsComplete"})
_CHANNEL_SEQ = re.compile(r"-([0-9a-f]{8})(?=;[12]$|$)")


@dataclass(frozen=True)
class Truth:
    """One inbound 8-800 call of the trace and what the journal must say about it."""

    linkedid: str
    caller: str
    outcome: str
    operator: str | None
    external: str | None
    first: int  # index (1-based) of its first event in the stream
    last: int  # index of its last event


def _shift_channels(items: list[TraceItem], copy: int) -> list[TraceItem]:
    """Channel names made unique per copy (``PJSIP/101-00000001`` → ``PJSIP/101-00050001``), as
    a PBX with many calls up numbers its channels; Local pairs keep their ``;1``/``;2``."""

    def fix(key: str, value: str) -> str:
        if not key.endswith("Channel") or "/" not in value:
            return value
        return _CHANNEL_SEQ.sub(lambda m: f"-{int(m.group(1), 16) + copy * 0x10000:08x}", value)

    return [TraceItem(i.t, pairs=tuple((k, fix(k, v)) for k, v in i.pairs)) for i in items]


def kill_trace() -> tuple[list[TraceItem], list[Truth]]:
    """The interleaved calls of KILL_MIX and the ground truth of their hotline calls."""
    found = {t.name[:3]: t for t in templates(TRACES_ROOT)}
    copies: list[list[TraceItem]] = []
    truths: list[tuple[int, dict[str, Any]]] = []
    for copy, prefix in enumerate(KILL_MIX, start=1):
        template = found[prefix]
        items = _shift_channels(list(refresh_ids(template.items, 40 + copy)), copy)
        copies.append(items)
        meta = load_meta(TRACES_ROOT / template.name)
        for call in meta["calls"]:
            if call.get("is_hotline"):
                truths.append((copy - 1, call))
    stream = visible(list(interleave(copies, IN_FLIGHT)))
    position = {id(item): index for index, item in enumerate(stream, start=1)}
    result = []
    for copy_index, call in truths:
        items = [item for item in copies[copy_index] if id(item) in position]
        origin = next(i for i in items if i.header("Event") == "Newchannel"
                      and i.header("Exten") == DID
                      and i.header("Uniqueid") == i.header("Linkedid"))
        linkedid = origin.header("Linkedid")
        assert linkedid is not None
        answered = call["answered_by"]
        result.append(Truth(linkedid, call["caller"], call["outcome"],
                            answered[0] if answered else None,
                            call.get("answered_by_external"),
                            position[id(items[0])], position[id(items[-1])]))
    return stream, result


def _read(item: TraceItem | list[tuple[str, str]]) -> Any:
    """What the service makes of a message (None: ignored on arrival)."""
    pairs = list(item.pairs) if isinstance(item, TraceItem) else item
    return parse_event(headers_of(pairs))


def visible(stream: list[TraceItem]) -> list[TraceItem]:
    """The stream without the messages the service cannot see: ignored on arrival (a VarSet
    of another variable, CEL, Cdr, RTCP…) and changing no field it reads of a CoreShowChannels
    answer. Killing between two such messages is the same to the service as killing before
    them, so every boundary of what is left is every distinct boundary of the whole trace."""
    table = ChannelTable()
    kept = []
    listing = repr([])
    for item in stream:
        table.apply(item.pairs)
        now = repr([_read(row) for row in table.listing("")])
        if _read(item) is not None or now != listing:
            kept.append(item)
        listing = now
    return kept


KILL_ITEMS, KILL_TRUTHS = kill_trace() if TRACES_ROOT.is_dir() else ([], [])


async def journal_of(services: Services) -> list[dict[str, Any]]:
    async with services.db.session() as session:
        rows = await session.execute(
            select(Request.number, Request.linkedid, Call.outcome, Call.operator,
                   Call.answered_by_external, Call.ended_at)
            .outerjoin(Call, Call.request_id == Request.id).order_by(Request.number))
        return [dict(number=n, linkedid=lid, outcome=o, operator=op, external=ext, ended_at=e)
                for n, lid, o, op, ext, e in rows]


def check_journal(rows: list[dict[str, Any]], k: int, lost_from: int) -> list[str]:
    problems = []
    numbers = [r["number"] for r in rows]
    if numbers != list(range(1, len(rows) + 1)):
        problems.append(f"numbers not 1..N: {numbers}")
    by_linkedid: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_linkedid.setdefault(row["linkedid"], []).append(row)
    for truth in KILL_TRUTHS:
        found = by_linkedid.pop(truth.linkedid, [])
        inside_loss = lost_from < truth.first and truth.last <= k
        if inside_loss:
            if len(found) > 1:
                problems.append(f"{truth.linkedid}: doubled ({len(found)})")
            continue  # the CEL backfill's job
        if len(found) != 1:
            problems.append(f"{truth.linkedid} ({truth.caller}): {len(found)} requests")
            continue
        (row,) = found
        if row["ended_at"] is None:
            problems.append(f"{truth.linkedid}: call not closed")
        up_at_restart = truth.first <= k < truth.last
        ended_before_loss = truth.last <= lost_from
        if up_at_restart or ended_before_loss:
            got = (row["outcome"], row["operator"], row["external"])
            want = (truth.outcome, truth.operator, truth.external)
            if got != want:
                problems.append(f"{truth.linkedid}: outcome/operator {got} != {want}")
    for linkedid, extra in by_linkedid.items():
        problems.append(f"request for a call that is not an 8-800 call: {linkedid} {extra}")
    return problems




def first_answer() -> int:
    """Position of the event at which the first call of KILL_ITEMS is answered."""
    tracker = CallTracker(Routing(frozenset({DID}), frozenset({"7001", "201", "202"}),
                                  {"88001002030": "SMO1", "88005553535": "SMO2"}))
    at = datetime.now(UTC)
    for k, item in enumerate(KILL_ITEMS, start=1):
        event = _read(item)
        if event is not None and any(isinstance(e, CallAnswered)
                                     for e in tracker.handle(event, at)):
            return k
    raise AssertionError("no call of the kill trace is answered")
