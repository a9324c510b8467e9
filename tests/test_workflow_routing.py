"""Routing, deferred answers, click-to-call and urgent intervention (regulation §28-33 and
the Arkhangelsk routing description), each leaving its record in the request's history."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from config import load_settings
from journal.models import AuditEntry
from journal.workflow import default_due
from telephony.framing import headers_of
from tests.conftest import trace_items
from tests.helpers import wait_for
from tests.test_workflow import SCENARIOS, call, get, journal_with


def notes_of(subscription: Any) -> list[dict[str, Any]]:
    found = []
    while not subscription.queue.empty():
        found.append(subscription.queue.get_nowait().frame())
    return found


async def test_operator_cannot_see_request_routed_to_smo(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal_with(["s01-answered-l1"], make_settings, start_service, replay_peer)
    events = harness.services.bus.subscribe()
    status, _ = await call(harness, "GET", "/api/v1/requests/1", "smo1")
    assert status == 404  # §23: an SMO sees only what is under its review
    status, data = await call(harness, "POST", "/api/v1/requests/1/route", "op101",
                              {"to": "smo", "smo": "SMO1"})
    assert status == 200, data
    assert (data["level"], data["smo"], data["status"]) == ("smo", "SMO1", "transferred")
    assert data["history"][-1]["action"] == "route_smo"
    assert (await call(harness, "GET", "/api/v1/requests/1", "op101"))[0] == 404
    assert (await call(harness, "GET", "/api/v1/requests/1", "smo2"))[0] == 404
    assert (await call(harness, "GET", "/api/v1/requests/1", "smo1"))[0] == 200
    assert (await call(harness, "GET", "/api/v1/requests/1", "admin"))[0] == 200
    status, listing = await call(harness, "GET", "/api/v1/requests", "op101")
    assert listing["total"] == 0
    routed = [n for n in notes_of(events) if n["type"] == "request.routed"]
    assert routed and routed[0]["level"] == "smo" and routed[0]["smo"] == "SMO1"
    # The operator who handed it over cannot edit it any more either.
    status, _ = await call(harness, "PATCH", "/api/v1/requests/1", "op101",
                           {"version": data["version"], "summary": "x"})
    assert status == 404


async def test_smo_user_cannot_route_to_another_smo_but_may_return_it_to_the_fund(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal_with(["s01-answered-l1"], make_settings, start_service, replay_peer)
    await call(harness, "POST", "/api/v1/requests/1/route", "admin", {"to": "smo", "smo": "SMO1"})
    status, data = await call(harness, "POST", "/api/v1/requests/1/route", "smo1",
                              {"to": "smo", "smo": "SMO2"})
    assert status == 403 and "другую СМО" in data["error"]["message"]
    status, data = await call(harness, "POST", "/api/v1/requests/1/route", "admin",
                              {"to": "smo", "smo": "NOPE"})
    assert status == 422 and "smo" in data["error"]["fields"]
    status, data = await call(harness, "POST", "/api/v1/requests/1/route", "smo1", {"to": "l2"})
    assert status == 200 and data["level"] == "2" and data["smo"] is None
    assert (await call(harness, "GET", "/api/v1/requests/1", "smo1"))[0] == 404
    assert (await call(harness, "GET", "/api/v1/requests/1", "op201"))[0] == 200
    status, _ = await call(harness, "POST", "/api/v1/requests/1/route", "auditor", {"to": "l2"})
    assert status == 403


async def test_redirect_and_written_appeal_are_answers_with_history(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal_with(["s01-answered-l1"], make_settings, start_service, replay_peer)
    status, data = await call(harness, "POST", "/api/v1/requests/1/route", "op101",
                              {"to": "redirect", "redirected_to": "other"})
    assert status == 422 and "note" in data["error"]["fields"]  # §33: explain where to go
    status, data = await call(harness, "POST", "/api/v1/requests/1/route", "op101",
                              {"to": "redirect", "redirected_to": "rzn",
                               "note": "Горячая линия Росздравнадзора по МО"})
    assert status == 200
    assert (data["redirected_to"], data["status"]) == ("rzn", "answered")
    status, data = await call(harness, "POST", "/api/v1/requests/1/route", "op101",
                              {"to": "written_appeal"})
    assert status == 200 and data["written_appeal_advised"] is True
    actions = [h["action"] for h in data["history"]]
    assert actions == ["route_redirect", "route_written_appeal"]
    assert data["history"][0]["user"] == "op101"


async def test_corruption_report_goes_at_once_to_the_anticorruption_officer(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal_with(["s01-answered-l1"], make_settings, start_service, replay_peer)
    events = harness.services.bus.subscribe()
    assert (await call(harness, "GET", "/api/v1/requests/1", "anticor"))[0] == 404
    version = (await get(harness, 1))["version"]
    status, data = await call(harness, "PATCH", "/api/v1/requests/1", "op101",
                              {"version": version, "corruption": True, "topic": "corruption"})
    assert status == 200, data
    assert (await call(harness, "GET", "/api/v1/requests/1", "anticor"))[0] == 200
    flagged = [n for n in notes_of(events) if n["type"] == "request.corruption"]
    assert flagged and flagged[0]["request_number"] == 1
    assert "corruption_reported" in [h["action"] for h in data["history"]]


def test_deferred_answer_due_same_working_day() -> None:
    settings = load_settings(callback_due_hours=8, workday_end_hour=18,
                             local_timezone="Europe/Moscow")
    tuesday_10 = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)  # 10:00 MSK
    assert default_due(tuesday_10, settings) == datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    tuesday_15 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert default_due(tuesday_15, settings) == datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    friday_20 = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)  # after hours → Monday 18:00
    assert default_due(friday_20, settings) == datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    short = load_settings(callback_due_hours=2)
    assert default_due(tuesday_10, short) == datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


async def test_deferred_answer_lists_due_and_overdue_call_backs_per_operator(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal_with(["s01-answered-l1", "s02-abandoned-queue"], make_settings,
                                 start_service, replay_peer)
    status, data = await call(harness, "POST", "/api/v1/requests/1/defer", "op101",
                              {"contact_phone": "8-916-123-45-67"})
    assert status == 200, data
    assert data["status"] == "deferred" and data["contact_phone"] == "+79161234567"
    assert data["deferred_due_at"] and data["deferred_by"] == "op101"
    status, data = await call(harness, "POST", "/api/v1/requests/2/defer", "op101",
                              {"contact_phone": "84957776655",
                               "due_at": "2026-01-10T12:00:00+03:00"})
    assert status == 200, data
    status, data = await call(harness, "POST", "/api/v1/requests/2/defer", "op101",
                              {"due_at": "вчера"})
    assert status == 422 and "due_at" in data["error"]["fields"]
    status, overdue = await call(harness, "GET", "/api/v1/callbacks?due=overdue", "op101")
    assert [i["number"] for i in overdue["items"]] == [2] and overdue["items"][0]["overdue"]
    status, everything = await call(harness, "GET", "/api/v1/callbacks?due=all", "op101")
    assert sorted(i["number"] for i in everything["items"]) == [1, 2]
    status, today = await call(harness, "GET", "/api/v1/callbacks?due=today", "op101")
    assert 2 in [i["number"] for i in today["items"]]
    status, others = await call(harness, "GET", "/api/v1/callbacks?due=all", "op201")
    assert others["items"] == []  # per operator: op201 owes no call-backs
    status, admin_view = await call(harness, "GET", "/api/v1/callbacks", "admin")
    assert admin_view["total"] == 2
    status, data = await call(harness, "POST", "/api/v1/requests/1/callback/done", "op101",
                              {"result": "Разъяснён порядок записи"})
    assert status == 200 and data["status"] == "answered" and data["deferred_done_at"]
    assert data["history"][-1] == {**data["history"][-1], "action": "callback_done",
                                   "on_time": True}
    status, everything = await call(harness, "GET", "/api/v1/callbacks?due=all", "op101")
    assert [i["number"] for i in everything["items"]] == [2]


async def test_click_to_call_sends_originate_and_links_the_call(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal_with(["s01-answered-l1"], make_settings, start_service, replay_peer)
    services = harness.services
    await wait_for(lambda: services.ami is not None and services.ami.state == "connected")
    status, data = await call(harness, "POST", "/api/v1/requests/1/callback", "op201", {})
    assert status == 200, data
    (originate,) = [a for a in harness.peer.stats.actions if a.get("Action") == "Originate"]
    assert originate["Channel"] == "PJSIP/201"
    assert originate["Context"] == "from-operators"
    assert originate["Exten"] == "89161234567"
    assert originate["Async"] == "true"
    assert originate["Variable"] == "HOTLINE_REQUEST=1"
    assert "88007070561" in originate["CallerID"]
    assert services.callbacks.as_dict() == {"+79161234567": 1}  # request 1's row id
    assert data["history"][-1]["action"] == "callback_call"
    # The PBX now reports the originated call (the recorded call-back from operator 201).
    for item in trace_items(SCENARIOS["s07-callback-outbound"]):
        if item.is_message and not item.is_response and \
                dict(item.pairs).get("Event") != "FullyBooted":
            services.pipeline.feed(headers_of(list(item.pairs)))
    await harness.wait_calls_done()
    detail = await get(harness, 1)
    directions = [c["direction"] for c in detail["calls"]]
    assert directions == ["inbound", "outbound"]
    assert services.callbacks.as_dict() == {}
    async with services.db.session() as session:
        from sqlalchemy import select
        logged = await session.scalar(select(AuditEntry).where(
            AuditEntry.action == "callback_call"))
    assert logged is not None and logged.user_login == "op201"


async def test_click_to_call_recording_is_linked_to_the_request(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal_with(["s01-answered-l1"], make_settings, start_service, replay_peer)
    services = harness.services
    await wait_for(lambda: services.ami is not None and services.ami.state == "connected")
    status, _ = await call(harness, "POST", "/api/v1/requests/1/callback", "op201", {})
    assert status == 200
    for item in trace_items(SCENARIOS["s07-callback-outbound"]):
        if item.is_message and not item.is_response and \
                dict(item.pairs).get("Event") != "FullyBooted":
            services.pipeline.feed(headers_of(list(item.pairs)))
    await harness.wait_calls_done()
    names = [r["file_name"] for r in (await get(harness, 1))["recordings"]]
    assert any(name.startswith("out-89161234567-201") for name in names), names


async def test_click_to_call_without_the_pbx_is_503_in_russian(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal_with(["s01-answered-l1"], make_settings, start_service, replay_peer)
    saved, harness.services.ami = harness.services.ami, None
    try:
        status, data = await call(harness, "POST", "/api/v1/requests/1/callback", "op201", {})
    finally:
        harness.services.ami = saved
    assert status == 503 and data["error"]["code"] == "ami_unavailable"
    assert "АТС" in data["error"]["message"]
    assert harness.services.callbacks.as_dict() == {}


async def test_click_to_call_refused_by_the_pbx_is_502_and_not_left_pending(
        make_settings: Any, start_service: Any, replay_peer: Any, monkeypatch: Any) -> None:
    from hotline.web import control

    async def refusing(_ami: Any, _action: dict[str, str]) -> dict[str, str]:
        return {"Response": "Error", "Message": "Originate failed"}

    harness = await journal_with(["s01-answered-l1"], make_settings, start_service, replay_peer)
    await wait_for(lambda: harness.services.ami is not None
                   and harness.services.ami.state == "connected")
    monkeypatch.setattr(control, "send_originate", refusing)
    status, data = await call(harness, "POST", "/api/v1/requests/1/callback", "op201", {})
    assert status == 502 and data["error"]["code"] == "originate_failed"
    assert data["error"]["message"] == "АТС отклонила вызов: Originate failed"
    assert harness.services.callbacks.as_dict() == {}


async def test_urgent_intervention_records_who_was_contacted_and_the_feedback(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal_with(["s01-answered-l1"], make_settings, start_service, replay_peer)
    status, data = await call(harness, "POST", "/api/v1/requests/1/urgent", "op101",
                              {"feedback": "x"})
    assert status == 422
    assert set(data["error"]["fields"]) == {"medical_org", "contact_person"}
    status, data = await call(harness, "POST", "/api/v1/requests/1/urgent", "op101", {
        "medical_org": "ГБУЗ МО «Подольская ГКБ»",
        "contact_person": "Заместитель главного врача по медчасти Петрова А. А.",
        "contacted_at": "2026-11-25T10:15:00+03:00",
        "action": "Организована госпитализация",
        "feedback": "Пациент госпитализирован в 11:40"})
    assert status == 200, data
    assert data["urgent"] is True and data["urgent_action"] == "Организована госпитализация"
    entry = data["history"][-1]
    assert entry["action"] == "urgent_contact"
    assert entry["contact_person"].startswith("Заместитель")
    assert entry["contacted_at"] == "2026-11-25T07:15:00+00:00"
    assert entry["feedback"] == "Пациент госпитализирован в 11:40"
    await asyncio.sleep(0)
