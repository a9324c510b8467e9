"""Builds the full service: the core plus the optional parts (recordings, websocket, pages)."""

from __future__ import annotations

import contextlib

from config import Settings
from hotline.service import Services


def build_services(settings: Settings, *, db_schema: str | None = None) -> Services:
    services = Services.build(settings, db_schema=db_schema)
    extensions = services.extras.setdefault("web_extensions", [])
    with contextlib.suppress(ImportError):
        from recordings.wiring import attach as attach_recordings

        attach_recordings(services)
    with contextlib.suppress(ImportError):
        from hotline.web.ws import attach as attach_ws

        extensions.append(attach_ws)
    with contextlib.suppress(ImportError):
        from hotline.web.pages import attach as attach_pages

        extensions.append(attach_pages)
    return services
