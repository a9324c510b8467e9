"""Every recorded scenario, replayed over a real TCP AMI connection into the running service,
yields exactly its meta.json ground truth (discovered: new trace folders are covered as-is)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from journal.models import Request
from tests.conftest import TRACES_ROOT, load_meta, scenario_dirs, service_env, trace_items
from tests.scenario_checks import check_ground_truth, replay_scenario

SCENARIOS = scenario_dirs()


def test_recorded_traces_are_present() -> None:
    """Without ../shared/ami-traces every scenario test would silently vanish: fail instead."""
    assert SCENARIOS, f"no scenario folders found under {TRACES_ROOT}"


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_scenario_matches_ground_truth(scenario: Path, make_settings: Any,
                                            start_service: Any, replay_peer: Any) -> None:
    meta, harness, _peer = await replay_scenario(scenario, make_settings, start_service,
                                                 replay_peer)
    await check_ground_truth(meta, harness)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_replaying_a_scenario_twice_creates_no_second_request(
        scenario: Path, make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    meta = load_meta(scenario)
    items = trace_items(scenario)
    peer = await replay_peer(items + items)
    settings = make_settings(ami_port=peer.port, **service_env(meta))
    harness = await start_service(settings)
    await peer.done.wait()
    await harness.wait_calls_done()
    async with harness.services.db.session() as session:
        count = await session.scalar(select(func.count()).select_from(Request))
        numbers = list(await session.scalars(select(Request.number).order_by(Request.number)))
    assert count == meta["expected_journal_requests"]
    assert numbers == list(range(1, count + 1))
