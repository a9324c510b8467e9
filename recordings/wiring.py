"""Wires the recordings part into the service (called by hotline.assembly)."""

from __future__ import annotations

from config import Settings
from hotline.service import Services
from journal.db import Database
from recordings.reconcile import recording_finder
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
                            missing_after_s=settings.recordings_missing_after_s,
                            pbx_dir=settings.recordings_pbx_dir)


def attach(services: Services) -> None:
    """Intake notifies the worker after each commit; Services.start runs it; HTTP routes are
    added when the app is created; Services.stop closes the storage's connections."""
    worker = build_worker(services.settings, services.db)
    services.recordings = worker
    services.recording_finder = recording_finder(
        worker.storage, services.settings.recordings_pbx_dir, services.settings.pbx_timezone)
    services.stop_hooks.append(worker.storage.aclose)
