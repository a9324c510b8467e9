"""The aiohttp application: routes and middlewares."""

from __future__ import annotations

from aiohttp import web

from hotline.service import Services
from hotline.web import api, auth
from hotline.web.context import SERVICES, SESSION_CACHE
from hotline.web.errors import error_middleware
from hotline.web.session_cache import SessionCache

MAX_BODY_BYTES = 1024 * 1024


def create_app(services: Services) -> web.Application:
    app = web.Application(middlewares=[error_middleware, auth.auth_middleware],
                          client_max_size=MAX_BODY_BYTES)
    app[SERVICES] = services
    app[SESSION_CACHE] = SessionCache(services.settings.session_cache_s)
    app.router.add_post("/api/v1/auth/login", auth.login)
    app.router.add_post("/api/v1/auth/logout", auth.logout)
    app.router.add_get("/api/v1/auth/me", auth.me)
    app.router.add_get("/api/v1/requests", api.requests_list)
    app.router.add_get("/api/v1/requests/{number}", api.request_get)
    app.router.add_get("/api/v1/calls/active", api.calls_active)
    app.router.add_get("/healthz", api.healthz)
    app.router.add_get("/metrics", api.metrics)
    for extend in services.extras.get("web_extensions", []):
        extend(app)
    return app
