"""Sign-in: bearer token or session cookie; CSRF for cookie-authenticated writes."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from hotline.web.context import SERVICES, SESSION_CACHE, SESSION_ENDED_HOOKS, TOKEN, USER
from hotline.web.errors import ApiError, error_response
from journal.audit import audit
from journal.users import (
    LoginRefused,
    Principal,
    ResolvedSession,
    authenticate,
    close_session,
    open_session,
    principal_of,
    resolve_session,
    token_digest,
)

COOKIE = "hotline_session"
CSRF_COOKIE = "hotline_csrf"
CSRF_HEADER = "X-CSRF-Token"
PUBLIC_PATHS = frozenset({"/api/v1/auth/login", "/healthz", "/metrics"})
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
    return request.remote


async def login(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "bad_json", "Тело запроса должно быть JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("login"), str) \
            or not isinstance(body.get("password"), str):
        raise ApiError(422, "invalid", "Укажите логин и пароль")
    services = request.app[SERVICES]
    async with services.db.sessions.begin() as session:
        try:
            user = await authenticate(session, body["login"], body["password"])
        except LoginRefused as exc:
            audit(session, None, "login_failed", remote=remote_of(request),
                  login=body["login"][:80], reason=exc.code)
            refused = exc
        else:
            refused = None
            token, csrf = await open_session(session, user, services.settings.session_hours)
            principal = principal_of(user)
            audit(session, principal, "login", remote=remote_of(request))
    if refused is not None:
        # A lockout also ends the sessions this user already has (resolve_session checks).
        request.app[SESSION_CACHE].forget_login(body["login"])
        status = 423 if refused.code == "locked" else 401
        return error_response(status, refused.code, refused.message)
    response = web.json_response({"token": token, "csrf_token": csrf,
                                  "user": principal.public()})
    max_age = int(services.settings.session_hours * 3600)
    response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", max_age=max_age)
    response.set_cookie(CSRF_COOKIE, csrf, httponly=False, samesite="Strict", max_age=max_age)
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
    response = web.json_response({"ok": True})
    response.del_cookie(COOKIE)
    response.del_cookie(CSRF_COOKIE)
    return response


async def me(request: web.Request) -> web.Response:
    return web.json_response({"user": current_user(request).public()})
