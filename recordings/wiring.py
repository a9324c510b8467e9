"""Wires the recordings part into the service (called by hotline.assembly)."""

from __future__ import annotations

from typing import Any

from config import Settings
from journal.db import Database
from recordings import api
from recordings.storage import LocalStorage
from recordings.worker import RecordingsWorker


def build_worker(settings: Settings, db: Database) -> RecordingsWorker:
    storage = LocalStorage(settings.recordings_dir)
    return RecordingsWorker(db, storage, pbx_id=settings.pbx_id,
                            missing_after_s=settings.recordings_missing_after_s)


def attach(services: Any) -> None:
    """Intake notifies the worker after each commit; Services.start runs it; HTTP routes are
    added when the app is created."""
    worker = build_worker(services.settings, services.db)
    services.extras["recordings"] = worker
    services.extras[api.STORAGE_KEY] = worker.storage
    services.extras.setdefault("web_extensions", []).append(api.attach)
