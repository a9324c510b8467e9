"""Issue 15 item 1 in Chromium: the operator's "Пропущенные" list (newest first, wait, the
caller's other requests), a call-back round trip from the page (click → Originate → the PBX's
call-back call → called back), an attempt marked by hand, and the administrator's overdue list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from journal.models import Request
from telephony.framing import headers_of
from tests.browser_support import chromium, new_page, screenshot, sign_in
from tests.conftest import trace_items
from tests.helpers import wait_for
from tests.test_workflow import SCENARIOS, call, get, journal_with

PASSWORD = "secret-pass-1"


async def test_missed_calls_list_and_call_back_round_trip(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal_with(["s02-abandoned-queue", "s23-ivr-abandon"], make_settings,
                                 start_service, replay_peer)
    services = harness.services
    await wait_for(lambda: services.ami is not None and services.ami.state == "connected")
    # The citizen of the newest missed call left a mobile number (the one s07 calls back).
    status, _ = await call(harness, "PATCH", "/api/v1/requests/2", "admin",
                           {"contact_phone": "+79161234567"})
    assert status == 200
    base = harness.url("").rstrip("/")
    async with chromium() as browser:
        page = await new_page(browser)
        await sign_in(page, base, "op201", PASSWORD)
        await page.wait_for_url("**/operator")
        await page.wait_for_selector("#missed li[data-number='1']")
        numbers = await page.eval_on_selector_all(
            "#missed .missed-item", "items => items.map(i => Number(i.dataset.number))")
        assert numbers == [2, 1]  # newest first
        newest = page.locator("#missed li[data-number='2']")
        assert "ранее обращался: 1" in (await newest.text_content() or "")
        assert "Ждал" in (await newest.text_content() or "")
        assert await page.text_content("#missed-title .missed-count") == "2"

        # Dialled by hand from the desk phone: no answer.
        await page.click("#missed li[data-number='1'] .missed-mark-no_answer")
        await page.locator("#missed li[data-number='1'] .missed-tries",
                           has_text="1 попытка из 3").wait_for()

        # Called back from the page: the operator's phone rings first (Originate) ...
        await page.click("#missed li[data-number='2'] .missed-call")
        await wait_for(lambda: any(a.get("Action") == "Originate"
                                   for a in harness.peer.stats.actions))
        originate = next(a for a in harness.peer.stats.actions if a.get("Action") == "Originate")
        assert originate["Channel"] == "PJSIP/201" and originate["Exten"] == "89161234567"
        # ... then the PBX reports the call-back call: the citizen answered.
        for item in trace_items(SCENARIOS["s07-callback-outbound"]):
            if item.is_message and not item.is_response and \
                    dict(item.pairs).get("Event") != "FullyBooted":
                services.pipeline.feed(headers_of(list(item.pairs)))
        await harness.wait_calls_done()
        await page.wait_for_selector("#missed li[data-number='2']", state="detached")
        assert await page.text_content("#missed-title .missed-count") == "1"
        await screenshot(page, "operator-missed-calls")
        assert not page.console_errors, page.console_errors  # type: ignore[attr-defined]
    detail = await get(harness, 2)
    assert detail["result"] == "Перезвонили"
    assert [c["direction"] for c in detail["calls"]] == ["inbound", "outbound"]


async def test_administrator_sees_overdue_missed_calls(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal_with(["s02-abandoned-queue", "s23-ivr-abandon"], make_settings,
                                 start_service, replay_peer, missed_callback_hours=1)
    async with harness.services.db.sessions.begin() as session:
        await session.execute(update(Request).where(Request.number == 1).values(
            created_at=datetime.now(UTC) - timedelta(hours=3)))
    base = harness.url("").rstrip("/")
    async with chromium() as browser:
        page = await new_page(browser)
        await sign_in(page, base, "admin", PASSWORD)
        await page.wait_for_url("**/admin**")
        item = page.locator("#missed-overdue li[data-number='1']")
        await item.wait_for()
        assert "просрочен" in (await item.text_content() or "")
        assert await page.locator("#missed-overdue li[data-number='2']").count() == 0
        await screenshot(page, "admin-missed-overdue")
        # The operator's list marks it overdue too.
        other = await new_page(browser)
        await sign_in(other, base, "op101", PASSWORD)
        await other.wait_for_url("**/operator")
        await other.wait_for_selector("#missed li[data-number='1'].overdue")
        # Reached at last (dialled by hand): the overdue panel empties and hides.
        await page.click("#missed-overdue li[data-number='1'] .missed-mark-answered")
        await page.wait_for_selector("#missed-overdue-box", state="hidden")
        await other.wait_for_selector("#missed li[data-number='1']", state="detached")
        assert not page.console_errors, page.console_errors  # type: ignore[attr-defined]
        assert not other.console_errors, other.console_errors  # type: ignore[attr-defined]
    assert (await get(harness, 1))["result"] == "Перезвонили"
