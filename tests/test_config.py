"""Configuration (DESIGN §6): a wrong value stops start-up with one line naming the variable,
the TOML routing file works (the environment wins), the AMI secret never shows."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from config import ConfigError, load_settings
from tests.conftest import REPO, scenario_dirs, trace_items
from tests.helpers import wait_for

HOTLINE = str(Path(sys.executable).with_name("hotline"))
SECRET = "Very-Secret-Ami-Pass-42"


def serve(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``hotline serve`` with only these variables (it must stop before serving anything)."""
    clean = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path),
             "HOTLINE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/j.sqlite3", **env}
    return subprocess.run([HOTLINE, "serve"], env=clean, cwd=REPO, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize(("variable", "value"), [
    ("HOTLINE_AMI_PORT", "not-a-port"),
    ("HOTLINE_AMI_PORT", "70000"),
    ("HOTLINE_HOTLINE_NUMBERS", ""),
    ("HOTLINE_HOTLINE_NUMBERS", "8800 707"),
    ("HOTLINE_SMO_LINES", "88001002030"),
    ("HOTLINE_DATABASE_URL", "mysql://db/hotline"),
    ("HOTLINE_AMI_PING_TIMEOUT_S", "0"),
    ("HOTLINE_AMI_BACKOFF_MAX_S", "-1"),
    ("HOTLINE_LOG_LEVEL", "loud"),
    ("HOTLINE_CONFIG", "/nonexistent/routing.toml"),
])
def test_wrong_value_stops_serve_with_one_line(variable: str, value: str,
                                               tmp_path: Path) -> None:
    result = serve({variable: value, "HOTLINE_AMI_SECRET": SECRET}, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"hotline: configuration error: {variable}:"), lines[0]
    assert SECRET not in result.stderr + result.stdout


def test_invalid_toml_names_the_config_variable(tmp_path: Path) -> None:
    bad = tmp_path / "routing.toml"
    bad.write_text("[routing\nhotline_numbers = ", encoding="utf-8")
    result = serve({"HOTLINE_CONFIG": str(bad)}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[0].startswith(
        "hotline: configuration error: HOTLINE_CONFIG:")


def test_toml_routing_file_and_environment_precedence(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    routing = tmp_path / "routing.toml"
    routing.write_text(
        '[routing]\nhotline_numbers = ["88007070561", "88002000600"]\n'
        'l2_targets = ["7001", "201"]\n\n[smo_lines]\n"88001002030" = "SMO1"\n',
        encoding="utf-8")
    monkeypatch.setenv("HOTLINE_CONFIG", str(routing))
    for name in ("HOTLINE_HOTLINE_NUMBERS", "HOTLINE_L2_TARGETS", "HOTLINE_SMO_LINES"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.hotline_numbers == ["88007070561", "88002000600"]
    assert settings.l2_targets == ["7001", "201"]
    assert settings.smo_lines == {"88001002030": "SMO1"}
    monkeypatch.setenv("HOTLINE_L2_TARGETS", "301,302")
    assert load_settings().l2_targets == ["301", "302"]  # the environment wins


def test_toml_with_a_bad_number_names_the_setting(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    routing = tmp_path / "routing.toml"
    routing.write_text('[routing]\nl2_targets = ["70 01"]\n', encoding="utf-8")
    monkeypatch.setenv("HOTLINE_CONFIG", str(routing))
    monkeypatch.delenv("HOTLINE_L2_TARGETS", raising=False)
    with pytest.raises(ConfigError, match=r"^HOTLINE_L2_TARGETS: "):
        load_settings()


def test_secret_not_in_repr_or_dump() -> None:
    settings = load_settings(ami_secret=SECRET)
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.model_dump())
    assert settings.ami_secret.get_secret_value() == SECRET


async def test_secret_never_logged_on_auth_failure(make_settings: Any, start_service: Any,
                                                   replay_peer: Any,
                                                   capsys: pytest.CaptureFixture[str],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """A refused login with debug logging everywhere: the secret appears in no log line."""
    caplog.set_level(logging.DEBUG)
    s01 = next(s for s in scenario_dirs() if s.name.startswith("s01"))
    peer = await replay_peer(trace_items(s01))
    harness = await start_service(make_settings(ami_port=peer.port, ami_secret=SECRET,
                                                ami_backoff_max_s=0.05))
    ami = harness.services.ami
    assert ami is not None
    await wait_for(lambda: ami.state == "auth_failed")
    captured = capsys.readouterr()
    text = captured.out + captured.err + caplog.text
    assert "ami.auth_failed" in text
    assert SECRET not in text
    assert SECRET not in repr(ami) and SECRET not in str(harness.services.health())


def test_cel_settings() -> None:
    settings = load_settings(cel_url="postgresql://cel@pbx/asterisk", cel_table="asterisk.cel",
                             pbx_timezone="Europe/Moscow")
    assert (settings.cel_table, settings.cel_interval_s, settings.cel_lookback_h) == (
        "asterisk.cel", 300.0, 24.0)
    assert load_settings().cel_url is None and load_settings().pbx_timezone == "UTC"
    with pytest.raises(ConfigError, match=r"^HOTLINE_PBX_TIMEZONE: "):
        load_settings(pbx_timezone="Mars/Olympus")
    with pytest.raises(ConfigError, match=r"^HOTLINE_CEL_TABLE: "):
        load_settings(cel_table="cel; drop table requests")
    with pytest.raises(ConfigError, match=r"^HOTLINE_CEL_INTERVAL_S: "):
        load_settings(cel_interval_s=0)
