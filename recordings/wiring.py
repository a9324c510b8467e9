"""Wires the recordings part into the service (called by hotline.assembly)."""

from __future__ import annotations

from typing import Any

from config import Settings
from hotline.service import STOP_HOOKS_KEY
from journal.db import Database
from recordings import api
from recordings.storage import LocalStorage, RecordingStorage
from recordings.worker import RecordingsWorker


def build_storage(settings: Settings) -> RecordingStorage:
    """RECORDINGS_DIR, or the S3 bucket when HOTLINE_RECORDINGS_STORAGE=s3."""
    if settings.recordings_storage != "s3":
        return LocalStorage(settings.recordings_dir)
    from recordings.s3 import S3Storage

    # Settings validation makes these present when the storage is "s3".
    assert settings.s3_endpoint and settings.s3_bucket and settings.s3_access_key
    assert settings.s3_secret_key is not None
    return S3Storage(settings.s3_endpoint, settings.s3_bucket,
                     access_key=settings.s3_access_key,
                     secret_key=settings.s3_secret_key.get_secret_value(),
                     region=settings.s3_region, prefix=settings.s3_prefix)


def build_worker(settings: Settings, db: Database) -> RecordingsWorker:
    return RecordingsWorker(db, build_storage(settings), pbx_id=settings.pbx_id,
                            missing_after_s=settings.recordings_missing_after_s)


def attach(services: Any) -> None:
    """Intake notifies the worker after each commit; Services.start runs it; HTTP routes are
    added when the app is created; Services.stop closes the storage's connections."""
    worker = build_worker(services.settings, services.db)
    services.extras["recordings"] = worker
    services.extras[api.STORAGE_KEY] = worker.storage
    services.extras.setdefault("web_extensions", []).append(api.attach)
    services.extras.setdefault(STOP_HOOKS_KEY, []).append(worker.storage.aclose)
