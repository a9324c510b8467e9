"""Issue 13 at the tracker level: each hand-made shape fed straight into CallTracker with
``at`` = trace start + t. The call is answered when the person answered (``answered_at_t``),
by the expected extensions, and the phones that rang without answering are known."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from config import load_settings
from hotline.service import routing_of
from telephony.callevents import CallAnswered, CallEvent, CallStarted, LegRinging
from telephony.events import MalformedEvent, parse_event
from telephony.framing import headers_of
from telephony.routing import Routing
from telephony.trace import streamed_messages
from tests.conftest import load_meta, service_env, trace_items
from tests.shapes_support import shape_params

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def routing_for(meta: dict[str, Any]) -> Routing:
    return routing_of(load_settings(database_url="sqlite+aiosqlite:///:memory:",
                                    ami_secret="x", **service_env(meta)))


def run_tracker(shape: Path) -> list[CallEvent]:
    from telephony.tracker import CallTracker

    tracker = CallTracker(routing_for(load_meta(shape)))
    out: list[CallEvent] = []
    for item in streamed_messages(trace_items(shape)):
        try:
            event = parse_event(headers_of(list(item.pairs)))
        except MalformedEvent:
            continue
        if event is not None:
            out += tracker.handle(event, T0 + timedelta(seconds=item.t))
    return out


@pytest.mark.parametrize("shape", shape_params())
def test_tracker_answers_when_the_person_answered(shape: Path) -> None:
    meta = load_meta(shape)
    out = run_tracker(shape)
    started = [e for e in out if isinstance(e, CallStarted) and e.direction == "inbound"]
    expected_calls = [c for c in meta["calls"] if c.get("is_hotline")]
    assert len(started) == len(expected_calls)
    for expected, start in zip(expected_calls, started, strict=True):
        assert start.caller_number == expected["caller"]
        answers = [e for e in out if isinstance(e, CallAnswered) and e.linkedid == start.linkedid]
        assert [a.extension for a in answers] == expected["answered_by"]
        if "answered_at_t" in expected and expected["answered_by"]:
            at = (answers[0].at - T0).total_seconds()
            assert abs(at - expected["answered_at_t"]) <= 0.5
        # As the API counts it: legs that rang and were never answered.
        answered_legs = {a.uniqueid for a in answers}
        no_answer = sorted({e.extension for e in out if isinstance(e, LegRinging)
                            and e.linkedid == start.linkedid
                            and e.uniqueid not in answered_legs})
        assert no_answer == sorted(expected.get("rung", []))
