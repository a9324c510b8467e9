"""Builds the recordings part from the settings (hotline.assembly wires it into the service)."""

from __future__ import annotations

from config import Settings
from journal.db import Database
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
