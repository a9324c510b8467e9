"""JSON errors in the contract's shape: ``{"error": {"code", "message"}}``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

log = structlog.get_logger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    body: dict[str, Any] = {"error": {"code": code, "message": message, **extra}}
    return web.json_response(body, status=status)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
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
