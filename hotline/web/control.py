"""Control messages between service instances: what one instance decides, all act on.

They ride the bus (journal/bus.py: in-process with one instance, NOTIFY with several):
- ``session.ended`` {digest}: a logout — every instance forgets the cached session and closes
  its websockets (4001) at once;
- ``user.ended`` {login}: every session of a user ended (locked, changed) — the same, by login;
- ``originate`` / ``originate.result``: click-to-call asked on an instance that does not hold
  the AMI connection (a standby) is sent by the instance that ingests the PBX, which also
  registers the pending call-back, so the call is linked to its request.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import structlog
from aiohttp import web

from hotline.web.context import SERVICES, SESSION_CACHE, SESSION_ENDED_HOOKS, WebServices
from hotline.web.ws import HUB
from journal.bus import Control

log = structlog.get_logger(__name__)

ORIGINATE_TIMEOUT_S = 10.0
PENDING = web.AppKey("control_pending", dict[str, "asyncio.Future[dict[str, Any]]"])


def user_ended(app: web.Application, login: str) -> None:
    app[SERVICES].bus.control({"kind": "user.ended", "login": login})


async def originate_via_ingester(app: web.Application, action: dict[str, str], number: str,
                                 request_id: int) -> dict[str, Any]:
    """Have the ingesting instance send ``action``; its answer (``{"Response": ...}``), or
    ConnectionError when no instance answers in time."""
    services = app[SERVICES]
    ref = uuid.uuid4().hex
    future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    app[PENDING][ref] = future
    try:
        services.bus.control({"kind": "originate", "ref": ref, "action": action,
                              "number": number, "request_id": request_id})
        return await asyncio.wait_for(future, ORIGINATE_TIMEOUT_S)
    except TimeoutError:
        raise ConnectionError("no ingesting instance answered") from None
    finally:
        app[PENDING].pop(ref, None)


class ControlHandlers:
    def __init__(self, app: web.Application) -> None:
        self.app = app
        self._background: set[asyncio.Task[None]] = set()

    def __call__(self, message: Control) -> None:
        kind = message.get("kind")
        app = self.app
        if kind == "session.ended" and isinstance(message.get("digest"), str):
            # (this instance's own logout already did this; both steps are idempotent)
            app[SESSION_CACHE].forget_digest(message["digest"])
            for hook in app.get(SESSION_ENDED_HOOKS, ()):
                hook(message["digest"])
        elif kind == "user.ended" and isinstance(message.get("login"), str):
            app[SESSION_CACHE].forget_login(message["login"])
            hub = app.get(HUB)
            if hub is not None:
                hub.end_user(message["login"])
        elif kind == "originate":
            services = app[SERVICES]
            if services.ingesting and services.ami is not None:
                task = asyncio.create_task(self._originate(message))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
        elif kind == "originate.result":
            future = app[PENDING].get(str(message.get("ref")))
            if future is not None and not future.done():
                future.set_result(message)

    async def _originate(self, message: Control) -> None:
        services = self.app[SERVICES]
        number, request_id = str(message.get("number")), message.get("request_id")
        reply: dict[str, Any] = {"kind": "originate.result", "ref": message.get("ref")}
        try:
            answer = await place_callback(services, dict(message.get("action") or {}), number,
                                          request_id if isinstance(request_id, int) else None)
            reply["Response"] = str(answer.get("Response", "")) if hasattr(answer, "get") \
                else "Success"
            reply["Message"] = str(answer.get("Message", "")) if hasattr(answer, "get") else ""
        except (ConnectionError, TimeoutError) as exc:
            reply["error"] = str(exc)[:200] or type(exc).__name__
        with contextlib.suppress(Exception):
            services.bus.control(reply)


def attach(app: web.Application) -> None:
    app[PENDING] = {}
    app[SERVICES].bus.on_control(ControlHandlers(app))


async def place_callback(services: WebServices, action: dict[str, str], number: str,
                         request_id: int | None) -> Any:
    """Originate a call-back on this (ingesting) instance; the PBX's immediate answer. The
    pending call-back is registered before sending (the PBX may report the new call before it
    answers us) and withdrawn when the PBX refuses it or cannot be reached (the connection
    error is raised again)."""
    if request_id is not None:
        services.callbacks.expect(number, request_id)
    try:
        response = await send_originate(services.ami, action)
    except (ConnectionError, TimeoutError):
        services.callbacks.withdraw(number)
        raise
    answer = response[0] if isinstance(response, list) and response else response
    if refused(answer):
        services.callbacks.withdraw(number)
    return answer


def refused(answer: Any) -> bool:
    """Did the PBX refuse the Originate (``Response: Error``)?"""
    return hasattr(answer, "get") and str(answer.get("Response", "")).lower() == "error"


async def send_originate(ami: Any, action: dict[str, str], timeout_s: float = 10.0) -> Any:
    """The one Originate path (click-to-call, placed here or forwarded to the ingester):
    send it and return the PBX's immediate answer ("successfully queued").

    ``as_list=False``: panoramisk would otherwise treat an Async originate as a list and wait
    for the OriginateResponse event, i.e. until the operator picks up (up to the 30 s ring
    timeout).
    """
    return await ami.send_action(action, timeout_s=timeout_s, as_list=False)
