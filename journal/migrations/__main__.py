"""``python -m journal.migrations revision -m "users.locked_until"``: write the next revision.

It builds a scratch SQLite database at the current head, lets Alembic compare it with the
models (``journal/models.py``) and writes ``versions/NNNN_<slug>.py`` with the operations it
found. Read and finish it by hand (data moves, server defaults, triggers: see
docs/DESIGN-NOTES.md "Schema migrations"); the tests check that every revision run from an
empty database gives exactly the models' schema on SQLite and PostgreSQL.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine

from journal.migrations import _scripts, config


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m journal.migrations")
    sub = parser.add_subparsers(dest="command", required=True)
    revision = sub.add_parser("revision", help="write the next revision from the models")
    revision.add_argument("-m", "--message", required=True, help="what the revision changes")
    args = parser.parse_args(argv)

    latest = _scripts().get_current_head()
    rev_id = f"{int(latest) + 1:04d}" if latest else "0001"
    with tempfile.TemporaryDirectory() as scratch:
        engine = create_engine(f"sqlite:///{Path(scratch) / 'head.sqlite3'}")
        with engine.begin() as conn:
            if latest:
                command.upgrade(config(conn), "head")
            command.revision(config(conn), message=args.message, autogenerate=True,
                             rev_id=rev_id)
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
