"""Sign-in hardening: lockout and unlock, logout, CSRF for cookie writes; the audit log API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from journal.audit import audit
from journal.models import User
from journal.users import LOCKOUT_AFTER
from tests.helpers import bearer, create_user, login


async def _login(harness: Any, name: str, password: str) -> tuple[int, Any, Any]:
    async with harness.http.post(harness.url("/api/v1/auth/login"),
                                 json={"login": name, "password": password}) as resp:
        return resp.status, await resp.json(), resp.cookies


async def _service(make_settings: Any, start_service: Any) -> Any:
    harness = await start_service(make_settings(ami_host=None), http=True)
    await create_user(harness.services, "admin", "admin")
    await create_user(harness.services, "op", "operator", extension="101")
    return harness


async def test_lockout_after_five_failures_until_an_admin_unlocks(make_settings: Any,
                                                                 start_service: Any) -> None:
    harness = await _service(make_settings, start_service)
    for _ in range(LOCKOUT_AFTER):
        status, body, _ = await _login(harness, "op", "wrong-password")
        assert status == 401
        assert body["error"]["code"] == "bad_credentials"
    # Now even the right password is refused, with the same answer as a wrong one.
    status, body, _ = await _login(harness, "op", "secret-pass-1")
    assert status == 401
    assert body == {"error": {"code": "bad_credentials", "message": "Неверный логин или пароль"}}

    admin = bearer(await login(harness, "admin"))
    async with harness.http.get(harness.url("/api/v1/users"), headers=admin) as resp:
        users = {u["login"]: u for u in (await resp.json())["items"]}
    assert users["op"]["locked"] is True
    assert users["op"]["failed_logins"] == LOCKOUT_AFTER
    assert users["op"]["locked_until"] is not None
    assert "password_hash" not in users["op"]

    async with harness.http.post(harness.url("/api/v1/users/op/unlock"), headers=admin) as resp:
        assert resp.status == 200
        unlocked_user = (await resp.json())["user"]
    assert unlocked_user["locked"] is False and unlocked_user["locked_until"] is None
    status, body, _ = await _login(harness, "op", "secret-pass-1")
    assert status == 200 and body["user"]["login"] == "op"

    # Failures (with why), the lockout, the unlock and the sign-in are in the audit log.
    async with harness.http.get(harness.url("/api/v1/audit"), headers=admin,
                                params={"action": "login_failed", "limit": "500"}) as resp:
        failed = await resp.json()
    assert failed["total"] == LOCKOUT_AFTER + 1
    assert {item["detail"]["login"] for item in failed["items"]} == {"op"}
    assert [item["detail"]["reason"] for item in failed["items"]] == \
        ["locked"] + ["bad_password"] * LOCKOUT_AFTER
    async with harness.http.get(harness.url("/api/v1/audit"), headers=admin,
                                params={"action": "login_locked_out"}) as resp:
        assert (await resp.json())["total"] == 1
    async with harness.http.get(harness.url("/api/v1/audit"), headers=admin,
                                params={"user": "admin", "action": "user_unlocked"}) as resp:
        (unlocked,) = (await resp.json())["items"]
    assert unlocked["detail"]["login"] == "op" and unlocked["detail"]["was_locked"] is True


async def test_a_sign_in_lockout_does_not_end_the_sessions_already_open(
        make_settings: Any, start_service: Any) -> None:
    """Anyone who knows a login can cause a lockout: it stops sign-ins, not the user's work."""
    harness = await _service(make_settings, start_service)
    token = await login(harness, "op")
    me = harness.url("/api/v1/auth/me")
    for _ in range(LOCKOUT_AFTER):
        await _login(harness, "op", "wrong-password")
    async with harness.http.get(me, headers=bearer(token)) as resp:
        assert resp.status == 200
    async with harness.services.db.session() as session:
        assert await session.scalar(select(User.locked_until).where(User.login == "op"))


async def test_a_good_login_resets_the_failure_count(make_settings: Any,
                                                     start_service: Any) -> None:
    harness = await _service(make_settings, start_service)
    for _ in range(LOCKOUT_AFTER - 1):
        assert (await _login(harness, "op", "wrong-password"))[0] == 401
    assert (await _login(harness, "op", "secret-pass-1"))[0] == 200
    for _ in range(LOCKOUT_AFTER - 1):
        assert (await _login(harness, "op", "wrong-password"))[0] == 401
    assert (await _login(harness, "op", "secret-pass-1"))[0] == 200


