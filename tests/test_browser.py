"""The pages in real headless Chromium (Playwright) against the running service.

- a recorded call (s04 blind transfer to level 2, s05 attended transfer to an SMO) is replayed
  after the operator of extension 101 has signed in: the screen pop shows the request number
  before the call is answered; the administrator finds the request, sees the transfer in the
  call timeline and the recording, closes the request, and the form turns read-only;
- bad input (ЕНП "123", a СНИЛС with a wrong control number) shows Russian messages next to the
  fields and nothing is saved; a concurrent edit gives a version conflict with both versions;
- sign-in errors in Russian and routing by role.

Runs on SQLite only (the database behaviour is covered by the API tests on both backends).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser_support import (
    POP_OBSERVER,
    chromium,
    new_page,
    route_exists,
    screenshot,
    sign_in,
    start_ami,
)
from tests.conftest import TRACES_ROOT, load_meta, service_env, trace_items
from tests.helpers import bearer, create_user, login, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("db_backend", ["sqlite"])]

PASSWORD = "secret-pass-1"
SCENARIOS = {
    "s04": TRACES_ROOT / "s04-blind-transfer-l2",
    "s05": TRACES_ROOT / "s05-attended-transfer-smo",
}


def frames_of(events: list[dict[str, Any]], number: int) -> list[str]:
    return [e["type"] for e in events if e.get("request_number") == number]


async def require_routes(harness: Any, *routes: tuple[str, str]) -> None:
    missing = [f"{m} {p}" for m, p in routes if not await route_exists(harness, m, p)]
    if missing:
        pytest.skip("not built yet: " + ", ".join(missing))


async def api_get(harness: Any, token: str, path: str) -> Any:
    async with harness.http.get(harness.url(path), headers=bearer(token)) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_screen_pop_then_administrator_closes(name: str, make_settings: Any,
                                                    start_service: Any,
                                                    replay_peer: Any) -> None:
    scenario = SCENARIOS[name]
    if not scenario.is_dir():
        pytest.skip(f"trace {scenario} is not available")
    meta = load_meta(scenario)
    expected_transfer = meta["calls"][0]["transfers"][0]
    peer = await replay_peer(trace_items(scenario), speed=3)
    harness = await start_service(
        make_settings(ami_port=peer.port, recordings_dir=scenario / "recordings",
                      smo_names="SMO1=СМО «Здоровье»,SMO2=СМО «Надёжная»",
                      **service_env(meta)),
        http=True, connect_ami=False)
    await require_routes(harness, ("GET", "/api/v1/events"),
                         ("POST", "/api/v1/requests/{number}/close"),
                         ("PATCH", "/api/v1/requests/{number}"))
    services = harness.services
    await create_user(services, "op101", "operator", extension="101")
    await create_user(services, "chief", "admin")
    base = harness.url("").rstrip("/")

    async with chromium() as browser:
        # ---- the operator of extension 101 signs in before the call
        operator = await new_page(browser)
        await operator.add_init_script(POP_OBSERVER)
        await sign_in(operator, base, "op101", PASSWORD)
        await operator.wait_for_url("**/operator")
        await operator.wait_for_selector("#conn[data-state='online']")
        await operator.wait_for_function("window.__hotlineEvents.some(f => f.type === 'hello')")

        start_ami(services)  # the PBX starts sending: the call arrives now

        pop = await operator.wait_for_selector("#pop-number")
        number = int((await pop.text_content() or "").replace("№", "").strip())
        assert await operator.text_content("#pop-caller") == meta["calls"][0]["caller"]
        # The operator follows the call to its end, or until it leaves the fund's review
        # (handed to an SMO, the fund's operator no longer sees it: access rules).
        await operator.wait_for_function(
            "n => window.__hotlineEvents.some(f => f.request_number === n && "
            "(f.type === 'call.ended' || (f.type === 'request.routed' && f.level === 'smo')))",
            arg=number, timeout=40_000)
        events = await operator.evaluate("window.__hotlineEvents")
        seen = await operator.evaluate("window.__popSeen")
        order = frames_of(events, number)
        # The screen pop (DOM card) appeared before the page got the answer frame.
        assert "call.answered" not in seen["types"], seen
        assert seen["text"].strip() == f"№ {number}"
        assert order.index("call.ringing") < order.index("call.answered"), order
        assert "call.transferred" in order, order
        ringing = next(e for e in events if e["type"] == "call.ringing")
        assert ringing["extension"] == "101" and ringing["request_number"] == number
        # The form of the request opened by itself with the request number.
        await operator.wait_for_selector(f"#request-form[data-number='{number}']")
        if expected_transfer["target"] == "smo":
            await operator.wait_for_selector("#call-card[data-state='transferred']")
            assert "СМО «Здоровье»" in (await operator.text_content("#call-detail") or "")
            await operator.wait_for_selector("#closed-banner:not([hidden])")
            assert await operator.locator("#f-full_name").is_disabled()
        else:
            await operator.wait_for_selector("#call-card[data-state='ended']")
        await screenshot(operator, f"{name}-operator-screen-pop")
        assert not operator.console_errors, operator.console_errors

        await harness.wait_calls_done()

        # ---- the administrator finds it by number, sees the transfer, listens, closes
        admin = await new_page(browser)
        await sign_in(admin, base, "chief", PASSWORD)
        await admin.wait_for_url("**/admin**")
        await admin.wait_for_selector("#results tbody tr[data-number]")
        await admin.fill("#q-number", str(number))
        await admin.click("#search-submit")
        row = admin.locator(f"#results tbody tr[data-number='{number}']")
        await row.wait_for()
        assert await admin.locator("#results tbody tr[data-number]").count() == 1
        await row.click()
        await admin.wait_for_selector(f"#request-form[data-number='{number}']")
        transfer = admin.locator(".timeline li[data-type='transferred']")
        await transfer.first.wait_for()
        text = await transfer.first.text_content() or ""
        assert expected_transfer["to"] in text, text
        table = await admin.text_content("table.transfers")
        assert table is not None
        if expected_transfer["target"] == "smo":
            assert "СМО «Здоровье»" in table, table
        else:
            assert "2 уровень" in table, table
        for kind in ("ringing", "answered", "ended"):
            assert await admin.locator(f".timeline li[data-type='{kind}']").count() >= 1
        audio = admin.locator("#recordings audio")
        if await audio.count():
            src = await audio.first.get_attribute("src")
            assert src and src.startswith(f"/api/v1/requests/{number}/recordings/")
            status = await admin.evaluate(
                "async (u) => (await fetch(u, {headers: {Range: 'bytes=0-99'}})).status", src)
            assert status in (200, 206)
        await screenshot(admin, f"{name}-admin-detail")
        widths = await admin.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert widths[0] <= widths[1], widths  # no horizontal scrolling

        await admin.click("#close-request")
        await admin.click("dialog .btn-danger")
        banner = admin.locator("#closed-banner")
        await banner.wait_for(state="visible")
        assert "Заявка закрыта" in (await banner.text_content() or "")
        assert await admin.locator("#save").is_hidden()
        assert await admin.locator("#close-request").is_hidden()
        assert await admin.locator("#f-full_name").is_disabled()
        assert await admin.locator("#f-policy_number").is_disabled()
        assert await admin.locator("#f-summary").is_disabled()
        await screenshot(admin, f"{name}-admin-closed")
        assert not admin.console_errors, admin.console_errors

        # A reload still shows it read-only (from the server, not just the page's state).
        await admin.reload()
        await admin.wait_for_selector(f"#request-form[data-number='{number}']")
        assert await admin.locator("#f-full_name").is_disabled()
        assert "Заявка закрыта" in (await admin.text_content("#closed-banner") or "")

        # The operator's open form follows the close (request.closed over the websocket).
        if expected_transfer["target"] != "smo":
            await operator.wait_for_function(
                "() => (document.querySelector('#closed-banner')?.textContent || '')"
                ".includes('Заявка закрыта')")
            assert await operator.locator("#f-full_name").is_disabled()

    token = await login(harness, "chief")
    detail = await api_get(harness, token, f"/api/v1/requests/{number}")
    assert detail["status"] == "closed" and detail["closed"] is True
    assert detail["closed_by"] == "chief"


async def test_bad_input_is_refused_in_russian_and_conflicts_are_shown(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    scenario = TRACES_ROOT / "s01-answered-l1"
    if not scenario.is_dir():
        pytest.skip(f"trace {scenario} is not available")
    peer = await replay_peer(trace_items(scenario))
    harness = await start_service(make_settings(ami_port=peer.port), http=True)
    await require_routes(harness, ("PATCH", "/api/v1/requests/{number}"))
    await peer.done.wait()
    await harness.wait_calls_done()
    services = harness.services
    await create_user(services, "op101", "operator", extension="101")
    token = await login(harness, "op101")
    listing = await api_get(harness, token, "/api/v1/requests")
    number = listing["items"][0]["number"]
    before = await api_get(harness, token, f"/api/v1/requests/{number}")
    base = harness.url("").rstrip("/")

    async with chromium() as browser:
        page = await new_page(browser)
        await sign_in(page, base, "op101", PASSWORD)
        await page.wait_for_url("**/operator")
        await page.fill("#open-number", str(number))
        await page.click("#open-form button[type='submit']")
        await page.wait_for_selector(f"#request-form[data-number='{number}']")

        # Client-side: ЕНП "123" never leaves the page.
        await page.fill("#f-policy_number", "123")
        await page.fill("#f-full_name", "Иванов Иван Иванович")
        await page.click("#save")
        error = page.locator("#f-policy_number-error")
        await error.wait_for(state="visible")
        assert (await error.text_content()) == "ЕНП должен состоять из 16 цифр"
        assert await page.get_attribute("#f-policy_number", "aria-invalid") == "true"
        assert "не сохранена" in (await page.text_content("#form-banner") or "")
        await screenshot(page, "operator-form-bad-enp")
        after = await api_get(harness, token, f"/api/v1/requests/{number}")
        assert after["version"] == before["version"]
        assert after["policy_number"] is None and after["full_name"] is None

        # Server-side: a СНИЛС of the right shape with a wrong control number → 422 fields.
        await page.fill("#f-policy_number", "")
        await page.fill("#f-snils", "112-233-445 00")
        await page.click("#save")
        snils_error = page.locator("#f-snils-error")
        await snils_error.wait_for(state="visible")
        assert (await snils_error.text_content()) == "Неверное контрольное число СНИЛС"
        after = await api_get(harness, token, f"/api/v1/requests/{number}")
        assert after["version"] == before["version"] and after["full_name"] is None

        # Fixed input saves, with the version.
        await page.fill("#f-snils", "112-233-445 95")
        await page.click("#save")
        await page.wait_for_selector("#form-banner.alert-success")
        saved = await api_get(harness, token, f"/api/v1/requests/{number}")
        assert saved["full_name"] == "Иванов Иван Иванович"
        assert saved["snils"] == "112-233-445 95"
        assert saved["version"] == before["version"] + 1

        # Somebody else edits while the operator types: the page warns, then shows the
        # conflict on save and overwrites nothing. (An untouched form just reloads.)
        await page.fill("#f-summary", "Вопрос о прикреплении к поликлинике")
        async with harness.http.patch(harness.url(f"/api/v1/requests/{number}"),
                                      headers=bearer(token),
                                      json={"summary": "Вопрос о полисе",
                                            "version": saved["version"]}) as resp:
            assert resp.status == 200, await resp.text()
        await page.wait_for_selector("#form-banner.alert-warning")
        assert "изменил другой пользователь" in (await page.text_content("#form-banner") or "")
        await page.click("#save")
        conflict = page.locator("#conflict")
        await conflict.wait_for(state="visible")
        assert "уже изменил другой пользователь" in (await conflict.text_content() or "")
        assert "Вопрос о полисе" in (await conflict.text_content() or "")
        await screenshot(page, "operator-form-version-conflict")
        current = await api_get(harness, token, f"/api/v1/requests/{number}")
        assert current["summary"] == "Вопрос о полисе"
        # The operator decides to keep theirs on top of the current version.
        await page.click("#conflict-keep")
        await page.click("#save")
        await page.wait_for_selector("#form-banner.alert-success")
        final = await api_get(harness, token, f"/api/v1/requests/{number}")
        assert final["summary"] == "Вопрос о прикреплении к поликлинике"
        assert final["version"] == current["version"] + 1

        # A deferred answer (regulation §29) from the action buttons: the server's Russian
        # message shows in the dialog, then the request is deferred.
        await page.click("#act-defer")
        await page.fill("#dlg-contact_phone", "12-34")
        await page.click("dialog button[type='submit']")
        dialog_error = page.locator("#dlg-contact_phone-error")
        await wait_for_text(dialog_error)
        assert "Телефон" in (await dialog_error.text_content() or "")
        await page.fill("#dlg-contact_phone", "8 916 765-43-21")
        await page.click("dialog button[type='submit']")
        await page.wait_for_selector("#req-status .status-deferred")
        deferred = await api_get(harness, token, f"/api/v1/requests/{number}")
        assert deferred["status"] == "deferred"
        assert deferred["contact_phone"] == "+79167654321"
        assert deferred["deferred_due_at"]
        assert not page.console_errors, page.console_errors


async def test_sign_in_errors_and_routing_by_role(make_settings: Any,
                                                  start_service: Any) -> None:
    harness = await start_service(make_settings(ami_host=None), http=True, connect_ami=False)
    services = harness.services
    await create_user(services, "op101", "operator", extension="101")
    await create_user(services, "smo1", "smo", smo="SMO1")
    await create_user(services, "chief", "admin")
    await create_user(services, "audit", "auditor")
    base = harness.url("").rstrip("/")

    async with chromium() as browser:
        page = await new_page(browser, 1280, 800)
        await page.goto(base + "/operator")
        await page.wait_for_url("**/login?next=**")  # not signed in: to the sign-in page
        await page.click("#login-submit")
        assert await page.text_content("#login-error") == "Введите логин и пароль"
        await page.fill("#login", "op101")
        await page.fill("#password", "wrong-password")
        await page.click("#login-submit")
        error = page.locator("#login-error")
        await wait_for_text(error)
        message = await error.text_content() or ""
        assert any("а" <= ch.lower() <= "я" for ch in message), message
        await screenshot(page, "login-error")
        await page.fill("#password", PASSWORD)
        await page.click("#login-submit")
        await page.wait_for_url("**/operator")
        await page.wait_for_selector("#script li[data-step='greeting']")
        await screenshot(page, "operator-idle")

        for login_name, url, title in (("smo1", "**/requests", "СМО"),
                                       ("chief", "**/admin**", "администратора"),
                                       ("audit", "**/admin**", "аудитора")):
            other = await new_page(browser, 1280, 800)
            await sign_in(other, base, login_name, PASSWORD)
            await other.wait_for_url(url)
            await other.wait_for_selector("body[data-ready='1']")
            assert title in (await other.text_content("#console-title") or "")
            audit_tab = other.locator("#tab-audit")
            if login_name == "smo1":
                assert await audit_tab.is_hidden()
            else:
                await audit_tab.click()
                await other.wait_for_selector("#audit tbody tr[data-action]")
                actions = await other.locator("#audit tbody tr[data-action]").evaluate_all(
                    "rows => rows.map(r => r.dataset.action)")
                assert "login" in actions
                if login_name == "chief":
                    await screenshot(other, "admin-audit-log")
            assert not other.console_errors, other.console_errors
            await other.context.close()


async def wait_for_text(locator: Any) -> None:
    await locator.wait_for(state="visible")

    async def has_text() -> bool:
        return bool((await locator.text_content() or "").strip())

    await wait_for(has_text, 10)
