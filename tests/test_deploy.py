"""The deployment files stay valid."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_docker_compose_file_is_valid() -> None:
    env = {**os.environ, "HOTLINE_AMI_SECRET": "check-only"}
    result = subprocess.run(["docker-compose", "-f", str(REPO / "docker-compose.yml"), "config",
                             "-q"], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr


def test_compose_shares_the_recordings_volume_between_asterisk_and_the_service() -> None:
    text = (REPO / "docker-compose.yml").read_text(encoding="utf-8")
    assert "recordings:/var/spool/asterisk/monitor" in text
    assert "recordings:/recordings:ro" in text
