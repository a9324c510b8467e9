"""The aiohttp application: routes and middlewares."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from config import Settings
from hotline.web import api, auth
from hotline.web.bodies import body_guard
from hotline.web.context import SERVICES, SESSION_CACHE, SIGNIN_GUARD, WebServices
from hotline.web.errors import error_middleware
from hotline.web.session_cache import SessionCache
from hotline.web.signin_guard import SignInGuard

MAX_BODY_BYTES = 1024 * 1024


def server_options(settings: Settings) -> dict[str, Any]:
    """Options of the aiohttp server (``AppRunner`` / ``TestServer``) that bound how long a
    client may take: aiohttp closes a connection whose request headers are not complete
    ``keepalive_timeout`` seconds after it opened or after its previous response."""
    return {"keepalive_timeout": settings.http_read_timeout_s}


def create_app(services: WebServices) -> web.Application:
    app = web.Application(middlewares=[error_middleware, auth.auth_middleware, body_guard],
                          client_max_size=MAX_BODY_BYTES)
    app[SERVICES] = services
    settings = services.settings
    app[SESSION_CACHE] = SessionCache(settings.session_cache_s)
    app[SIGNIN_GUARD] = SignInGuard(settings.signin_failures_per_source,
                                    settings.signin_source_window_s, settings.trusted_proxies)
    app.router.add_post("/api/v1/auth/login", auth.login)
    app.router.add_post("/api/v1/auth/logout", auth.logout)
    app.router.add_get("/api/v1/auth/me", auth.me)
    app.router.add_get("/api/v1/requests", api.requests_list)
    app.router.add_get("/api/v1/requests/{number}", api.request_get)
    app.router.add_get("/api/v1/calls/active", api.calls_active)
    app.router.add_get("/healthz", api.healthz)
    app.router.add_get("/api/v1/health", api.health_details)
    app.router.add_get("/metrics", api.metrics)
    for extend in services.web_parts:
        extend(app)
    return app
