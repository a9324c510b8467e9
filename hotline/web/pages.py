"""The operator and administrator pages: static HTML, CSS and vanilla JS modules (no build step).

Routes:
- ``/`` → ``/login``; ``/login`` sign-in; ``/operator`` the operator's workplace (screen pop,
  request form, dialogue script); ``/admin`` the administrator console (search, request detail
  with call timeline and recordings, closing, reports with charts and CSV/XLSX downloads,
  audit log), also the auditor's and the anti-corruption officer's (flagged requests only,
  read-only); ``/requests`` the same console for SMO representatives (the API limits what
  they see, reports are their SMO's slice);
- ``/static/…`` the assets;
- ``GET /api/v1/ui/config`` (signed in) what the pages need from the configuration: SMO codes
  and names, redirect targets, kinds of appeal;
- ``GET /api/v1/card`` (signed in) the request card (journal.card): the form is built from it.

Pages are public files; every piece of data comes from the authenticated JSON API and websocket.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from hotline.web.auth import current_user
from hotline.web.context import SERVICES
from journal.card import KINDS, REDIRECT_TARGETS, card_json

STATIC_DIR = Path(__file__).parent / "static"
PAGES = {
    "/login": "login.html",
    "/operator": "operator.html",
    "/admin": "admin.html",
    "/requests": "admin.html",
}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "media-src 'self'; connect-src 'self' ws: wss:; frame-ancestors 'none'; "
       "base-uri 'none'; form-action 'self'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def _page(file_name: str) -> Handler:
    path = STATIC_DIR / file_name

    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.FileResponse(path, headers={**SECURITY_HEADERS, "Cache-Control": "no-cache",
                                               "Content-Type": "text/html; charset=utf-8"})
    return handler


async def root(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/login")


async def ui_config(request: web.Request) -> web.Response:
    current_user(request)
    settings = request.app[SERVICES].settings
    codes = sorted(set(settings.smo_lines.values()) | set(settings.smo_names))
    smo = [{"code": code, "name": settings.smo_names.get(code)} for code in codes]
    return web.json_response({
        "smo": smo,
        "redirect_targets": [{"code": k, "name": v} for k, v in REDIRECT_TARGETS.items()],
        "kinds": list(KINDS),
        "hotline_numbers": list(settings.hotline_numbers),
        "timezone": settings.local_timezone,
    })


# The card is code, not settings: the same for every user and every request.
_CARD_JSON = card_json()


async def card(request: web.Request) -> web.Response:
    current_user(request)
    return web.json_response(_CARD_JSON)


@web.middleware
async def _static_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if request.path.startswith("/static/"):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "no-cache")
    return response


def attach(app: web.Application) -> None:
    app.router.add_get("/", root)
    for path, file_name in PAGES.items():
        app.router.add_get(path, _page(file_name))
    app.router.add_get("/api/v1/ui/config", ui_config)
    app.router.add_get("/api/v1/card", card)
    app.router.add_static("/static/", STATIC_DIR, name="static", append_version=False)
    app.middlewares.append(_static_headers)
