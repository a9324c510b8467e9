"""JSON errors in the contract's shape: ``{"error": {"code", "message"}}``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from journal.refusal import Refusal

log = structlog.get_logger(__name__)


class ApiError(Refusal):
    """A request refused by the web layer itself (bad id, no access, …)."""


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    body: dict[str, Any] = {"error": {"code": code, "message": message, **extra}}
    return web.json_response(body, status=status)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Refusal as exc:  # the web layer's own (ApiError) and the domain's
        return error_response(exc.status, exc.code, exc.message, **exc.extra)
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "too_large", "Слишком большой запрос")
    except web.HTTPException as exc:
        if exc.status >= 400 and request.path.startswith("/api/"):
            return error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        raise
    except Exception:
        log.exception("http.unhandled", path=request.path)
        return error_response(500, "internal", "Внутренняя ошибка сервиса")
