"""Request numbering under concurrency: unique, gap-free 1..N, one request per Linkedid.

Two writers (active and standby services, both connected to the same PBX) on one database see
the same calls at the same time, plus calls only one of them sees; and a burst of hundreds of
concurrent calls through one service.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from bench.ingest import synthetic_calls
from journal.models import Call, Request, Transfer
from tests.helpers import wait_for

FAST_AMI = {"ami_backoff_max_s": 0.05}
HOTLINE = ("s01", "s02", "s04", "s05", "s13")


async def numbering_of(services: Any) -> tuple[list[int], int, int]:
    async with services.db.session() as session:
        numbers = list(await session.scalars(select(Request.number).order_by(Request.number)))
        linkedids = await session.scalar(
            select(func.count(func.distinct(Request.linkedid))))
        open_calls = await session.scalar(
            select(func.count()).select_from(Call).where(Call.ended_at.is_(None)))
    return numbers, int(linkedids or 0), int(open_calls or 0)


async def test_two_writers_on_one_database(make_settings: Any, start_service: Any,
                                           replay_peer: Any) -> None:
    # The same 40 calls reach both services (same ids), and 20 more reach only one each.
    shared, n_shared = synthetic_calls(40, 20, first_round=1, only=HOTLINE)
    only_a, n_a = synthetic_calls(20, 10, first_round=1000, only=HOTLINE)
    only_b, n_b = synthetic_calls(20, 10, first_round=2000, only=HOTLINE)
    # Distinct calls interleaved with the shared ones, so both writers race all along.
    items_a = shared[: len(shared) // 2] + only_a + shared[len(shared) // 2:]
    items_b = only_b[: len(only_b) // 2] + shared + only_b[len(only_b) // 2:]
    peer_a = await replay_peer(items_a)
    peer_b = await replay_peer(items_b)
    peer_a.accepting = peer_b.accepting = False  # both start streaming together
    a = await start_service(make_settings(ami_port=peer_a.port, **FAST_AMI))
    b = await start_service(make_settings(ami_port=peer_b.port, **FAST_AMI))
    peer_a.resume()
    peer_b.resume()
    await peer_a.done.wait()
    await peer_b.done.wait()
    await a.wait_calls_done(30)
    await b.wait_calls_done(30)
    expected = n_shared + n_a + n_b
    numbers, linkedids, open_calls = await numbering_of(a.services)
    assert numbers == list(range(1, expected + 1))
    assert linkedids == expected
    assert open_calls == 0
    async with a.services.db.session() as session:
        # A transfer both writers saw is stored once.
        doubled = await session.scalar(
            select(func.count()).select_from(
                select(Transfer.call_id, Transfer.to).group_by(Transfer.call_id, Transfer.to)
                .having(func.count() > 1).subquery()))
    assert doubled == 0
    assert a.services.intake.dropped_events == 0 and b.services.intake.dropped_events == 0


async def test_burst_of_concurrent_calls(make_settings: Any, start_service: Any,
                                         replay_peer: Any) -> None:
    items, expected = synthetic_calls(300, 200)
    peer = await replay_peer(items)
    harness = await start_service(make_settings(ami_port=peer.port, **FAST_AMI))
    await peer.done.wait()
    await wait_for(lambda: harness.services.pipeline.stats.messages >= len(items), 60)
    await harness.wait_calls_done(60)
    numbers, linkedids, open_calls = await numbering_of(harness.services)
    assert numbers == list(range(1, expected + 1))
    assert linkedids == expected
    assert open_calls == 0
    assert harness.services.intake.dropped_events == 0
