"""Issue 13 "any dialplan": every hand-made shape under tests/shapes/ (pickup, forwarding to a
mobile, caller-ID rewrite, Asterisk 13 / chan_sip, missing event classes, AMI Redirect,
feature-code transfers, IVR before the queue), replayed into the running service, yields its
meta.json ground truth — the same check as the recorded traces plus who rang without
answering, who answered outside the PBX and when the person answered."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import trace_items
from tests.scenario_checks import check_ground_truth, replay_scenario
from tests.shapes_support import SHAPES, SHAPES_ROOT, shape_params

# The answer-time check over the wire replays in real time: arrival times are the service's
# clock. The peer keeps to the trace's schedule, but one event can still arrive late on a
# loaded CI machine; the fault this guards against is off by the whole IVR (about 10 s), so
# 2 s tells them apart without timing the machine. Only shapes whose meta asks for it
# ("answer_time_over_the_wire"); every shape's answered_at_t is checked exactly at the
# tracker level (test_tracker_shapes.py).
ANSWER_TIME_SPEED = 1.0
ANSWER_TIME_TOLERANCE_S = 2.0


def test_shape_folders_are_present() -> None:
    assert SHAPES, f"no shape folders under {SHAPES_ROOT}"


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.mark.parametrize("shape", shape_params())
async def test_shape_matches_ground_truth(shape: Path, make_settings: Any, start_service: Any,
                                          replay_peer: Any) -> None:
    meta, harness, _peer = await replay_scenario(shape, make_settings, start_service,
                                                 replay_peer)
    await check_ground_truth(meta, harness)


@pytest.mark.parametrize(
    "shape", shape_params(lambda meta: meta.get("answer_time_over_the_wire", False)))
async def test_shape_answer_time_is_when_the_person_answered(
        shape: Path, make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    """Replayed at a steady pace: answered_at − started_at is the trace's answer moment minus
    its first Newchannel, not when the PBX answered the trunk (IVR, announcement)."""
    started_t = first_newchannel_t(shape)
    meta, harness, _peer = await replay_scenario(shape, make_settings, start_service,
                                                 replay_peer, speed=ANSWER_TIME_SPEED)
    for expected, detail in await check_ground_truth(meta, harness):
        if "answered_at_t" not in expected:
            continue
        (call,) = detail["calls"]
        assert call["answered_at"] is not None
        elapsed = (_ts(call["answered_at"]) - _ts(call["started_at"])).total_seconds()
        assert abs(elapsed * ANSWER_TIME_SPEED - (expected["answered_at_t"] - started_t)) \
            <= ANSWER_TIME_TOLERANCE_S


def first_newchannel_t(shape: Path) -> float:
    for item in trace_items(shape):
        if item.is_message and item.header("Event") == "Newchannel":
            return item.t
    raise AssertionError(f"{shape.name}: no Newchannel")
