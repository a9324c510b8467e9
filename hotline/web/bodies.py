"""Input no handler should ever see: JSON nested too deep, text the databases cannot store.

Python's JSON parser recurses once per nesting level (100,000 levels end in RecursionError,
a 500), and PostgreSQL refuses a NUL character or a lone UTF-16 surrogate in text columns
(another 500, on PostgreSQL only). This middleware answers such requests with 400 before any
handler runs, so every JSON body, query parameter and path part of the API is covered at one
place — sign-in included. The checks cost two C-speed scans of the body; a body is parsed
here only when one of them finds something to look at.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from hotline.web.context import SERVICES
from hotline.web.errors import error_response

MAX_JSON_DEPTH = 32  # the API's bodies are flat objects with a list or two
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# An escaped NUL or UTF-16 surrogate in a JSON text (raw control characters are invalid JSON
# and refused by the handlers' own parsing).
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def unstorable(text: str) -> bool:
    """Text with a NUL or a lone surrogate (no database column takes it)."""
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _depth_and_text_ok(value: Any) -> tuple[bool, bool]:
    """(nesting within MAX_JSON_DEPTH, every string storable), without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    text_ok = True
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                return False, text_ok
            children = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in children:
                if isinstance(key, str) and unstorable(key):
                    text_ok = False
                stack.append((child, depth + 1))
        elif isinstance(item, str) and unstorable(item):
            text_ok = False
    return True, text_ok


def body_problem(body: bytes) -> tuple[str, str] | None:
    """(code, message) if the JSON body must be refused; None for anything else (including
    bodies that are not JSON at all: the handler tells what it expected)."""
    deep = body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH
    suspect = _SUSPECT_ESCAPE.search(body) is not None
    if not deep and not suspect:
        return None
    try:
        value = json.loads(body)
    except RecursionError:
        return "bad_json", f"JSON вложен глубже {MAX_JSON_DEPTH} уровней"
    except ValueError:
        return None
    depth_ok, text_ok = _depth_and_text_ok(value)
    if not depth_ok:
        return "bad_json", f"JSON вложен глубже {MAX_JSON_DEPTH} уровней"
    if not text_ok:
        return "bad_text", "Текст не может содержать символ NUL или одиночный суррогат UTF-16"
    return None


@web.middleware
async def body_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/api/"):
        return await handler(request)
    if any(unstorable(v) for v in request.query.values()) or \
            any(unstorable(v) for v in request.match_info.values()):
        return error_response(400, "bad_parameter",
                              "Параметр не может содержать символ NUL или одиночный суррогат")
    if request.method in _UNSAFE and request.body_exists:
        # A body trickled in byte by byte would hold the handler (and its connection) for
        # ever: it has the same time as the headers had (HTTP_READ_TIMEOUT_S).
        try:
            async with asyncio.timeout(request.app[SERVICES].settings.http_read_timeout_s):
                body = await request.read()
        except TimeoutError:
            response = error_response(408, "request_timeout",
                                      "Тело запроса не получено вовремя")
            response.force_close()
            return response
        problem = body_problem(body)
        if problem is not None:
            return error_response(400, *problem)
    return await handler(request)
