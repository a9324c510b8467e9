"""Role × endpoint matrix (seed regulation §23): who sees and may change which request.

The journal is built from recorded traffic replayed over TCP: s01 → a level-1 request (A),
s05 → a request routed to SMO1 by the attended transfer (B), s04 → a level-2 request (C,
then flagged as a corruption report), s01 again → a request the administrator closed (D) and
one handed to SMO2 (E). Each role then tries every endpoint on every request.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select, update

from journal.models import Request
from telephony.trace import refresh_ids
from tests.conftest import TRACES_ROOT, trace_items
from tests.helpers import bearer, create_user, login, wait_for

ROLES: dict[str, dict[str, Any]] = {
    "admin": {"role": "admin"},
    "operator": {"role": "operator"},
    "smo1": {"role": "smo", "smo": "SMO1"},
    "smo2": {"role": "smo", "smo": "SMO2"},
    "auditor": {"role": "auditor"},
    "anticorruption": {"role": "anticorruption"},
    "anonymous": {},
}
# Which of the requests A..E each role may see (§23; auditors read everything; the
# anti-corruption officer only corruption reports).
VISIBLE = {
    "admin": "ABCDE", "operator": "ACD", "smo1": "B", "smo2": "E", "auditor": "ABCDE",
    "anticorruption": "C", "anonymous": "",
}
EDITORS = {"admin", "operator", "smo1", "smo2"}
ACTIVE_CALLS = {"admin", "operator", "smo1", "smo2", "auditor"}
AUDIT_READERS = {"admin", "auditor"}
# Deferred answers are made by whoever edits a request, SMO representatives included (§26);
# corrections of a closed request are the administrator's, as closing is (§24).
CALLBACK_READERS = {"admin", "operator", "smo1", "smo2"}
CORRECTORS = {"admin"}
# Missed calls are the fund's level-1 queue: its operators and the administrator work them.
MISSED_READERS = {"admin", "operator"}


async def build_journal(make_settings: Any, start_service: Any, replay_peer: Any) -> Any:
    s01 = trace_items(TRACES_ROOT / "s01-answered-l1")
    items = (s01 + trace_items(TRACES_ROOT / "s05-attended-transfer-smo")
             + trace_items(TRACES_ROOT / "s04-blind-transfer-l2")
             + list(refresh_ids(s01, 1)) + list(refresh_ids(s01, 2)))
    peer = await replay_peer(items)
    harness = await start_service(make_settings(ami_port=peer.port), http=True)
    await peer.done.wait()
    pipeline = harness.services.pipeline
    await wait_for(lambda: pipeline.stats.messages >= peer.stats.events_sent)
    await harness.wait_calls_done()
    await wait_for(lambda: harness.services.intake.committed_events >= pipeline.stats.call_events)
    async with harness.services.db.sessions.begin() as session:
        found = list(await session.scalars(select(Request).order_by(Request.number)))
        assert [(r.level, r.smo) for r in found] == \
            [("1", None), ("smo", "SMO1"), ("2", None), ("1", None), ("1", None)]
        now = datetime.now(UTC)
        numbers = dict(zip("ABCDE", (r.number for r in found), strict=True))
        await session.execute(update(Request).where(Request.number == numbers["C"])
                              .values(corruption=True))
        await session.execute(update(Request).where(Request.number == numbers["D"])
                              .values(status="closed", closed_at=now, closed_by="admin"))
        await session.execute(update(Request).where(Request.number == numbers["E"])
                              .values(level="smo", smo="SMO2"))
    for name, spec in ROLES.items():
        if spec:
            await create_user(harness.services, name, spec["role"], smo=spec.get("smo"))
    return harness, numbers


def has_route(harness: Any, method: str, path: str) -> bool:
    for route in harness.server.app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        if route.method == method and info.get("formatter", info.get("path")) == path:
            return True
    return False


class Matrix:
    """Collects (what, expected, got) so one run reports every mismatch at once."""

    def __init__(self, harness: Any, headers: dict[str, str]) -> None:
        self.harness = harness
        self.headers = headers
        self.mismatches: list[str] = []

    async def call(self, method: str, path: str, expected: int, **kwargs: Any) -> Any:
        async with self.harness.http.request(method, self.harness.url(path),
                                             headers=self.headers, **kwargs) as resp:
            body = await resp.json() if resp.content_type == "application/json" else None
            if resp.status != expected:
                self.mismatches.append(f"{method} {path}: expected {expected}, got "
                                       f"{resp.status} {body}")
            elif resp.status >= 400:
                assert body is not None and set(body["error"]) >= {"code", "message"}
            return body

    def check(self, what: str, expected: Any, got: Any) -> None:
        if expected != got:
            self.mismatches.append(f"{what}: expected {expected!r}, got {got!r}")


@pytest.mark.parametrize("role", list(ROLES))
async def test_role_matrix(role: str, make_settings: Any, start_service: Any,
                           replay_peer: Any) -> None:
    harness, numbers = await build_journal(make_settings, start_service, replay_peer)
    anonymous = role == "anonymous"
    if anonymous:
        async with harness.http.post(harness.url("/api/v1/auth/login"),
                                     json={"login": "admin", "password": "wrong-pass"}) as resp:
            assert resp.status == 401
        headers: dict[str, str] = {}
    else:
        headers = bearer(await login(harness, role))
    m = Matrix(harness, headers)
    denied = 401 if anonymous else None
    visible = VISIBLE[role]

    # --- reading requests
    listing = await m.call("GET", "/api/v1/requests", denied or 200)
    if not anonymous:
        m.check("list", sorted(numbers[k] for k in visible),
                sorted(item["number"] for item in listing["items"]))
        m.check("total", len(visible), listing["total"])
    for key, number in numbers.items():
        detail = await m.call("GET", f"/api/v1/requests/{number}",
                              denied or (200 if key in visible else 404))
        if detail and key in visible and not anonymous:
            m.check(f"detail {key} closed", key == "D", detail["closed"])
    await m.call("GET", "/api/v1/calls/active",
                 denied or (200 if role in ACTIVE_CALLS else 403))
    if has_route(harness, "GET", "/api/v1/callbacks"):
        await m.call("GET", "/api/v1/callbacks",
                     denied or (200 if role in CALLBACK_READERS else 403))
    else:
        m.mismatches.append("SKIP-CALLBACKS")
    if has_route(harness, "GET", "/api/v1/missed"):
        await m.call("GET", "/api/v1/missed", denied or (200 if role in MISSED_READERS else 403))
        await m.call("GET", "/api/v1/missed?state=overdue",
                     denied or (200 if role == "admin" else 403))
        # None of A..E is a missed call: an editor who may see it is told so (409 not_missed).
        for key, number in numbers.items():
            expected = denied or (404 if key not in visible else 403 if role not in EDITORS
                                  else 409)
            await m.call("POST", f"/api/v1/requests/{number}/callback/attempt", expected,
                         json={"result": "no_answer"})
    else:
        m.mismatches.append("SKIP-MISSED")

    # --- the event stream: what the role may see of everything stored so far
    url = harness.url("/api/v1/events")
    if anonymous:
        async with harness.http.get(url) as resp:
            m.check("events status", 401, resp.status)
    else:
        ws = await harness.http.ws_connect(url, params={"last_event_id": "0"}, headers=headers)
        hello = await ws.receive_json(timeout=5)
        frames = [await ws.receive_json(timeout=5) for _ in range(hello["resumed"])]
        await ws.close()
        m.check("hello", "hello", hello["type"])
        m.check("events", {numbers[k] for k in visible},
                {f["request_number"] for f in frames})

    # --- administration
    await m.call("GET", "/api/v1/audit", denied or (200 if role in AUDIT_READERS else 403))
    await m.call("GET", "/api/v1/users", denied or (200 if role == "admin" else 403))
    await m.call("POST", "/api/v1/users/operator/unlock",
                 denied or (200 if role == "admin" else 403))
    await m.call("POST", "/api/v1/users/nobody/unlock",
                 denied or (404 if role == "admin" else 403))

    # --- writes (routes built by the workflow part; skipped until they exist)
    admin_headers = bearer(await login(harness, "admin")) if anonymous else None
    if has_route(harness, "PATCH", "/api/v1/requests/{number}"):
        for key, number in numbers.items():
            version = await _version(harness, number, admin_headers or headers, key, visible)
            if anonymous:
                expected = 401
            elif key not in visible:
                expected = 404
            elif role not in EDITORS:
                expected = 403
            elif key == "D":
                expected = 409
            else:
                expected = 200
            await m.call("PATCH", f"/api/v1/requests/{number}", expected,
                         json={"summary": f"проверка доступа {role}", "version": version})
    else:
        m.mismatches.append("SKIP-PATCH")
    if has_route(harness, "POST", "/api/v1/requests/{number}/close"):
        for key, number in numbers.items():
            if anonymous:
                expected = 401
            elif key not in visible:
                expected = 404
            elif role != "admin":
                expected = 403
            elif key == "D":
                expected = 409
            else:
                expected = 200
            await m.call("POST", f"/api/v1/requests/{number}/close", expected, json={})
        if role == "admin":  # closed now: reads still work, changes are refused
            await m.call("GET", f"/api/v1/requests/{numbers['A']}", 200)
            await m.call("POST", f"/api/v1/requests/{numbers['A']}/close", 409, json={})
    else:
        m.mismatches.append("SKIP-CLOSE")
    if has_route(harness, "POST", "/api/v1/requests/{number}/correction"):
        # D is closed (A too by now, if the role is the administrator).
        if anonymous:
            expected = 401
        elif "D" not in visible:
            expected = 404
        elif role not in CORRECTORS:
            expected = 403
        else:
            expected = 201
        await m.call("POST", f"/api/v1/requests/{numbers['D']}/correction", expected,
                     json={"summary": f"исправление {role}"})
    else:
        m.mismatches.append("SKIP-CORRECTION")

    skipped = [x for x in m.mismatches if x.startswith("SKIP-")]
    real = [x for x in m.mismatches if not x.startswith("SKIP-")]
    assert not real, "\n".join(real)
    if skipped:
        pytest.skip(f"routes not built yet: {', '.join(skipped)}")


async def _version(harness: Any, number: int, headers: dict[str, str], key: str,
                   visible: str) -> int:
    """The request's current version (read as the role when it may, else as the admin)."""
    if key not in visible or not headers:
        headers = bearer(await login(harness, "admin"))
    async with harness.http.get(harness.url(f"/api/v1/requests/{number}"),
                                headers=headers) as resp:
        return int((await resp.json())["version"])