async def test_logout_invalidates_the_token(make_settings: Any, start_service: Any) -> None:
    harness = await _service(make_settings, start_service)
    token = await login(harness, "op")
    other = await login(harness, "op")
    async with harness.http.get(harness.url("/api/v1/requests"), headers=bearer(token)) as resp:
        assert resp.status == 200
    async with harness.http.post(harness.url("/api/v1/auth/logout"),
                                 headers=bearer(token)) as resp:
        assert resp.status == 200
    for path in ("/api/v1/requests", "/api/v1/auth/me", "/api/v1/events"):
        async with harness.http.get(harness.url(path), headers=bearer(token)) as resp:
            assert resp.status == 401, path
            assert (await resp.json())["error"]["code"] == "unauthorized"
    # Only that session ended.
    async with harness.http.get(harness.url("/api/v1/requests"), headers=bearer(other)) as resp:
        assert resp.status == 200


async def test_cookie_writes_need_the_csrf_token_bearer_writes_do_not(
        make_settings: Any, start_service: Any) -> None:
    harness = await _service(make_settings, start_service)
    status, body, cookies = await _login(harness, "admin", "secret-pass-1")
    assert status == 200
    session_cookie = cookies["hotline_session"]
    assert session_cookie["httponly"] and session_cookie["samesite"] == "Strict"
    csrf = cookies["hotline_csrf"].value
    assert csrf == body["csrf_token"]
    cookie = {"Cookie": f"hotline_session={session_cookie.value}; hotline_csrf={csrf}"}
    url = harness.url("/api/v1/users/op/unlock")

    async with harness.http.get(harness.url("/api/v1/users"), headers=cookie) as resp:
        assert resp.status == 200  # reads need no CSRF token
    async with harness.http.post(url, headers=cookie) as resp:
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == "csrf"
    async with harness.http.post(url, headers={**cookie, "X-CSRF-Token": "forged"}) as resp:
        assert resp.status == 403
    async with harness.http.post(url, headers={**cookie, "X-CSRF-Token": csrf}) as resp:
        assert resp.status == 200
    async with harness.http.post(url, headers=bearer(body["token"])) as resp:
        assert resp.status == 200  # a bearer token cannot be sent by a foreign page


async def test_audit_log_filters_and_pages(make_settings: Any, start_service: Any) -> None:
    harness = await _service(make_settings, start_service)
    await create_user(harness.services, "auditor", "auditor")
    admin = bearer(await login(harness, "admin"))
    op = bearer(await login(harness, "op"))
    async with harness.services.db.sessions.begin() as session:
        for number in (7, 8, 7):
            audit(session, None, "read_request", number, "127.0.0.1")
    for _ in range(3):
        async with harness.http.get(harness.url("/api/v1/requests"), headers=op) as resp:
            assert resp.status == 200
    auditor = bearer(await login(harness, "auditor"))
    url = harness.url("/api/v1/audit")

    async with harness.http.get(url, headers=auditor,
                                params={"user": "op", "action": "list_requests",
                                        "limit": "2"}) as resp:
        page1 = await resp.json()
    assert page1["total"] == 3 and len(page1["items"]) == 2
    async with harness.http.get(url, headers=auditor,
                                params={"user": "op", "action": "list_requests",
                                        "limit": "2", "offset": "2"}) as resp:
        page2 = await resp.json()
    ids = [i["id"] for i in page1["items"] + page2["items"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 3  # newest first
    item = page1["items"][0]
    assert set(item) >= {"id", "at", "user", "action", "request_number", "remote", "detail"}

    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    async with harness.http.get(url, headers=auditor, params={"from": later}) as resp:
        assert (await resp.json())["total"] == 0
    async with harness.http.get(url, headers=auditor, params={"to": later}) as resp:
        assert (await resp.json())["total"] > 0
    async with harness.http.get(url, headers=admin, params={"request": "7"}) as resp:
        by_request = await resp.json()
    assert by_request["total"] == 2
    assert {i["request_number"] for i in by_request["items"]} == {7}
    for bad in ({"request": "x"}, {"limit": "0"}, {"from": "yesterday"}):
        async with harness.http.get(url, headers=auditor, params=bad) as resp:
            assert resp.status == 400, bad
    async with harness.http.get(url, headers=op) as resp:
        assert resp.status == 403
    # Reading the audit log is itself audited.
    async with harness.http.get(url, headers=admin,
                                params={"action": "read_audit", "user": "auditor"}) as resp:
        assert (await resp.json())["total"] == 4  # refused (400) queries read nothing
