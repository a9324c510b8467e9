"""Builds the full service: the core plus its parts (recordings, websocket hub, workflow, pages).

Each part exposes ``attach``: ``recordings.wiring.attach(services)`` wires itself into the
services; the web parts' ``attach(app)`` add their routes when the HTTP app is created.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from config import Settings
from hotline.service import Services

SERVICE_PARTS = ("recordings.wiring",)
WEB_PARTS = ("hotline.web.ws", "hotline.web.workflow_api", "hotline.web.admin_api",
             "hotline.web.pages")


def _attach_of(module_name: str) -> Callable[[Any], None] | None:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None  # the part is not built (yet)
        raise
    attach: Callable[[Any], None] = module.attach
    return attach


def build_services(settings: Settings, *, db_schema: str | None = None) -> Services:
    services = Services.build(settings, db_schema=db_schema)
    for name in SERVICE_PARTS:
        attach = _attach_of(name)
        if attach is not None:
            attach(services)
    extensions = services.extras.setdefault("web_extensions", [])
    for name in WEB_PARTS:
        attach = _attach_of(name)
        if attach is not None:
            extensions.append(attach)
    return services
