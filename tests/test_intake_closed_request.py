"""A request closed by the administrator while its call is still going on stays read-only:
the rest of the call is still recorded on the call, nothing is lost, nothing is retried."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from journal.models import Call, Request, Transfer
from tests.conftest import TRACES_ROOT, load_meta, service_env, trace_items
from tests.helpers import bearer, create_user, login, wait_for

SCENARIO = TRACES_ROOT / "s04-blind-transfer-l2"
FAST_AMI = {"ami_backoff_max_s": 0.2}


async def test_call_events_after_closing_do_not_touch_the_closed_request(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    items = trace_items(SCENARIO)
    events = [i for i in items if i.pairs and not i.is_response]
    answered_at = next(n for n, i in enumerate(events) if i.header("Event") == "AgentConnect")
    drop_at = answered_at + 5  # answered by 101, not yet transferred to level 2
    peer = await replay_peer(items, drops=[drop_at], hold_on_drop=True)
    settings = make_settings(ami_port=peer.port, **service_env(load_meta(SCENARIO)), **FAST_AMI)
    harness = await start_service(settings, http=True)
    await wait_for(lambda: not peer.accepting and peer.stats.events_sent >= drop_at)
    await harness.services.drain()

    await create_user(harness.services, "chief", "admin")
    token = await login(harness, "chief")
    async with harness.http.post(harness.url("/api/v1/requests/1/close"),
                                 headers=bearer(token)) as resp:
        assert resp.status == 200, await resp.text()

    peer.resume()
    await peer.done.wait()
    await harness.wait_calls_done()

    async with harness.services.db.session() as session:
        request = await session.scalar(select(Request).where(Request.number == 1))
        call = await session.scalar(select(Call).where(Call.request_id == request.id))
        transfers = list(await session.scalars(select(Transfer).where(Transfer.call_id == call.id)))
    assert request.closed_at is not None
    assert request.level == "1"  # the transfer after closing did not reopen or reroute it
    assert call.ended_at is not None and call.outcome == "answered"
    assert [(t.kind, t.to, t.target) for t in transfers] == [("blind", "7001", "l2")]
    assert harness.services.intake.retries == 0
    assert getattr(harness.services.intake, "dropped_events", 0) == 0
