"""The ground-truth check shared by the recorded traces and the hand-made dialplan shapes:
replay a trace folder into the running service and compare the journal with its meta.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from journal.models import Recording, Request
from tests.conftest import load_meta, service_env, trace_items
from tests.helpers import bearer, create_user, login

TRANSFER_KEYS = ("kind", "from", "to", "target", "smo")


def rung_without_answer(call: dict[str, Any]) -> list[str]:
    """Phones that rang for the call and did not answer it."""
    return sorted({leg["extension"] for leg in call["legs"]
                   if leg["rang_at"] and not leg["answered_at"] and leg["extension"]})


def expected_hotline_calls(meta: dict[str, Any]) -> list[dict[str, Any]]:
    return [call for call in meta["calls"] if call.get("is_hotline")]


async def replay_scenario(scenario: Path, make_settings: Any, start_service: Any,
                          replay_peer: Any, **peer_options: Any) -> Any:
    meta = load_meta(scenario)
    peer = await replay_peer(trace_items(scenario), **peer_options)
    settings = make_settings(ami_port=peer.port, recordings_dir=scenario / "recordings",
                             **service_env(meta))
    harness = await start_service(settings, http=True)
    await peer.done.wait()
    await harness.wait_calls_done()
    return meta, harness, peer


async def check_ground_truth(meta: dict[str, Any], harness: Any
                             ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Assert the journal matches ``meta``; return (expected call, request detail) pairs."""
    services = harness.services
    async with services.db.session() as session:
        count = await session.scalar(select(func.count()).select_from(Request))
    assert count == meta["expected_journal_requests"]

    await create_user(services, "admin", "admin")
    token = await login(harness, "admin")
    async with harness.http.get(harness.url("/api/v1/requests"), headers=bearer(token)) as resp:
        listing = await resp.json()
    assert listing["total"] == meta["expected_journal_requests"]
    items = sorted(listing["items"], key=lambda r: r["number"])
    pairs = []
    for expected, summary in zip(expected_hotline_calls(meta), items, strict=True):
        url = harness.url(f"/api/v1/requests/{summary['number']}")
        async with harness.http.get(url, headers=bearer(token)) as resp:
            assert resp.status == 200
            detail = await resp.json()
        assert detail["caller_number"] == expected["caller"]
        assert detail["line"] == expected["did"]
        (call,) = detail["calls"]
        assert call["outcome"] == expected["outcome"]
        assert call["ended_at"] is not None
        answered_legs = [leg for leg in call["legs"] if leg["answered_at"]]
        answered = [leg["extension"]
                    for leg in sorted(answered_legs, key=lambda leg: leg["answered_at"])]
        assert answered == expected["answered_by"]
        assert call["operator"] == (expected["answered_by"][0] if expected["answered_by"] else None)
        assert call["answered_by_external"] == expected.get("answered_by_external")
        if "rung" in expected:
            assert rung_without_answer(call) == sorted(expected["rung"])
        transfers = [{k: t[k] for k in TRANSFER_KEYS} for t in call["transfers"]]
        assert transfers == [{k: t[k] for k in TRANSFER_KEYS}
                             for t in expected.get("transfers", [])]
        smo_transfers = [t for t in transfers if t["target"] == "smo"]
        l2_transfers = [t for t in transfers if t["target"] == "l2"]
        if smo_transfers:
            assert (detail["level"], detail["smo"]) == ("smo", smo_transfers[-1]["smo"])
        elif l2_transfers:
            assert detail["level"] == "2"
        else:
            assert detail["level"] == "1"
        pairs.append((expected, detail))

    expected_paths = {r["asterisk_path"] for r in meta.get("recordings_produced", [])
                      if Path(r["asterisk_path"]).name.startswith("in-")}
    async with services.db.session() as session:
        linked = set(await session.scalars(
            select(Recording.pbx_path).where(Recording.request_id.is_not(None))))
    assert linked == expected_paths
    return pairs
