"""DESIGN §5: ``GET /api/v1/openapi.json`` — an OpenAPI 3.1 description of every endpoint,
readable without signing in, that stays true to the application's routes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web
from openapi_spec_validator import validate

from config import load_settings
from hotline.assembly import build_services
from hotline.web.app import create_app
from hotline.web.openapi import build_spec
from hotline.web.pages import PAGES

# Files for browsers, not API: described nowhere, on purpose (see hotline/web/openapi.py).
PAGE_PATHS = frozenset({"/", *PAGES})


def app_routes(tmp_path: Path) -> set[tuple[str, str]]:
    """(method, path template) of every route the service answers, but the pages, the static
    files and the HEAD twins aiohttp adds to GETs."""
    settings = load_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'r.sqlite3'}",
                             recordings_dir=tmp_path / "recordings",
                             spill_dir=tmp_path / "spill")
    app = create_app(build_services(settings))
    routes: set[tuple[str, str]] = set()
    for route in app.router.routes():
        resource = route.resource
        if resource is None or isinstance(resource, web.StaticResource):
            continue
        info = resource.get_info()
        path = info.get("formatter") or info.get("path")
        if route.method == "HEAD" or path in PAGE_PATHS:
            continue
        routes.add((route.method, str(path)))
    return routes


def spec_operations(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in spec["paths"].items()
            for method in item if method in ("get", "put", "post", "patch", "delete")}


def test_every_route_of_the_service_is_described_and_nothing_else(tmp_path: Path) -> None:
    routes = app_routes(tmp_path)
    described = spec_operations(build_spec())
    assert routes - described == set(), "routes missing from hotline/web/openapi.py"
    assert described - routes == set(), "described operations the service does not have"
    assert ("PATCH", "/api/v1/requests/{number}") in described
    assert len(routes) > 25


def test_the_description_is_valid_openapi_3_1() -> None:
    spec = build_spec()
    assert spec["openapi"].startswith("3.1")
    validate(spec)  # raises on an invalid document


def test_every_operation_documents_its_errors_and_who_may_call_it() -> None:
    spec = build_spec()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            public = operation.get("security") == []
            assert public or "401" in operation["responses"], (method, path)
            assert any(code.startswith("2") or code == "101"
                       for code in operation["responses"]), (method, path)
            if path.startswith("/api/v1/") and not public:
                assert "Кто:" in operation.get("description", ""), (method, path)


async def test_openapi_json_is_served_without_signing_in(make_settings: Any,
                                                         start_service: Any) -> None:
    harness = await start_service(make_settings(), http=True, connect_ami=False)
    async with harness.http.get(harness.url("/api/v1/openapi.json")) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        served = await resp.json()
    assert served == build_spec()
    validate(served)
