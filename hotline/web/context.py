"""Typed keys for what the aiohttp application and requests carry."""

from __future__ import annotations

from aiohttp import web

from hotline.service import Services

SERVICES = web.AppKey("services", Services)
USER = web.RequestKey("user", object)
TOKEN = web.RequestKey("token", str)
