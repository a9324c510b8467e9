"""Issue 10 ("Hardening"), items 1-3: parallel guesses are all counted, password hashing does
not hold up the event loop, a lockout is time-limited and indistinguishable from a wrong
password, and one address is limited in its failures."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from sqlalchemy import select, update

import journal.passwords as passwords
from config import ConfigError, load_settings
from hotline.web.signin_guard import SignInGuard
from journal.models import AuditEntry, User
from journal.users import (
    LOCKOUT_AFTER,
    LOCKOUT_FIRST_S,
    LOCKOUT_MAX_S,
    begin_sign_in,
    lockout_seconds,
)
from tests.helpers import create_user

RIGHT = "secret-pass-1"
REFUSED = {"error": {"code": "bad_credentials", "message": "Неверный логин или пароль"}}


class CheckLog:
    """Wraps the hashing pool's check: which hashes were checked, on which thread, how many
    at once."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.real: list[str] = []  # stored hashes checked (a dummy check records "dummy")
        self.threads: set[int] = set()
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()
        original = passwords._verify

        def verify(stored_hash: str | None, password: str) -> bool:
            with self._lock:
                self.real.append(stored_hash or "dummy")
                self.threads.add(threading.get_ident())
                self.running += 1
                self.most_at_once = max(self.most_at_once, self.running)
            try:
                return original(stored_hash, password)
            finally:
                with self._lock:
                    self.running -= 1

        monkeypatch.setattr(passwords, "_verify", verify)


async def _service(make_settings: Any, start_service: Any, **settings: Any) -> Any:
    harness = await start_service(make_settings(ami_host=None, **settings), http=True)
    await create_user(harness.services, "admin", "admin")
    await create_user(harness.services, "op", "operator", extension="101")
    await create_user(harness.services, "op2", "operator", extension="102")
    return harness


async def _login(harness: Any, name: str, password: str,
                 headers: dict[str, str] | None = None) -> tuple[int, Any, float, Any]:
    started = time.perf_counter()
    async with harness.http.post(harness.url("/api/v1/auth/login"), headers=headers,
                                 json={"login": name, "password": password}) as resp:
        body = await resp.json()
        return resp.status, body, time.perf_counter() - started, resp.headers


async def _user(harness: Any, login: str) -> User:
    async with harness.services.db.session() as session:
        user = await session.scalar(select(User).where(User.login == login))
        assert user is not None
        return user


