"""Builds the full service: the core plus its parts (recordings, websocket hub, workflow, pages).

``attach_recordings`` wires the recordings worker into the services; the web parts'
``attach(app)`` add their routes when the HTTP app is created. Imported, not looked up
by name: a part that fails to import stops the service at once instead of vanishing.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from config import Settings
from hotline.service import Services
from hotline.web import (
    admin_api,
    control,
    missed_api,
    openapi,
    pages,
    recordings_api,
    reports_api,
    workflow_api,
    ws,
)
from recordings.reconcile import recording_finder
from recordings.wiring import build_worker


def attach_recordings(services: Services) -> None:
    """Intake notifies the worker after each commit; Services.start runs it; HTTP routes are
    added when the app is created; Services.stop closes the storage's connections."""
    worker = build_worker(services.settings, services.db)
    services.recordings = worker
    services.recording_finder = recording_finder(
        worker.storage, services.settings.recordings_pbx_dir, services.settings.pbx_timezone)
    services.stop_hooks.append(worker.storage.aclose)


SERVICE_PARTS: tuple[Callable[[Services], None], ...] = (attach_recordings,)
WEB_PARTS: tuple[Callable[[web.Application], None], ...] = (
    recordings_api.attach, ws.attach, control.attach, workflow_api.attach, reports_api.attach,
    admin_api.attach, pages.attach, openapi.attach, missed_api.attach)


def build_services(settings: Settings, *, db_schema: str | None = None) -> Services:
    services = Services.build(settings, db_schema=db_schema)
    for attach in SERVICE_PARTS:
        attach(services)
    services.web_parts.extend(WEB_PARTS)
    return services
