"""Missed calls (issue 15 item 1): an abandoned inbound call lands in the fund operators'
"Пропущенные" list; call-back attempts — from the call placed through the page, or recorded by
hand — count up to the configured number and fill the request's result; a later answered call
from the same number settles it by itself; overdue ones are the administrator's to see. The
current-call card of a page (re)opened mid-call carries the caller history the pop had."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from journal.callback_attempts import gave_up_text, result_to_fill, settlement
from journal.models import CallbackAttempt, Request
from telephony.callevents import CallEnded, CallStarted
from telephony.framing import headers_of
from telephony.trace import refresh_ids
from tests.conftest import trace_items
from tests.helpers import wait_for
from tests.test_workflow import SCENARIOS, call, get, journal_with

ALL = "/api/v1/missed?state=all&days=92"


async def missed(harness: Any, who: str = "op101", query: str = "state=all&days=92") -> Any:
    status, data = await call(harness, "GET", f"/api/v1/missed?{query}", who)
    assert status == 200, data
    return data


async def test_abandoned_calls_are_listed_newest_first_with_wait_and_caller_history(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    # s02: abandoned in the queue; s23: abandoned in the announcement — the same caller.
    harness = await journal_with(["s01-answered-l1", "s02-abandoned-queue", "s23-ivr-abandon"],
                                 make_settings, start_service, replay_peer)
    data = await missed(harness)
    assert [i["number"] for i in data["items"]] == [3, 2]  # s01 was answered: not missed
    newest, oldest = data["items"]
    assert newest["caller_number"] == "84957776655"
    assert newest["wait_s"] is not None and 0 <= newest["wait_s"] < 60  # (replayed fast)
    assert oldest["queue"] is not None  # s02 waited in a queue
    assert [h["number"] for h in newest["history"]] == [2]  # the caller's other request
    assert oldest["history"] == []
    assert newest["state"] == "open" and newest["attempts"] == []
    assert newest["max_attempts"] == 3 and newest["answered_later"] is None


async def test_hand_recorded_attempts_count_and_fill_the_result(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal_with(["s02-abandoned-queue"], make_settings, start_service,
                                 replay_peer, missed_callback_attempts=2)
    status, data = await call(harness, "POST", "/api/v1/requests/1/callback/attempt", "op101",
                              {"result": "maybe"})
    assert status == 422 and "result" in data["error"]["fields"]
    status, data = await call(harness, "POST", "/api/v1/requests/1/callback/attempt", "op101",
                              {"result": "no_answer"})
    assert status == 200, data
    assert data["result"] is None and data["history"][-1]["action"] == "callback_attempt"
    item = (await missed(harness))["items"][0]
    assert (item["state"], item["failed_attempts"]) == ("open", 1)
    assert item["attempts"][0] == {**item["attempts"][0], "result": "no_answer",
                                   "source": "manual", "user": "op101"}
    status, data = await call(harness, "POST", "/api/v1/requests/1/callback/attempt", "op101",
                              {"result": "busy", "note": "короткие гудки"})
    assert status == 200
    assert data["result"] == "Не дозвонились после 2 попыток"
    item = (await missed(harness))["items"][0]
    assert item["state"] == "gave_up" and item["overdue"] is False
    assert (await missed(harness, query="state=open&days=92"))["items"] == []
    assert [i["number"] for i in (await missed(harness, query="state=settled&days=92"))["items"]] \
        == [1]
    # The citizen is reached at last: the result says so.
    status, data = await call(harness, "POST", "/api/v1/requests/1/callback/attempt", "op101",
                              {"result": "answered"})
    assert status == 200 and data["result"] == "Перезвонили"
    assert data["status"] == "in_progress"
    assert (await missed(harness))["items"][0]["state"] == "called_back"


async def test_attempt_on_an_answered_call_or_closed_request_is_refused(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal_with(["s01-answered-l1", "s02-abandoned-queue"], make_settings,
                                 start_service, replay_peer)
    status, data = await call(harness, "POST", "/api/v1/requests/1/callback/attempt", "op101",
                              {"result": "answered"})
    assert status == 409 and data["error"]["code"] == "not_missed"
    status, _ = await call(harness, "POST", "/api/v1/requests/2/callback/attempt", "auditor",
                           {"result": "answered"})
    assert status == 403
    status, _ = await call(harness, "POST", "/api/v1/requests/2/close", "admin", {})
    assert status == 200
    status, data = await call(harness, "POST", "/api/v1/requests/2/callback/attempt", "op101",
                              {"result": "answered"})
    assert status == 409 and data["error"]["code"] == "closed"
    assert (await missed(harness))["items"][0]["state"] == "closed"


async def test_an_operators_written_result_is_kept(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal_with(["s02-abandoned-queue"], make_settings, start_service,
                                 replay_peer)
    status, _ = await call(harness, "PATCH", "/api/v1/requests/1", "op101",
                           {"result": "Дан ответ по телефону"})
    assert status == 200
    status, data = await call(harness, "POST", "/api/v1/requests/1/callback/attempt", "op101",
                              {"result": "answered"})
    assert status == 200 and data["result"] == "Дан ответ по телефону"


async def test_a_later_answered_call_from_the_same_number_settles_it(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal_with(["s02-abandoned-queue", "s01-answered-l1"], make_settings,
                                 start_service, replay_peer)
    data = await missed(harness)
    assert data["items"][0]["state"] == "open"  # different numbers: not settled
    async with harness.services.db.sessions.begin() as session:  # the same caller now
        await session.execute(update(Request).where(Request.number == 1)
                              .values(caller_normalized="+79161234567"))
    (item,) = (await missed(harness))["items"]
    assert item["state"] == "called_again"
    assert item["answered_later"]["number"] == 2 and item["overdue"] is False
    assert (await missed(harness, query="state=open&days=92"))["items"] == []


async def test_overdue_missed_calls_are_the_administrators_to_see(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal_with(["s02-abandoned-queue"], make_settings, start_service,
                                 replay_peer, missed_callback_hours=1)
    async with harness.services.db.sessions.begin() as session:
        await session.execute(update(Request).values(
            created_at=datetime.now(UTC) - timedelta(minutes=30)))
    data = await missed(harness, "admin", "state=overdue")
    assert data["items"] == [] and data["overdue"] == 0
    async with harness.services.db.sessions.begin() as session:
        await session.execute(update(Request).values(
            created_at=datetime.now(UTC) - timedelta(hours=2)))
    data = await missed(harness, "admin", "state=overdue")
    assert [i["number"] for i in data["items"]] == [1] and data["overdue"] == 1
    assert data["items"][0]["overdue"] is True
    status, data = await call(harness, "GET", "/api/v1/missed?state=overdue", "op101")
    assert status == 403
    for who, expected in (("op101", 200), ("admin", 200), ("smo1", 403), ("auditor", 403),
                          ("anticor", 403)):
        status, _ = await call(harness, "GET", "/api/v1/missed", who)
        assert status == expected, who
    for query in ("state=nope", "days=0", "days=93", "limit=x", "days=٣"):
        status, data = await call(harness, "GET", f"/api/v1/missed?{query}", "admin")
        assert status == 400 and data["error"]["code"] == "bad_parameter", query


async def test_call_back_from_the_page_is_an_attempt_from_the_calls_outcome(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal_with(["s02-abandoned-queue"], make_settings, start_service,
                                 replay_peer)
    services = harness.services
    await wait_for(lambda: services.ami is not None and services.ami.state == "connected")
    # The citizen left a mobile number when asked: the call-back dials it (as s07 did).
    status, _ = await call(harness, "PATCH", "/api/v1/requests/1", "op201",
                           {"contact_phone": "+79161234567"})
    assert status == 200
    status, data = await call(harness, "POST", "/api/v1/requests/1/callback", "op201", {})
    assert status == 200, data
    for item in trace_items(SCENARIOS["s07-callback-outbound"]):
        if item.is_message and not item.is_response and \
                dict(item.pairs).get("Event") != "FullyBooted":
            services.pipeline.feed(headers_of(list(item.pairs)))
    await harness.wait_calls_done()
    detail = await get(harness, 1)
    assert [c["direction"] for c in detail["calls"]] == ["inbound", "outbound"]
    assert detail["result"] == "Перезвонили"
    (item,) = (await missed(harness))["items"]
    assert item["state"] == "called_back"
    assert item["attempts"] == [{**item["attempts"][0], "result": "answered", "source": "call",
                                 "user": None}]


async def test_unanswered_call_backs_count_until_the_request_says_not_reached(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal_with(["s02-abandoned-queue"], make_settings, start_service,
                                 replay_peer, missed_callback_attempts=2)
    intake = harness.services.intake
    request_id = (await get(harness, 1))["calls"][0]["id"]  # (the call id: only to exist)
    assert request_id
    async with harness.services.db.session() as session:
        row_id = await session.scalar(select(Request.id).where(Request.number == 1))
    at = datetime.now(UTC)
    for n in (1, 2):
        assert row_id is not None
        intake.callbacks.expect("+74957776655", row_id)
        linkedid = f"9000000{n}.1"
        await intake.apply([
            CallStarted(linkedid, linkedid, "outbound", "201", "84957776655", "PJSIP/201-1", at),
            CallEnded(linkedid, "abandoned", "hangup", at + timedelta(seconds=30))])
    async with harness.services.db.session() as session:
        results = list(await session.scalars(select(CallbackAttempt.result)))
    assert results == ["no_answer", "no_answer"]
    assert (await get(harness, 1))["result"] == "Не дозвонились после 2 попыток"
    assert (await missed(harness))["items"][0]["state"] == "gave_up"
    # Replaying the same call-back (reconnect) adds no attempt.
    await intake.apply([CallEnded("90000002.1", "abandoned", "hangup", at)])
    async with harness.services.db.session() as session:
        assert len(list(await session.scalars(select(CallbackAttempt.id)))) == 2


async def test_page_reopened_mid_call_gets_the_history_the_pop_had(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal_with(["s01-answered-l1", "s04-blind-transfer-l2"], make_settings,
                                 start_service, replay_peer)
    services = harness.services
    events = services.bus.subscribe()
    # The same caller rings again; the call is still going on (no hang-up fed yet).
    items = [item for item in refresh_ids(trace_items(SCENARIOS["s01-answered-l1"]), 3)
             if item.is_message and not item.is_response
             and dict(item.pairs).get("Event") != "FullyBooted"]
    cut = next(i for i, item in enumerate(items) if dict(item.pairs).get("Event") == "Hangup")
    for item in items[:cut]:
        services.pipeline.feed(headers_of(list(item.pairs)))
    pops: list[dict[str, Any]] = []

    def popped() -> bool:
        while not events.queue.empty():
            note = events.queue.get_nowait().frame()
            if note["type"] == "call.ringing" and note["request_number"] == 3:
                pops.append(note)
        return bool(pops)
    await wait_for(popped)
    status, data = await call(harness, "GET", "/api/v1/calls/active", "op101")
    assert status == 200
    (active,) = [c for c in data["items"] if c["request_number"] == 3]
    assert [h["number"] for h in pops[0]["history"]] == [2, 1]
    assert active["history"] == pops[0]["history"]


def test_settlement_rules() -> None:
    assert settlement([], 3) == ("open", None)
    assert settlement(["no_answer", "busy"], 3) == ("open", None)
    assert settlement(["no_answer", "busy", "no_answer"], 3) == ("gave_up",
                                                                 "Не дозвонились после 3 попыток")
    assert settlement(["no_answer", "answered"], 1) == ("called_back", "Перезвонили")
    assert gave_up_text(1) == "Не дозвонились после 1 попытки"
    assert gave_up_text(21) == "Не дозвонились после 21 попытки"
    assert gave_up_text(11) == "Не дозвонились после 11 попыток"
    assert result_to_fill(None, "Перезвонили") == "Перезвонили"
    assert result_to_fill("Не дозвонились после 3 попыток", "Перезвонили") == "Перезвонили"
    assert result_to_fill("Дан ответ", "Перезвонили") is None
    assert result_to_fill("x", None) is None
