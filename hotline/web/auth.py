"""Sign-in: bearer token or session cookie; CSRF for cookie-authenticated writes."""

from __future__ import annotations

import hmac
import math
from collections.abc import Awaitable, Callable

from aiohttp import web

from hotline.web.context import (
    SERVICES,
    SESSION_CACHE,
    SESSION_ENDED_HOOKS,
    SIGNIN_GUARD,
    TOKEN,
    USER,
)
from hotline.web.errors import ApiError, error_response
from journal.audit import audit
from journal.passwords import verify_off_loop
from journal.users import (
    Principal,
    ResolvedSession,
    begin_sign_in,
    close_session,
    finish_sign_in,
    open_session,
    principal_of,
    resolve_session,
    token_digest,
)

COOKIE = "hotline_session"
CSRF_COOKIE = "hotline_csrf"
CSRF_HEADER = "X-CSRF-Token"
PUBLIC_PATHS = frozenset({"/api/v1/auth/login", "/api/v1/openapi.json", "/healthz", "/metrics"})
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _token(request: web.Request) -> tuple[str | None, bool]:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip(), False
    if request.path == "/api/v1/events" and request.query.get("token"):
        return request.query["token"], False
    cookie = request.cookies.get(COOKIE)
    return (cookie, True) if cookie else (None, False)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/api/") or request.path in PUBLIC_PATHS:
        return await handler(request)
    token, from_cookie = _token(request)
    if not token:
        return error_response(401, "unauthorized", "Требуется вход в систему")
    found = await _resolve(request, token)
    if found is None:
        return error_response(401, "unauthorized", "Сессия недействительна или истекла")
    if from_cookie and request.method in UNSAFE:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent, found.csrf):
            return error_response(403, "csrf", "Нет или неверный CSRF-токен")
    request[USER] = found.user
    request[TOKEN] = token
    return await handler(request)


async def _resolve(request: web.Request, token: str) -> ResolvedSession | None:
    cache = request.app[SESSION_CACHE]
    found = cache.get(token)
    if found is None:
        async with request.app[SERVICES].db.session() as session:
            found = await resolve_session(session, token)
        if found is not None:
            cache.put(token, found)
    return found


def current_user(request: web.Request) -> Principal:
    user = request.get(USER)
    if not isinstance(user, Principal):
        raise ApiError(401, "unauthorized", "Требуется вход в систему")
    return user


def remote_of(request: web.Request) -> str | None:
    """The client's address (behind a trusted proxy: from X-Forwarded-For)."""
    guard = request.app.get(SIGNIN_GUARD)
    if guard is None:
        return request.remote
    return guard.client_address(request.remote, request.headers.get("X-Forwarded-For"))


BAD_CREDENTIALS = ("bad_credentials", "Неверный логин или пароль")


async def login(request: web.Request) -> web.Response:
    """Sign in. Every refusal (wrong password, unknown login, locked account) gets the same
    401 after the same work, one password check: nothing tells which it was."""
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "bad_json", "Тело запроса должно быть JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("login"), str) \
            or not isinstance(body.get("password"), str):
        raise ApiError(422, "invalid", "Укажите логин и пароль")
    services = request.app[SERVICES]
    guard = request.app[SIGNIN_GUARD]
    source = remote_of(request)
    wait_s = guard.retry_after(source)
    if wait_s is not None:
        minutes = max(1, math.ceil(wait_s / 60))
        response = error_response(
            429, "too_many_attempts",
            f"Слишком много неудачных попыток входа с этого адреса. "
            f"Повторите через {minutes} мин.")
        response.headers["Retry-After"] = str(math.ceil(wait_s))
        return response
    login_name: str = body["login"]
    async with services.db.sessions.begin() as session:
        attempt = await begin_sign_in(session, login_name)
    # Outside any transaction: the check takes ~100 ms of a hashing thread.
    accepted = await verify_off_loop(attempt.password_hash, body["password"])
    async with services.db.sessions.begin() as session:
        if accepted and attempt.user_id is not None:
            user = await finish_sign_in(session, attempt.user_id)
            token, csrf = await open_session(session, user, services.settings.session_hours)
            principal = principal_of(user)
            audit(session, principal, "login", remote=source)
        else:
            audit(session, None, "login_failed", remote=source, login=login_name[:80],
                  reason=attempt.refused or "bad_password")
            if attempt.locked_now:
                audit(session, None, "login_locked_out", remote=source, login=login_name[:80])
    if not accepted:
        guard.failed(source)
        if attempt.locked_now:
            guard.lockouts_total += 1
        return error_response(401, *BAD_CREDENTIALS)
    response = web.json_response({"token": token, "csrf_token": csrf,
                                  "user": principal.public()})
    max_age = int(services.settings.session_hours * 3600)
    secure = services.settings.cookie_secure or request.secure  # HOTLINE_COOKIE_SECURE
    response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", max_age=max_age,
                        secure=secure)
    response.set_cookie(CSRF_COOKIE, csrf, httponly=False, samesite="Strict", max_age=max_age,
                        secure=secure)
    return response


async def logout(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    async with services.db.sessions.begin() as session:
        await close_session(session, request[TOKEN])
        audit(session, current_user(request), "logout", remote=remote_of(request))
    token_hash = token_digest(request[TOKEN])
    request.app[SESSION_CACHE].forget_digest(token_hash)
    for hook in request.app.get(SESSION_ENDED_HOOKS, ()):
        hook(token_hash)
    # Every other service instance too (hotline/web/control.py; a no-op with one instance).
    services.bus.control({"kind": "session.ended", "digest": token_hash})
    response = web.json_response({"ok": True})
    response.del_cookie(COOKIE)
    response.del_cookie(CSRF_COOKIE)
    return response


async def me(request: web.Request) -> web.Response:
    return web.json_response({"user": current_user(request).public()})
