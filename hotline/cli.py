"""The ``hotline`` command: serve, demo, replay, users, recordings."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from aiohttp import web

from config import ConfigError, Settings, load_settings
from hotline.logs import setup_logging

Command = Callable[[argparse.Namespace], int]


def _settings(**overrides: object) -> Settings:
    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        print(f"hotline: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


async def run_service(settings: Settings, *, until: asyncio.Event | None = None,
                      announce: bool = True) -> None:
    """Run the service until SIGINT/SIGTERM (or ``until`` is set)."""
    from hotline.assembly import build_services
    from hotline.runtime import settle_heap
    from hotline.web.app import create_app

    services = build_services(settings)
    await services.start()
    runner = web.AppRunner(create_app(services), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.http_host, settings.http_port)
    await site.start()
    settle_heap()
    if announce:
        print(f"hotline: listening on http://{settings.http_host}:{settings.http_port}/ "
              f"(AMI {settings.ami_host}:{settings.ami_port}, database "
              f"{settings.database_url.split('://')[0]})", file=sys.stderr)
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


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings()
    setup_logging(settings.log_level, settings.log_json)
    if not settings.ami_host:
        print("hotline: HOTLINE_AMI_HOST is not set: serving the journal without a PBX "
              "(use `hotline demo` for a replayed one)", file=sys.stderr)
    asyncio.run(run_service(settings))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from hotline.demo import run_demo

    setup_logging("info")
    return asyncio.run(run_demo(port=args.port, speed=args.speed))


def cmd_replay(args: argparse.Namespace) -> int:
    from telephony.replay import ReplayPeer
    from telephony.trace import read_trace

    setup_logging("info")
    items = [item for path in args.trace for item in read_trace(_trace_file(path))]

    async def main() -> None:
        peer = ReplayPeer(items, speed=args.speed, username=args.username, secret=args.secret,
                          rounds=None if args.loop else 1, round_pause_s=args.pause)
        port = await peer.start(args.host, args.port)
        print(f"hotline replay: AMI peer on {args.host}:{port}, {len(items)} trace lines",
              file=sys.stderr)
        await peer.done.wait()
        print(f"hotline replay: done, {peer.stats.events_sent} events sent", file=sys.stderr)
        await asyncio.sleep(args.linger)
        await peer.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0


def _trace_file(path: str) -> Path:
    candidate = Path(path)
    return candidate / "trace.jsonl" if candidate.is_dir() else candidate


def cmd_users_add(args: argparse.Namespace) -> int:
    from journal.db import Database
    from journal.users import UserError, add_user

    settings = _settings()
    if sys.stdin.isatty():
        password = getpass.getpass("Пароль: ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")

    async def main() -> int:
        db = Database(settings.database_url)
        await db.create_schema()
        try:
            async with db.sessions.begin() as session:
                user = await add_user(session, args.login, password, args.role, args.smo,
                                      args.extension, args.full_name)
                print(f"user {user.login} ({user.role}) added")
            return 0
        except UserError as exc:
            print(f"hotline users add: {exc}", file=sys.stderr)
            return 2
        finally:
            await db.dispose()

    return asyncio.run(main())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hotline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the service (settings from HOTLINE_* variables)")
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="the service on SQLite fed by a replayed demo PBX")
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument("--speed", type=float, default=1.0)
    demo.set_defaults(func=cmd_demo)

    replay = sub.add_parser("replay", help="a TCP AMI peer replaying recorded traces")
    replay.add_argument("trace", nargs="+", help="trace.jsonl files or scenario folders")
    replay.add_argument("--host", default="127.0.0.1")
    replay.add_argument("--port", type=int, default=5038)
    replay.add_argument("--speed", type=float, default=1.0, help="0 = as fast as possible")
    replay.add_argument("--username", default="journal")
    replay.add_argument("--secret", default="journal-secret")
    replay.add_argument("--loop", action="store_true", help="repeat with fresh ids")
    replay.add_argument("--pause", type=float, default=2.0, help="seconds between rounds")
    replay.add_argument("--linger", type=float, default=3600.0,
                        help="seconds to stay up after the last event")
    replay.set_defaults(func=cmd_replay)

    users = sub.add_parser("users", help="manage users").add_subparsers(dest="users_command",
                                                                        required=True)
    add = users.add_parser("add", help="add a user; the password is read from stdin")
    add.add_argument("login")
    add.add_argument("--role", required=True,
                     choices=["admin", "operator", "smo", "auditor", "anticorruption"])
    add.add_argument("--smo")
    add.add_argument("--extension")
    add.add_argument("--full-name")
    add.set_defaults(func=cmd_users_add)

    for extend in _extensions():
        extend(sub)
    return parser


def _extensions() -> list[Callable[[argparse._SubParsersAction], None]]:  # type: ignore[type-arg]
    """Sub-commands contributed by other packages (recordings, reports)."""
    found = []
    with contextlib.suppress(ImportError):
        from recordings.cli import register as register_recordings

        found.append(register_recordings)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
