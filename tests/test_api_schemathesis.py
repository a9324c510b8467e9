"""The service keeps to its own OpenAPI description: schemathesis fuzzes every operation of a
running service (``hotline demo``: SQLite, the replayed PBX, so requests, calls and
recordings exist) signed in as the administrator. No server errors, no response outside its
documented schema.

Bounded: a fixed seed and a few examples per operation, about a minute and a half.
``POST /api/v1/auth/logout`` ends the session it is called with, so it runs on its own with a
second session after the rest.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHECKS = "not_a_server_error,response_schema_conformance"
MAX_EXAMPLES = 15

pytestmark = pytest.mark.schemathesis


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post_json(url: str, body: dict[str, str]) -> dict[str, object]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, object] = json.load(response)
    return result


def _get_json(url: str, token: str) -> dict[str, object]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, object] = json.load(response)
    return result


def _sign_in(base: str) -> str:
    answer = _post_json(base + "/api/v1/auth/login",
                        {"login": "admin", "password": "admin-demo-1"})
    return str(answer["token"])


@pytest.fixture
def demo_service(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``hotline demo`` on a free port in ``tmp_path``; (base URL, its log)."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env["PYTHONPATH"] = str(REPO)
    log_path = tmp_path / "service.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "hotline.cli", "demo", "--port", str(port), "--speed", "20"],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:  # until signed in and the replay has put a few requests in the journal
            assert process.poll() is None, log_path.read_text(errors="replace")[-3000:]
            try:
                listed = _get_json(base + "/api/v1/requests?limit=1", _sign_in(base))
                if int(str(listed["total"])) >= 3:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the demo service did not start"
            time.sleep(0.5)
        yield base, log_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _schemathesis(base: str, token: str, workdir: Path,
                  *selection: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "schemathesis.cli", "run", base + "/api/v1/openapi.json",
               "--checks", CHECKS, "--header", f"Authorization: Bearer {token}",
               "--max-examples", str(MAX_EXAMPLES), "--seed", "1", "--no-shrink",
               "--workers", "1", "--request-timeout", "30", *selection]
    # Run in the test's folder: schemathesis keeps a .schemathesis/ cache where it runs.
    return subprocess.run(command, capture_output=True, text=True, timeout=480, cwd=workdir,
                          env={**os.environ, "NO_COLOR": "1"})


def test_every_endpoint_answers_within_its_schema_and_never_with_a_server_error(
        demo_service: tuple[str, Path]) -> None:
    base, log_path = demo_service
    workdir = log_path.parent
    result = _schemathesis(base, _sign_in(base), workdir, "--exclude-path", "/api/v1/auth/logout")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    # Every operation schemathesis can call (the websocket upgrade aside) but logout ran.
    selected = re.search(r"Selected: (\d+)/(\d+)", result.stdout)
    assert selected, result.stdout[-3000:]
    assert int(selected[1]) == int(selected[2]) - 1 >= 28, selected[0]
    assert f"Tested: {selected[1]}" in result.stdout, result.stdout[-3000:]
    result = _schemathesis(base, _sign_in(base), workdir, "--include-path", "/api/v1/auth/logout")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "http.unhandled" not in log_path.read_text(errors="replace")
