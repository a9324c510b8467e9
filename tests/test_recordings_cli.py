"""``hotline recordings reconcile|verify|purge`` as an administrator runs them (SQLite)."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from journal.models import Recording
from tests.conftest import REPO, scenario_dirs
from tests.test_recordings import replay

SCENARIOS = {s.name[:3]: s for s in scenario_dirs()}


async def hotline(settings: Any, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "HOTLINE_DATABASE_URL": settings.database_url,
           "HOTLINE_RECORDINGS_DIR": str(settings.recordings_dir)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hotline.cli", *args, cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


@pytest.mark.skipif("s01" not in SCENARIOS, reason="recorded traces not available")
async def test_cli_reconcile_verify_purge(tmp_path: Path, db_url: Any, make_settings: Any,
                                          start_service: Any, replay_peer: Any) -> None:
    if db_url[1] is not None:
        pytest.skip("the CLI reads HOTLINE_DATABASE_URL: exercised on SQLite")
    folder = tmp_path / "rec"
    folder.mkdir()
    harness = await replay(SCENARIOS["s01"], make_settings, start_service, replay_peer, folder,
                           http=False, recordings_missing_after_s=0.2)
    settings = harness.services.settings
    code, out, _err = await hotline(settings, "recordings", "reconcile", "--since", "2000-01-01")
    assert code == 1 and "звонков на 8-800 без записи: 1" in out
    shutil.copytree(SCENARIOS["s01"] / "recordings", folder, dirs_exist_ok=True)
    code, out, _err = await hotline(settings, "recordings", "reconcile")
    assert code == 0 and "привязано записей: 1" in out and "заявка 1" in out
    code, out, _err = await hotline(settings, "recordings", "verify")
    assert code == 0 and "изменены после привязки: 0" in out
    wav = next(folder.rglob("*.wav"))
    wav.write_bytes(wav.read_bytes()[:-10] + b"0123456789")
    code, out, _err = await hotline(settings, "recordings", "verify")
    assert code == 1 and "ИЗМЕНЕНА заявка 1" in out
    async with harness.services.db.session() as session:
        assert (await session.scalars(select(Recording.status))).one() == "tampered"
    code, out, _err = await hotline(settings, "recordings", "purge", "--keep-days", "1")
    assert code == 0 and "удалено записей закрытых заявок: 0" in out
    assert wav.exists()
