"""The journal workflow as the regulations describe it: editing with optimistic concurrency,
validation, closing by the administrator (§24) and corrections after closing."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select, update

from journal.guards import ClosedRequestError
from journal.models import AuditEntry, Recording, Request
from journal.validation import enp_check_digit
from tests.conftest import load_meta, scenario_dirs, service_env, trace_items
from tests.helpers import bearer, create_user, login

SCENARIOS = {s.name: s for s in scenario_dirs()}
ENP = "500000000000001" + str(enp_check_digit("500000000000001"))


async def journal_with(names: list[str], make_settings: Any, start_service: Any,
                       replay_peer: Any, **settings: Any) -> Any:
    """The service with the recorded scenarios ``names`` replayed into its journal, and users:
    admin, op101 (operator, ext 101), op201 (operator, ext 201), smo1/smo2, auditor, anticor."""
    items: list[Any] = []
    env: dict[str, Any] = {}
    for name in names:
        items += trace_items(SCENARIOS[name])
        env = service_env(load_meta(SCENARIOS[name]))
    peer = await replay_peer(items)
    harness = await start_service(make_settings(ami_port=peer.port, **{**env, **settings}),
                                  http=True)
    await peer.done.wait()
    await harness.wait_calls_done()
    services = harness.services
    await create_user(services, "admin", "admin")
    await create_user(services, "op101", "operator", extension="101")
    await create_user(services, "op201", "operator", extension="201")
    await create_user(services, "smo1", "smo", smo="SMO1")
    await create_user(services, "smo2", "smo", smo="SMO2")
    await create_user(services, "auditor", "auditor")
    await create_user(services, "anticor", "anticorruption")
    harness.tokens = {name: await login(harness, name) for name in
                      ("admin", "op101", "op201", "smo1", "smo2", "auditor", "anticor")}
    harness.peer = peer
    return harness


async def call(harness: Any, method: str, path: str, who: str,
               body: Any = None) -> tuple[int, Any]:
    async with harness.http.request(method, harness.url(path), json=body,
                                    headers=bearer(harness.tokens[who])) as resp:
        ctype = resp.headers.get("Content-Type", "")
        return resp.status, (await resp.json() if "json" in ctype else await resp.read())


async def get(harness: Any, number: int, who: str = "admin") -> dict[str, Any]:
    status, data = await call(harness, "GET", f"/api/v1/requests/{number}", who)
    assert status == 200, data
    return data


async def test_operator_fills_in_the_appeal_and_the_version_moves_on(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal_with(["s01-answered-l1"], make_settings, start_service, replay_peer)
    events = harness.services.bus.subscribe()
    before = await get(harness, 1, "op101")
    status, data = await call(harness, "PATCH", "/api/v1/requests/1", "op101", {
        "version": before["version"], "full_name": " Иванов Иван Иванович ",
        "address_as": "Иван Иванович", "contact_phone": "8 916 123-45-67",
        "policy_number": ENP, "snils": "11223344595", "territory": "Подольск",
        "medical_org": "ГБУЗ МО «Подольская ГКБ»", "kind": "жалоба", "topic": "care_quality",
        "summary": "Не может записаться к кардиологу", "typical": False})
    assert status == 200, data
    assert data["version"] == before["version"] + 1
    assert data["full_name"] == "Иванов Иван Иванович"
    assert data["contact_phone"] == "+79161234567"
    assert data["snils"] == "112-233-445 95"
    assert data["policy_number"] == ENP and "warnings" not in data
    assert data["status"] == "in_progress"
    assert any(h["action"] == "edit" for h in data["history"])
    note = (await asyncio.wait_for(events.queue.get(), 2)).frame()
    assert note["type"] == "request.updated" and note["request_number"] == 1
    assert note["at"].endswith("+00:00")
    async with harness.services.db.session() as session:
        entry = await session.scalar(select(AuditEntry).where(
            AuditEntry.action == "update_request"))
    assert entry is not None and entry.user_login == "op101"
    assert entry.detail["changes"]["kind"] == [None, "жалоба"]


async def test_stale_version_gets_conflict_with_the_current_request(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal_with(["s01-answered-l1"], make_settings, start_service, replay_peer)
    version = (await get(harness, 1))["version"]
    status, _ = await call(harness, "PATCH", "/api/v1/requests/1", "op101",
                           {"version": version, "summary": "первый"})
    assert status == 200
    status, data = await call(harness, "PATCH", "/api/v1/requests/1", "op201",
                              {"version": version, "summary": "второй"})
    assert status == 409
    assert data["error"]["code"] == "version_conflict"
    assert data["error"]["current"]["summary"] == "первый"
    assert data["error"]["current"]["version"] == version + 1


async def patch_with(harness: Any, headers: dict[str, str], body: Any,
                     who: str = "op101") -> tuple[int, Any, str | None]:
    async with harness.http.patch(harness.url("/api/v1/requests/1"), json=body,
                                  headers={**bearer(harness.tokens[who]), **headers}) as resp:
        return resp.status, await resp.json(), resp.headers.get("ETag")


async def test_fields_alone_update_the_request_and_the_last_write_wins(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    """DESIGN §5: PATCH updates fields; ``version`` is optional."""
    harness = await journal_with(["s01-answered-l1"], make_settings, start_service, replay_peer)
    version = (await get(harness, 1))["version"]
    status, data = await call(harness, "PATCH", "/api/v1/requests/1", "op101",
                              {"summary": "первый"})
    assert status == 200, data
    assert data["summary"] == "первый" and data["version"] == version + 1
    status, data = await call(harness, "PATCH", "/api/v1/requests/1", "op201",
                              {"summary": "второй"})
    assert status == 200, data
    assert data["summary"] == "второй" and data["version"] == version + 2
    # Concurrent unconditional edits all apply, one after the other.
    results = await asyncio.gather(*(
        call(harness, "PATCH", "/api/v1/requests/1", who, {"result": who})
        for who in ("op101", "op201", "admin")))
    assert [status for status, _ in results] == [200, 200, 200], results
    assert (await get(harness, 1))["version"] == version + 5
    status, data = await call(harness, "PATCH", "/api/v1/requests/1", "op101", {})
    assert status == 422  # nothing to change


async def test_get_gives_an_etag_that_if_match_turns_into_a_precondition(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal_with(["s01-answered-l1"], make_settings, start_service, replay_peer)
    async with harness.http.get(harness.url("/api/v1/requests/1"),
                                headers=bearer(harness.tokens["op101"])) as resp:
        etag = resp.headers["ETag"]
        version = (await resp.json())["version"]
    assert etag == f'"{version}"'
    status, data, new_etag = await patch_with(harness, {"If-Match": etag}, {"summary": "первый"})
    assert status == 200, data
    assert new_etag == f'"{version + 1}"' and data["version"] == version + 1
    # The same (now stale) ETag again: 409 with the request as stored, nothing saved.
    status, data, _ = await patch_with(harness, {"If-Match": etag}, {"summary": "второй"},
                                       who="op201")
    assert status == 409 and data["error"]["code"] == "version_conflict"
    assert data["error"]["current"]["summary"] == "первый"
    # A list naming the current version matches; so does a weak form of it and "*".
    for form in ('"1", {}', "W/{}", "*"):
        header = form.format(new_etag)
        status, data, new_etag = await patch_with(harness, {"If-Match": header},
                                                  {"result": header})
        assert status == 200, (header, data)
    # An entity tag that is no version of ours matches nothing; a malformed header is a 400.
    status, data, _ = await patch_with(harness, {"If-Match": '"abc"'}, {"result": "x"})
    assert status == 409 and data["error"]["code"] == "version_conflict"
    status, data, _ = await patch_with(harness, {"If-Match": "abc"}, {"result": "x"})
    assert status == 400 and data["error"]["code"] == "bad_header"
    # Header and body both current: fine; either stale: conflict.
    current = (await get(harness, 1))["version"]
    status, data, _ = await patch_with(harness, {"If-Match": f'"{current}"'},
                                       {"version": current - 1, "result": "y"})
    assert status == 409 and data["error"]["code"] == "version_conflict"
    status, data, _ = await patch_with(harness, {"If-Match": f'"{current}"'},
                                       {"version": current, "result": "y"})
    assert status == 200 and data["version"] == current + 1
    # A closed request answers "closed" whatever the precondition.
    await call(harness, "POST", "/api/v1/requests/1/close", "admin")
    status, data, _ = await patch_with(harness, {"If-Match": '"1"'}, {"result": "z"})
    assert status == 409 and data["error"]["code"] == "closed"


async def test_concurrent_edits_of_one_version_exactly_one_wins(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal_with(["s01-answered-l1"], make_settings, start_service, replay_peer)
    version = (await get(harness, 1))["version"]
    results = await asyncio.gather(*(
        call(harness, "PATCH", "/api/v1/requests/1", who, {"version": version, "summary": who})
        for who in ("op101", "op201", "admin", "op101")))
    statuses = sorted(status for status, _ in results)
    assert statuses.count(200) == 1, results
    assert all(s == 409 for s in statuses if s != 200)
    assert (await get(harness, 1))["version"] == version + 1


async def test_invalid_fields_are_refused_with_russian_messages_and_nothing_saved(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal_with(["s01-answered-l1"], make_settings, start_service, replay_peer)
    before = await get(harness, 1)
    status, data = await call(harness, "PATCH", "/api/v1/requests/1", "op101", {
        "version": before["version"], "full_name": "Петров", "policy_number": "12-34",
        "snils": "112-233-445 00", "kind": "просьба", "topic": "погода",
        "contact_phone": "12", "level": "smo"})
    assert status == 422
    error = data["error"]
    assert error["code"] == "invalid"
    assert set(error["fields"]) == {"policy_number", "snils", "kind", "topic", "contact_phone",
                                    "level"}
    assert error["fields"]["policy_number"] == "ЕНП должен состоять из 16 цифр"
    after = await get(harness, 1)
    assert after["full_name"] is None and after["version"] == before["version"]
    status, data = await call(harness, "PATCH", "/api/v1/requests/1", "op101",
                              {"summary": "x", "version": "3"})
    assert status == 422 and "version" in data["error"]["fields"]


async def test_enp_with_a_wrong_check_digit_is_saved_with_a_warning(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal_with(["s01-answered-l1"], make_settings, start_service, replay_peer)
    bad = ENP[:15] + str((int(ENP[15]) + 1) % 10)
    version = (await get(harness, 1))["version"]
    status, data = await call(harness, "PATCH", "/api/v1/requests/1", "op101",
                              {"version": version, "policy_number": bad})
    assert status == 200
    assert data["policy_number"] == bad
    assert "Контрольная цифра" in data["warnings"]["policy_number"]


async def test_closed_request_refuses_every_write(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal_with(["s01-answered-l1"], make_settings, start_service, replay_peer)
    status, data = await call(harness, "POST", "/api/v1/requests/1/close", "op101")
    assert status == 403  # §24: only the administrator closes
    status, data = await call(harness, "POST", "/api/v1/requests/1/close", "admin")
    assert status == 200, data
    assert data["status"] == "closed" and data["closed_by"] == "admin" and data["closed"]
    version = data["version"]
    writes = [
        ("PATCH", "", {"version": version, "summary": "поправка"}),
        ("POST", "/close", None),
        ("POST", "/route", {"to": "l2"}),
        ("POST", "/defer", {"contact_phone": "+79161234567"}),
        ("POST", "/callback/done", {}),
        ("POST", "/urgent", {"medical_org": "ГКБ", "contact_person": "зав."}),
    ]
    for method, suffix, body in writes:
        status, data = await call(harness, method, f"/api/v1/requests/1{suffix}", "admin", body)
        assert status == 409, (suffix, data)
        assert data["error"]["code"] == "closed"
    assert (await get(harness, 1))["version"] == version
    # Below the API: the ORM guard and the database trigger refuse too.
    db = harness.services.db
    async with db.session() as session:
        request = await session.scalar(select(Request).where(Request.number == 1))
        request.summary = "в обход API"
        try:
            await session.commit()
            raise AssertionError("the ORM guard let a closed request change")
        except ClosedRequestError:
            await session.rollback()
    try:
        async with db.sessions.begin() as session:
            await session.execute(update(Request).where(Request.number == 1)
                                  .values(summary="SQL в обход"))
        raise AssertionError("the trigger let a closed request change")
    except Exception as exc:  # IntegrityError from the trigger
        assert "closed request is read-only" in str(exc)
    try:
        async with db.sessions.begin() as session:
            await session.execute(update(Recording).values(pbx_path="/tmp/other.wav"))
        raise AssertionError("the trigger let a closed request's recording change")
    except Exception as exc:
        assert "closed request is read-only" in str(exc)
    async with db.session() as session:
        assert await session.scalar(select(Request.summary).where(Request.number == 1)) is None


async def test_correction_after_closing_is_a_new_linked_request(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal_with(["s01-answered-l1"], make_settings, start_service, replay_peer)
    version = (await get(harness, 1))["version"]
    await call(harness, "PATCH", "/api/v1/requests/1", "op101",
               {"version": version, "full_name": "Сидорова", "kind": "консультация"})
    status, _ = await call(harness, "POST", "/api/v1/requests/1/correction", "op101", {})
    assert status == 409  # not closed yet: edit it directly
    await call(harness, "POST", "/api/v1/requests/1/close", "admin")
    status, data = await call(harness, "POST", "/api/v1/requests/1/correction", "op101",
                              {"kind": "жалоба"})
    assert status == 403, data  # corrections are the administrator's (§24), as closing is
    status, data = await call(harness, "POST", "/api/v1/requests/1/correction", "admin",
                              {"kind": "жалоба"})
    assert status == 201, data
    assert data["number"] == 2 and data["corrects_number"] == 1
    assert data["full_name"] == "Сидорова" and data["kind"] == "жалоба"
    assert data["status"] == "in_progress"
    original = await get(harness, 1)
    assert original["kind"] == "консультация" and original["status"] == "closed"
    assert original["history"][-1]["action"] == "corrected_by"
    assert original["history"][-1]["correction"] == 2
