"""The ``hotline`` command: serve, db, demo, replay, users, recordings."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hotline.logs import setup_logging
from hotline.startup import open_current_database, run_service
from hotline.startup import settings_or_exit as _settings

if TYPE_CHECKING:
    pass

Command = Callable[[argparse.Namespace], int]


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings()
    setup_logging(settings.log_level, settings.log_json)
    if not settings.ami_host:
        print("hotline: HOTLINE_AMI_HOST is not set: serving the journal without a PBX "
              "(use `hotline demo` for a replayed one)", file=sys.stderr)
    from journal.migrations import SchemaError

    try:
        asyncio.run(run_service(settings))
    except SchemaError as exc:
        # Never migrate behind the operator's back: the upgrade is its own step.
        print(f"hotline: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from journal.db import Database
    from journal.migrations import BASELINE, SchemaError

    settings = _settings()
    setup_logging("warning")

    async def main() -> int:
        db = Database(settings.database_url)
        try:
            done = await db.upgrade_schema()
        except SchemaError as exc:
            print(f"hotline db upgrade: {exc}", file=sys.stderr)
            return 2
        finally:
            await db.dispose()
        before = done.before
        if done.adopted:
            print(f"журнал первой версии принят без изменений: ревизия {BASELINE}")
            before = BASELINE
        if before == done.after:
            print(f"схема базы последняя: {done.after}")
        else:
            print(f"схема базы обновлена: {before or 'пустая база'} → {done.after}")
        return 0

    return asyncio.run(main())


def cmd_db_current(args: argparse.Namespace) -> int:
    from journal.db import Database

    settings = _settings()

    async def main() -> int:
        db = Database(settings.database_url)
        try:
            state = await db.schema_state()
        finally:
            await db.dispose()
        print(state.current or "нет схемы")
        problem = state.problem()
        if problem is not None:
            print(f"hotline db current: {problem}", file=sys.stderr)
            return 1
        return 0

    return asyncio.run(main())


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


_MISMATCH_TEXT = {"no_request": "нет заявки", "no_recording": "нет записи разговора",
                  "not_in_cel": "заявка есть, звонка нет в CEL"}


def cmd_audit_completeness(args: argparse.Namespace) -> int:
    """Inbound 8-800 calls of a day by CEL vs requests vs linked recordings; 1 if any missing."""
    import json as json_module
    from datetime import date

    from hotline.service import cel_source_of, routing_of
    from journal.completeness import check_day, report_json

    settings = _settings()
    setup_logging("warning")
    if not settings.cel_url:
        print("hotline audit completeness: HOTLINE_CEL_URL is not set", file=sys.stderr)
        return 2
    try:
        day = date.fromisoformat(args.date)
    except ValueError:
        print(f"hotline audit completeness: --date {args.date!r}: expected YYYY-MM-DD",
              file=sys.stderr)
        return 2

    async def main() -> int:
        db = await open_current_database(settings, "hotline audit completeness")
        if db is None:
            return 2
        source = cel_source_of(settings)
        try:
            report = await check_day(source, db, routing_of(settings), pbx_id=settings.pbx_id,
                                     day=day, timezone=settings.pbx_timezone)
        finally:
            await source.close()
            await db.dispose()
        if args.json:
            print(json_module.dumps(report_json(report), ensure_ascii=False))
        else:
            print(f"{day.isoformat()}: звонков на 8-800 по CEL {report.cel_calls} "
                  f"(отвечено {report.answered}), заявок {report.requests}, "
                  f"записей привязано {report.recordings_linked}")
            for m in report.mismatches:
                number = f"заявка {m.request_number}" if m.request_number else "—"
                print(f"  {m.started_at.isoformat()}  {m.linkedid}  {m.caller}  {number}  "
                      f"{_MISMATCH_TEXT[m.kind]}")
            print("полнота: да" if report.complete
                  else f"полнота: НЕТ, не хватает {report.missing}")
        return 0 if report.complete else 1

    return asyncio.run(main())


def cmd_cel_backfill(args: argparse.Namespace) -> int:
    """One backfill pass now (the service does it by itself; this is for a first load)."""
    from datetime import UTC, datetime, timedelta

    from hotline.assembly import build_services

    settings = _settings()
    setup_logging("warning")
    if not settings.cel_url:
        print("hotline cel backfill: HOTLINE_CEL_URL is not set", file=sys.stderr)
        return 2

    async def main() -> int:
        db = await open_current_database(settings, "hotline cel backfill")
        if db is None:
            return 2
        await db.dispose()
        services = build_services(settings)
        backfill = services.build_backfill()
        since = datetime.now(UTC) - timedelta(hours=args.hours) if args.hours else None
        try:
            report = await backfill.run(since=since)
            recordings = services.recordings
            if recordings is not None and report.created:
                await recordings.rescan()
        finally:
            await services.stop()
        print(f"CEL: строк {report.rows}, звонков на 8-800 {report.calls}, "
              f"восстановлено заявок {len(report.created)}, дополнено {len(report.filled)}, "
              f"ещё идут {report.in_progress}")
        return 0

    return asyncio.run(main())


def _trace_file(path: str) -> Path:
    candidate = Path(path)
    return candidate / "trace.jsonl" if candidate.is_dir() else candidate


def cmd_users_add(args: argparse.Namespace) -> int:
    from journal.users import UserError, add_user

    settings = _settings()
    if sys.stdin.isatty():
        password = getpass.getpass("Пароль: ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")

    async def main() -> int:
        db = await open_current_database(settings, "hotline users add")
        if db is None:
            return 2
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

    db = sub.add_parser("db", help="the journal's schema (migrations)").add_subparsers(
        dest="db_command", required=True)
    upgrade = db.add_parser("upgrade", help="bring the schema to this version's revision "
                            "(adopts a journal made by the first release)")
    upgrade.set_defaults(func=cmd_db_upgrade)
    current = db.add_parser("current", help="print the schema's revision; status 1 if it is "
                            "not this version's")
    current.set_defaults(func=cmd_db_current)

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

    audit = sub.add_parser("audit", help="completeness proofs").add_subparsers(
        dest="audit_command", required=True)
    complete = audit.add_parser(
        "completeness", help="inbound 8-800 calls by CEL vs requests vs recordings for a day; "
        "exit status 1 when something is missing")
    complete.add_argument("--date", required=True, help="YYYY-MM-DD, the PBX's local day")
    complete.add_argument("--json", action="store_true")
    complete.set_defaults(func=cmd_audit_completeness)

    cel = sub.add_parser("cel", help="CEL backfill").add_subparsers(dest="cel_command",
                                                                   required=True)
    run_backfill = cel.add_parser("backfill", help="recover calls the service did not see, now")
    run_backfill.add_argument("--hours", type=float, default=None,
                              help="read this far back (default: from the stored mark)")
    run_backfill.set_defaults(func=cmd_cel_backfill)

    for extend in _extensions():
        extend(sub)
    return parser


def _extensions() -> list[Callable[[argparse._SubParsersAction[Any]], None]]:
    """Sub-commands kept in their own modules (recordings)."""
    from hotline.recordings_cli import register as register_recordings

    return [register_recordings]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
