"""``hotline recordings reconcile|verify|purge`` — maintenance commands (cron-friendly).

Exit status: 0 when all is well, 1 when the report found something to look at (missing
recordings, tampered files) or the recordings storage could not be reached, 2 on bad usage or
a schema that is not current (run `hotline db upgrade`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from recordings.storage import StorageUnavailable


class ProgressBar:
    """``[#####.....] 50/100`` on stderr, redrawn in place; silent for short runs."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30,
                 min_total: int = 20) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.min_total = min_total
        self._shown = -1

    def __call__(self, done: int, total: int) -> None:
        if total < self.min_total:
            return
        filled = self.width * done // total
        if filled == self._shown and done != total:
            return
        self._shown = filled
        bar = "#" * filled + "." * (self.width - filled)
        end = "\n" if done == total else ""
        self.stream.write(f"\r{self.label} [{bar}] {done}/{total}{end}")
        self.stream.flush()


def _since(raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError("дата в формате ГГГГ-ММ-ДД или ISO 8601") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _run(job: Callable[[Any, Any], Awaitable[int]]) -> int:
    from hotline.startup import open_current_database
    from hotline.startup import settings_or_exit as _settings
    from recordings.wiring import build_worker

    settings = _settings()

    async def main() -> int:
        db = await open_current_database(settings, "hotline recordings")
        if db is None:
            return 2
        worker = build_worker(settings, db)
        try:
            return await job(worker, settings)
        except StorageUnavailable as exc:
            print(f"хранилище записей недоступно: {exc}", file=sys.stderr)
            return 1
        finally:
            await worker.storage.aclose()
            await db.dispose()

    return asyncio.run(main())


def _label(number: int | None) -> str:
    return f"заявка {number}" if number is not None else "без заявки"


def cmd_reconcile(args: argparse.Namespace) -> int:
    from recordings.reconcile import reconcile

    async def job(worker: Any, _settings: Any) -> int:
        report = await reconcile(worker, since=args.since, progress=ProgressBar("сверка"))
        out = sys.stdout
        print(f"привязано записей: {len(report.linked)}", file=out)
        for number, rid, status in report.linked:
            print(f"  {_label(number)}: запись {rid} — {status}", file=out)
        print(f"записей нет в хранилище: {len(report.missing)}", file=out)
        for number, rid, path in report.missing:
            print(f"  {_label(number)}: запись {rid} — {path}", file=out)
        print(f"звонков на 8-800 без записи: {len(report.calls_without_recording)}", file=out)
        for number, linkedid, started in report.calls_without_recording:
            print(f"  {_label(number)}: звонок {linkedid} от {started:%Y-%m-%d %H:%M:%S}",
                  file=out)
        print(f"файлов без звонка: {len(report.files_without_call)}", file=out)
        for path in report.files_without_call:
            print(f"  {path}", file=out)
        return 1 if report.missing or report.calls_without_recording else 0

    return _run(job)


def cmd_verify(args: argparse.Namespace) -> int:
    from recordings.reconcile import verify

    async def job(worker: Any, _settings: Any) -> int:
        report = await verify(worker, progress=ProgressBar("проверка"))
        print(f"проверено записей: {report.checked}")
        print(f"изменены после привязки: {len(report.tampered)}")
        for number, rid, path in report.tampered:
            print(f"  ИЗМЕНЕНА {_label(number)}: запись {rid} — {path}")
        print(f"пропали из хранилища: {len(report.gone)}")
        for number, rid, path in report.gone:
            print(f"  ПРОПАЛА {_label(number)}: запись {rid} — {path}")
        for number, rid, path in report.restored:
            print(f"  восстановлена {_label(number)}: запись {rid} — {path}")
        return 1 if report.tampered or report.gone else 0

    return _run(job)


def cmd_purge(args: argparse.Namespace) -> int:
    from recordings.retention import purge

    async def job(worker: Any, settings: Any) -> int:
        keep = args.keep_days or settings.recordings_keep_days
        report = await purge(worker, keep, dry_run=args.dry_run)
        verb = "будет удалено" if args.dry_run else "удалено"
        print(f"срок хранения {keep} дн.; {verb} записей закрытых заявок: "
              f"{len(report.purged)}")
        for number, rid, path in report.purged:
            print(f"  заявка {number}: запись {rid} — {path}")
        return 0

    return _run(job)


def register(subparsers: Any) -> None:
    """Add ``recordings`` with its sub-commands to the ``hotline`` parser."""
    parser = subparsers.add_parser("recordings", help="recordings: reconcile, verify, purge")
    sub = parser.add_subparsers(dest="recordings_command", required=True)
    rec = sub.add_parser("reconcile", help="link late files; report calls and files "
                                           "without a counterpart")
    rec.add_argument("--since", type=_since, help="only calls since DATE (YYYY-MM-DD)")
    rec.set_defaults(func=cmd_reconcile)
    ver = sub.add_parser("verify", help="re-hash linked files; report changed ones")
    ver.set_defaults(func=cmd_verify)
    pur = sub.add_parser("purge", help="delete recordings of closed requests past retention")
    pur.add_argument("--keep-days", type=int, help="override HOTLINE_RECORDINGS_KEEP_DAYS")
    pur.add_argument("--dry-run", action="store_true", help="only list what would go")
    pur.set_defaults(func=cmd_purge)
