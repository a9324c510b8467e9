"""Issue 10, items 8 and 9: inputs that once ended in a 500 (or were taken as valid) get a 4xx
with the usual error body, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hotline.web.bodies import MAX_JSON_DEPTH, body_problem
from tests.helpers import bearer
from tests.test_workflow import SCENARIOS, call, get, journal_with

pytestmark = pytest.mark.skipif("s01-answered-l1" not in SCENARIOS,
                                reason="recorded traces not available")


async def _journal(make_settings: Any, start_service: Any, replay_peer: Any) -> Any:
    return await journal_with(["s01-answered-l1"], make_settings, start_service, replay_peer)


async def _raw(harness: Any, method: str, path: str, body: bytes | None = None,
               token: str | None = None, **headers: str) -> tuple[int, dict[str, Any]]:
    if token is not None:
        headers |= bearer(token)
    if body is not None:
        headers.setdefault("Content-Type", "application/json")
    async with harness.http.request(method, harness.url(path), data=body,
                                    headers=headers) as resp:
        assert "json" in resp.headers.get("Content-Type", ""), (path, resp.status)
        return resp.status, await resp.json()


def _usual_error(status: int, data: dict[str, Any], expected: int = 400) -> None:
    assert status == expected, data
    assert isinstance(data["error"]["code"], str) and isinstance(data["error"]["message"], str)


async def test_numbers_out_of_range_or_in_other_scripts_are_400(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await _journal(make_settings, start_service, replay_peer)
    admin = harness.tokens["admin"]
    for query in ("number=" + "9" * 23, "number=٣", "number=²", "limit=٣", "offset=" + "9" * 40,
                  "from=9999-12-31T23:00:00-14:00", "to=0001-01-01T00:00:00+14:00"):
        status, data = await _raw(harness, "GET", f"/api/v1/requests?{query}", token=admin)
        _usual_error(status, data)
    for path in ("/api/v1/requests/٣", "/api/v1/requests/²", "/api/v1/requests/" + "9" * 23,
                 "/api/v1/requests/١/recordings", "/api/v1/requests/1/recordings/٣",
                 "/api/v1/audit?request=٣", "/api/v1/requests/%D9%A3"):
        status, data = await _raw(harness, "GET", path, token=admin)
        _usual_error(status, data)
    status, data = await _raw(harness, "PATCH", "/api/v1/requests/٣", b'{"summary": "x"}',
                              token=admin)
    _usual_error(status, data)
    assert (await _raw(harness, "GET", "/api/v1/requests?number=1", token=admin))[0] == 200


async def test_report_periods_at_the_calendars_ends_are_400(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await _journal(make_settings, start_service, replay_peer)
    admin = harness.tokens["admin"]
    for period in ("0000-01", "9999-12", "0001-Q1", "1899-12", "3000-01", "٢٠٢٦-11"):
        for suffix in ("", ".csv", ".xlsx"):
            for compare in ("", "&compare=1"):
                status, data = await _raw(
                    harness, "GET",
                    f"/api/v1/reports/summary{suffix}?period={period}{compare}", token=admin)
                _usual_error(status, data)
    # The first reportable period: fine alone, but it has no previous one to compare with.
    status, _data = await _raw(harness, "GET", "/api/v1/reports/summary?period=1900-01",
                               token=admin)
    assert status == 200
    status, data = await _raw(harness, "GET", "/api/v1/reports/summary?period=1900-Q1&compare=1",
                              token=admin)
    _usual_error(status, data)
    status, _data = await _raw(harness, "GET", "/api/v1/reports/summary?period=2999-Q4&compare=1",
                               token=admin)
    assert status == 200


def test_body_problem_finds_deep_json_and_unstorable_text_only() -> None:
    assert body_problem(b'{"a": [1, 2, {"b": "c"}]}') is None
    assert body_problem(b"[" * 100_000 + b"]" * 100_000) is not None
    nested = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    assert body_problem(nested.encode()) is not None
    assert body_problem(json.dumps({"x": "a\x00b"}).encode()) is not None
    assert body_problem(b'{"x\\u0000": 1}') is not None
    assert body_problem(b'{"x": "\\ud800"}') is not None
    assert body_problem(b'{"x": "\\ud83d\\ude00"}') is None  # a surrogate pair is one emoji
    assert body_problem(b"{" * 40 + b"not json") is None  # the handler says what it expected


async def test_deeply_nested_json_and_nul_text_are_400(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await _journal(make_settings, start_service, replay_peer)
    deep = b"[" * 100_000 + b"]" * 100_000
    deep_object = b'{"login": ' + deep + b', "password": "x"}'
    for body in (deep, deep_object):
        status, data = await _raw(harness, "POST", "/api/v1/auth/login", body)
        _usual_error(status, data)
    nul_login = json.dumps({"login": "admin\x00", "password": "secret-pass-1"}).encode()
    status, data = await _raw(harness, "POST", "/api/v1/auth/login", nul_login)
    _usual_error(status, data)
    admin = harness.tokens["admin"]
    version = (await get(harness, 1))["version"]
    for body in (b'{"summary": ' + deep + b"}", deep,
                 json.dumps({"version": version, "summary": "a\x00b"}).encode(),
                 json.dumps({"version": version, "full_name": "\ud800"}).encode(),
                 json.dumps({"version": version, "summary\x00": "x"}).encode()):
        status, data = await _raw(harness, "PATCH", "/api/v1/requests/1", body, token=admin)
        _usual_error(status, data)
    for path in ("/api/v1/requests?caller=%00", "/api/v1/requests?caller=1%002",
                 "/api/v1/audit?user=a%00", "/api/v1/classifier/topics/a%00b"):
        method = "PUT" if "topics" in path else "GET"
        status, data = await _raw(harness, method, path,
                                  b"{}" if method == "PUT" else None, token=admin)
        _usual_error(status, data)
    status, data = await _raw(harness, "PATCH", "/api/v1/requests/1",
                              json.dumps({"version": version, "summary": "ok"}).encode(),
                              token=admin)
    assert status == 200 and data["summary"] == "ok", data


async def test_a_due_date_far_ahead_is_refused(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await _journal(make_settings, start_service, replay_peer)
    for due in ("9999-12-31T23:59:59+03:00", "9999-12-31T23:59:59-14:00",
                "0001-01-01T00:00:00+14:00",
                (datetime.now(UTC) + timedelta(days=400)).isoformat()):
        status, data = await call(harness, "POST", "/api/v1/requests/1/defer", "op101",
                                  {"contact_phone": "84957776655", "due_at": due})
        assert status == 422 and "due_at" in data["error"]["fields"], (due, data)
    soon = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    status, data = await call(harness, "POST", "/api/v1/requests/1/defer", "op101",
                              {"contact_phone": "84957776655", "due_at": soon})
    assert status == 200, data
