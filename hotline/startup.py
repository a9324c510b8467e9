"""Start-up shared by the commands: settings or a clear exit, the schema check, running the
service until a signal. Kept out of cli.py so the demo and the maintenance commands use it
without importing the command line."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import TYPE_CHECKING

from aiohttp import web

from config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from journal.db import Database


def settings_or_exit(**overrides: object) -> Settings:
    """The settings, or one line on stderr and exit status 2 for a configuration error."""
    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        print(f"hotline: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


async def run_service(settings: Settings, *, until: asyncio.Event | None = None,
                      announce: bool = True) -> None:
    """Run the service until SIGINT/SIGTERM (or ``until`` is set)."""
    from hotline.assembly import build_services
    from hotline.runtime import settle_heap, shorten_gil_switch
    from hotline.web.app import create_app, server_options

    services = build_services(settings)
    try:
        await services.start()
    except BaseException:
        await services.stop()
        raise
    runner = web.AppRunner(create_app(services), access_log=None, **server_options(settings))
    await runner.setup()
    site = web.TCPSite(runner, settings.http_host, settings.http_port)
    await site.start()
    settle_heap()
    shorten_gil_switch()
    if announce:
        print(f"hotline: listening on http://{settings.http_host}:{settings.http_port}/ "
              f"(AMI {settings.ami_host}:{settings.ami_port}, database "
              f"{settings.database_url.split('://')[0]}, bus {settings.bus})", file=sys.stderr)
    stop = until or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await services.stop()


async def open_current_database(settings: Settings, command: str) -> Database | None:
    """The journal's database once its schema is checked current; otherwise one line naming
    `hotline db upgrade` on stderr and None (the command then exits with status 2)."""
    from journal.db import Database
    from journal.migrations import SchemaError

    db = Database(settings.database_url)
    try:
        await db.require_current_schema()
    except SchemaError as exc:
        await db.dispose()
        print(f"{command}: {exc}", file=sys.stderr)
        return None
    return db
