"""Values from the PBX never fail a write (issue: a 40+ character CallerID or a 500+ character
MIXMONITOR_FILENAME made PostgreSQL refuse the batch, and the dropped event's log line raised):
the request exists, nothing else in the batch is lost, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from journal.models import Recording, Request
from telephony.trace import TraceItem
from tests.conftest import service_env
from tests.test_malformed_input import two_calls

HOSTILE_CALLER = "+7916\u202e1234567" + "9" * 50 + "\x00tail"
LONG_PATH = "/var/spool/asterisk/monitor/2026/11/25/in-" + "x" * 600 + ".wav"


def poisoned(items: list[TraceItem], first_linkedid: str) -> list[TraceItem]:
    """The first call's caller number and recording name made hostile, the second untouched."""
    out = []
    for item in items:
        pairs = item.pairs
        if pairs and dict(pairs).get("Linkedid") == first_linkedid:
            pairs = tuple(
                (key, HOSTILE_CALLER if key == "CallerIDNum" and value.startswith("+7916")
                 else LONG_PATH if key == "Value" and dict(pairs).get("Variable")
                 == "MIXMONITOR_FILENAME" else value)
                for key, value in pairs)
        out.append(TraceItem(item.t, pairs=pairs, banner=item.banner, marker=item.marker))
    return out


async def test_hostile_pbx_values_are_clipped_and_no_call_is_lost(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    items, meta = two_calls()
    first = next(dict(i.pairs)["Linkedid"] for i in items
                 if i.pairs and dict(i.pairs).get("Event") == "Newchannel")
    peer = await replay_peer(poisoned(items, first))
    harness = await start_service(make_settings(ami_port=peer.port, **service_env(meta)))
    await peer.done.wait()
    await harness.wait_calls_done()
    services = harness.services
    async with services.db.session() as session:
        requests = list(await session.execute(
            select(Request.number, Request.linkedid, Request.caller_number, Request.outcome)
            .order_by(Request.number)))
        paths = list(await session.scalars(select(Recording.pbx_path)))
    assert [r.number for r in requests] == [1, 2]
    hostile = next(r for r in requests if r.linkedid == first)
    assert "\x00" not in hostile.caller_number
    assert hostile.caller_number == HOSTILE_CALLER.replace("\x00", "")[:40]
    assert hostile.outcome == "answered"
    assert all(r.outcome for r in requests)
    assert any(p.startswith(LONG_PATH[:100]) and len(p) <= 500 for p in paths)
    assert services.intake.dropped_events == 0
    assert services.intake.clipped_values >= 2
