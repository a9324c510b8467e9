"""Typed keys for what the aiohttp application and requests carry."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from hotline.service import Services
from hotline.web.session_cache import SessionCache
from hotline.web.signin_guard import SignInGuard

SERVICES = web.AppKey("services", Services)
USER = web.RequestKey("user", object)
TOKEN = web.RequestKey("token", str)
# Called with a session's token digest when it ends (logout): the websocket hub closes that
# session's sockets at once instead of at its next periodic check.
SESSION_ENDED_HOOKS = web.AppKey("session_ended_hooks", list[Callable[[str], object]])
SESSION_CACHE = web.AppKey("session_cache", SessionCache)
SIGNIN_GUARD = web.AppKey("signin_guard", SignInGuard)