# ------------------------------------------------------------------ item 1
async def test_parallel_wrong_passwords_are_all_counted_and_lock_the_account(
        make_settings: Any, start_service: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    harness = await _service(make_settings, start_service)
    op_hash = (await _user(harness, "op")).password_hash
    checks = CheckLog(monkeypatch)
    results = await asyncio.gather(*(_login(harness, "op", f"guess-{i}") for i in range(40)))
    assert all((status, body) == (401, REFUSED) for status, body, _, _ in results)
    # Only the attempts counted before the lockout had their guess checked; the other 35
    # were refused unchecked (a dummy hash was checked instead, for the timing).
    assert checks.real.count(op_hash) == LOCKOUT_AFTER
    assert len(checks.real) == 40
    user = await _user(harness, "op")
    assert user.failed_logins == LOCKOUT_AFTER
    assert user.locked_until is not None
    assert (await _login(harness, "op", RIGHT))[:2] == (401, REFUSED)


async def test_concurrent_attempts_get_distinct_failure_counts(make_settings: Any,
                                                               start_service: Any) -> None:
    """The count is taken in one statement: no two attempts read the same value."""
    harness = await start_service(make_settings(ami_host=None))
    await create_user(harness.services, "op", "operator")
    db = harness.services.db

    async def attempt() -> Any:
        async with db.sessions.begin() as session:
            return await begin_sign_in(session, "op")

    attempts = await asyncio.gather(*(attempt() for _ in range(20)))
    checked = [a for a in attempts if a.refused is None]
    assert len(checked) == LOCKOUT_AFTER
    assert sum(a.locked_now for a in attempts) == 1
    assert {a.refused for a in attempts if a.refused} == {"locked"}
    async with db.session() as session:
        assert await session.scalar(select(User.failed_logins)) == LOCKOUT_AFTER


# ------------------------------------------------------------------ item 2
async def test_password_checks_run_off_the_event_loop_a_few_at_a_time(
        make_settings: Any, start_service: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    harness = await _service(make_settings, start_service)
    # What one check costs on this machine now (off the loop, as a yardstick).
    stored = (await _user(harness, "op")).password_hash
    started = time.perf_counter()
    await asyncio.to_thread(passwords._verify, stored, RIGHT)
    one_check_s = time.perf_counter() - started
    checks = CheckLog(monkeypatch)
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - started - 0.005)

    ticking = asyncio.create_task(ticker())
    # Four at once per account: a fifth would be refused while they are checked (each
    # attempt counts as a failure until its password proves right).
    results = await asyncio.gather(*(_login(harness, name, RIGHT)
                                     for name in ("admin", "op", "op2") * (LOCKOUT_AFTER - 1)))
    stop.set()
    await ticking
    assert [r[0] for r in results] == [200] * 3 * (LOCKOUT_AFTER - 1)
    assert threading.get_ident() not in checks.threads
    assert 1 <= checks.most_at_once <= passwords.MAX_CONCURRENT_HASHES
    # On the loop, each check stalled it for its whole duration (~100 ms; 12 in a row).
    assert max(lags) < one_check_s / 2, \
        f"the event loop stalled for {max(lags) * 1000:.0f} ms (a check: {one_check_s * 1000:.0f})"


# ------------------------------------------------------------------ item 3
async def test_a_locked_account_answers_like_a_wrong_password_in_the_same_time(
        make_settings: Any, start_service: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    harness = await _service(make_settings, start_service)
    for _ in range(LOCKOUT_AFTER):
        await _login(harness, "op", "wrong-password")
    checks = CheckLog(monkeypatch)
    timings: dict[str, list[float]] = {"locked": [], "wrong": [], "unknown": []}
    for _ in range(5):
        for kind, name, password in (("locked", "op", RIGHT), ("wrong", "op2", "wrong-pass"),
                                     ("unknown", "nobody", RIGHT)):
            status, body, took, _ = await _login(harness, name, password)
            assert (status, body) == (401, REFUSED), kind
            timings[kind].append(took)
        await _login(harness, "op2", RIGHT)  # keep op2 below its own lockout
    # Every refusal did exactly one password check (the locked and unknown ones on a dummy).
    assert len(checks.real) == 3 * 5 + 5
    wrong = statistics.median(timings["wrong"])
    for kind in ("locked", "unknown"):
        assert statistics.median(timings[kind]) > 0.5 * wrong, (kind, timings)


async def test_a_lockout_expires_and_doubles_with_each_further_failure(
        make_settings: Any, start_service: Any) -> None:
    harness = await start_service(make_settings(ami_host=None))
    await create_user(harness.services, "op", "operator")
    db = harness.services.db
    now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)

    async def fail(at: datetime) -> Any:
        async with db.sessions.begin() as session:
            return await begin_sign_in(session, "op", now=at)

    async def locked_until() -> datetime:
        async with db.session() as session:
            value = await session.scalar(select(User.locked_until))
        assert value is not None and value.tzinfo is UTC  # aware UTC on both backends
        return value

    for _ in range(LOCKOUT_AFTER - 1):
        assert (await fail(now)).refused is None
    assert not (await fail(now)).refused  # the fifth is still checked, and locks
    assert await locked_until() == now + timedelta(seconds=LOCKOUT_FIRST_S)
    assert (await fail(now + timedelta(seconds=59))).refused == "locked"
    expected = float(LOCKOUT_FIRST_S)
    at = now
    for _ in range(6):  # each failure after a lockout ended locks for twice as long
        at = await locked_until()
        attempt = await fail(at)
        assert attempt.refused is None and attempt.locked_now
        expected = min(expected * 2, LOCKOUT_MAX_S)
        assert await locked_until() == at + timedelta(seconds=expected)
    assert expected == LOCKOUT_MAX_S  # capped
    assert lockout_seconds(LOCKOUT_AFTER - 1) is None
    assert lockout_seconds(10_000) == LOCKOUT_MAX_S


async def test_after_the_lockout_the_right_password_signs_in(make_settings: Any,
                                                             start_service: Any) -> None:
    harness = await _service(make_settings, start_service)
    for _ in range(LOCKOUT_AFTER):
        await _login(harness, "admin", "wrong-password")
    assert (await _login(harness, "admin", RIGHT))[0] == 401
    async with harness.services.db.sessions.begin() as session:  # a minute later
        await session.execute(update(User).where(User.login == "admin").values(
            locked_until=datetime.now(UTC) - timedelta(seconds=1)))
    status, body, _, _ = await _login(harness, "admin", RIGHT)
    assert status == 200 and body["user"]["login"] == "admin"
    user = await _user(harness, "admin")
    assert user.failed_logins == 0 and user.locked_until is None


async def test_one_address_is_limited_in_its_failures(make_settings: Any,
                                                      start_service: Any) -> None:
    harness = await _service(make_settings, start_service, signin_failures_per_source=3)
    for name in ("op", "op2", "nobody"):  # failures on any login count for the address
        assert (await _login(harness, name, "wrong-password"))[0] == 401
    # X-Forwarded-For is not believed unless the peer is a trusted proxy.
    with structlog.testing.capture_logs() as logs:
        for _ in range(2):
            status, body, _took, headers = await _login(
                harness, "admin", RIGHT, headers={"X-Forwarded-For": "10.9.9.9"})
            assert status == 429
            assert body["error"]["code"] == "too_many_attempts"
            assert "Слишком много неудачных попыток" in body["error"]["message"]
            assert 1 <= int(headers["Retry-After"]) <= 300
    warnings = [e for e in logs if e["event"] == "signin.source_throttled"]
    assert len(warnings) == 1 and warnings[0]["source"] == "127.0.0.1"
    async with harness.http.get(harness.url("/metrics")) as resp:
        metrics = await resp.text()
    assert "hotline_signin_throttled_total 2" in metrics
    assert "hotline_signin_failures_total 3" in metrics


async def test_behind_a_trusted_proxy_each_client_address_is_limited_on_its_own(
        make_settings: Any, start_service: Any) -> None:
    harness = await _service(make_settings, start_service, signin_failures_per_source=2,
                             trusted_proxies="127.0.0.1")
    office = {"X-Forwarded-For": "203.0.113.7"}
    elsewhere = {"X-Forwarded-For": "198.51.100.1, 203.0.113.9"}  # the left part is the client's
    for _ in range(2):
        assert (await _login(harness, "op", "wrong-password", office))[0] == 401
    assert (await _login(harness, "op2", RIGHT, office))[0] == 429
    assert (await _login(harness, "op2", RIGHT, elsewhere))[0] == 200
    async with harness.services.db.session() as session:
        remotes = list(await session.scalars(select(AuditEntry.remote).order_by(AuditEntry.id)))
    assert remotes == ["203.0.113.7", "203.0.113.7", "203.0.113.9"]


def test_the_failure_window_slides_and_warns_once_per_window() -> None:
    clock = [1000.0]
    guard = SignInGuard(limit=3, window_s=60, clock=lambda: clock[0])
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            assert guard.retry_after("10.0.0.1") is None
            guard.failed("10.0.0.1")
            clock[0] += 10
        assert guard.retry_after("10.0.0.1") == pytest.approx(30)
        assert guard.retry_after("10.0.0.2") is None
        clock[0] += 31  # the first failure left the window
        assert guard.retry_after("10.0.0.1") is None
        guard.failed("10.0.0.1")
        assert guard.retry_after("10.0.0.1") is not None  # still within the warned window
        clock[0] += 60
        guard.failed("10.0.0.1")
        guard.failed("10.0.0.1")
        guard.failed("10.0.0.1")
        assert guard.retry_after("10.0.0.1") is not None  # a new window: warned again
    assert [e["event"] for e in logs] == ["signin.source_throttled"] * 2
    assert guard.throttled_total == 3
    small = SignInGuard(limit=1, window_s=60, max_sources=2, clock=lambda: clock[0])
    for n in range(5):
        small.failed(f"10.0.1.{n}")
    assert small.retry_after("10.0.1.0") is None  # forgotten: memory stays bounded
    assert small.retry_after("10.0.1.4") is not None


def test_trusted_proxies_setting_names_itself_when_wrong() -> None:
    assert load_settings(trusted_proxies="10.0.0.0/8, 127.0.0.1").trusted_proxies == \
        ["10.0.0.0/8", "127.0.0.1"]
    with pytest.raises(ConfigError, match=r"^HOTLINE_TRUSTED_PROXIES: "):
        load_settings(trusted_proxies="proxy.local")
