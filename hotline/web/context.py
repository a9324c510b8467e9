"""Typed keys for what the aiohttp application and requests carry, and what the web layer
needs of the running service (``WebServices``: hotline.service.Services is one; the web layer
does not import it, so the import graph stays one way)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, Protocol

from aiohttp import web

from config import Settings
from hotline.web.session_cache import SessionCache
from hotline.web.signin_guard import SignInGuard
from journal.audit import AuditWriter
from journal.backfill import CelBackfill
from journal.bus import Bus
from journal.completeness import CompletenessReport
from journal.db import Database
from journal.outbox import Outbox
from journal.pending_callbacks import PendingCallbacks
from recordings.worker import RecordingsWorker
from telephony.ami import AmiClient

# A part of the web layer: adds its routes (and start/stop hooks) to the application.
WebPart = Callable[[web.Application], None]


class WebServices(Protocol):
    settings: Settings
    db: Database
    bus: Bus
    outbox: Outbox
    callbacks: PendingCallbacks
    audit_log: AuditWriter
    ami: AmiClient | None
    backfill: CelBackfill | None
    recordings: RecordingsWorker | None
    completeness_last: dict[str, CompletenessReport]
    web_parts: list[WebPart]

    @property
    def ingesting(self) -> bool: ...

    def health(self) -> dict[str, Any]: ...

    async def completeness(self, day: date) -> CompletenessReport: ...


SERVICES: web.AppKey[WebServices] = web.AppKey("services")
USER = web.RequestKey("user", object)
TOKEN = web.RequestKey("token", str)
# Called with a session's token digest when it ends (logout): the websocket hub closes that
# session's sockets at once instead of at its next periodic check.
SESSION_ENDED_HOOKS = web.AppKey("session_ended_hooks", list[Callable[[str], object]])
SESSION_CACHE = web.AppKey("session_cache", SessionCache)
SIGNIN_GUARD = web.AppKey("signin_guard", SignInGuard)
