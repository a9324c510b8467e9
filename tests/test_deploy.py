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


def test_the_container_upgrades_the_schema_before_serving() -> None:
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert 'CMD ["sh", "-c", "hotline db upgrade && exec hotline serve"]' in dockerfile
    compose = (REPO / "docker-compose.yml").read_text(encoding="utf-8")
    hotline_service = compose.split("\n  hotline: &hotline\n", 1)[1].split("\n  minio:\n", 1)[0]
    assert "command:" not in hotline_service  # the image's own command is the one that runs


def test_compose_runs_two_instances_behind_a_proxy_on_the_postgresql_bus() -> None:
    compose = (REPO / "docker-compose.yml").read_text(encoding="utf-8")
    assert "HOTLINE_BUS: postgresql" in compose
    assert "\n  hotline-b:\n    <<: *hotline\n" in compose
    proxy = (REPO / "deploy" / "nginx" / "hotline.conf").read_text(encoding="utf-8")
    assert "server hotline:8080" in proxy and "server hotline-b:8080" in proxy
    assert "proxy_set_header Upgrade $http_upgrade;" in proxy  # websockets pass
