"""Schema migrations: Alembic, configured in code (no alembic.ini), scripts shipped in this
package (``versions/``), run on a connection the caller opens.

The journal's schema is made and changed only by these revisions: ``hotline db upgrade`` runs
them, ``hotline serve`` and the other commands refuse a database that is behind
(``require_current``). Revision 0001 is the first release's schema (what its
``metadata.create_all`` made, with the closed-request triggers and the request counter row); a
journal made by that release has the tables but no ``alembic_version`` table, and ``upgrade``
adopts it: it checks the tables and columns are exactly 0001's and stamps it, rows untouched.

The functions here are synchronous and take a SQLAlchemy ``Connection``; ``journal.db.Database``
runs them through ``run_sync`` on its own engine, so a PostgreSQL ``search_path`` (the schema
the service and the tests use) also holds the ``alembic_version`` table.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.autogenerate.api import AutogenContext
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Connection

from journal.models import UtcDateTime

HERE = Path(__file__).resolve().parent
# The revision a journal made by the first release (metadata.create_all) is adopted at.
BASELINE = "0001"
UPGRADE_COMMAND = "hotline db upgrade"


class SchemaError(Exception):
    """The database's schema is not the one this code needs, or cannot be brought there."""


def config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, in code: the scripts of this package, the caller's connection
    (read by env.py)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    cfg.attributes["connection"] = connection
    return cfg


def render_item(kind: str, obj: Any, autogen: AutogenContext) -> str | Literal[False]:
    """Autogenerate's rendering hook (env.py): ``UtcDateTime`` is written as the type it
    stores, ``DateTime(timezone=True)``. Left to Alembic it would be written as
    ``journal.models.UtcDateTime(...)``, which a revision cannot use without importing the
    models as they are today; revisions must keep describing the schema of their time."""
    if kind == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(config())


def head() -> str:
    """The newest revision this code knows (the schema its models describe)."""
    found = _scripts().get_current_head()
    assert found is not None, "no revisions in journal/migrations/versions"
    return found


def revisions() -> list[str]:
    """Every revision, oldest first."""
    return [script.revision for script in _scripts().walk_revisions()][::-1]


def current(conn: Connection) -> str | None:
    """The revision the database is at; None when it has no ``alembic_version`` table."""
    return MigrationContext.configure(conn).get_current_revision()


def _is_known(revision: str) -> bool:
    try:
        return _scripts().get_revision(revision) is not None
    except CommandError:
        return False


@dataclass(frozen=True)
class SchemaState:
    current: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    def problem(self) -> str | None:
        """One line for the operator when the schema does not fit the code, else None."""
        if self.up_to_date:
            return None
        if self.current is not None and not _is_known(self.current):
            return (f"схема базы новее программы (ревизия {self.current}, программа знает до "
                    f"{self.head}): обновите программу")
        return (f"схема базы устарела: выполните `{UPGRADE_COMMAND}` "
                f"(в базе: {self.current or 'нет схемы'}, нужна: {self.head})")


def state(conn: Connection) -> SchemaState:
    return SchemaState(current(conn), head())


def require_current(conn: Connection) -> None:
    """Raise ``SchemaError`` (one line naming the command) unless the database is at head."""
    problem = state(conn).problem()
    if problem is not None:
        raise SchemaError(problem)


@dataclass(frozen=True)
class Upgraded:
    before: str | None
    after: str
    adopted: bool  # a first-release journal was checked and stamped at BASELINE


def upgrade(conn: Connection) -> Upgraded:
    """Bring the database to head: from empty, from any earlier revision, or from a journal
    made by the first release (adopted: checked against 0001 and stamped, nothing rewritten).

    Run inside the caller's transaction (PostgreSQL runs the DDL transactionally too)."""
    before = current(conn)
    adopted = False
    if before is None:
        adopted = _adopt_first_release(conn)
    elif not _is_known(before):
        raise SchemaError(state(conn).problem() or before)
    command.upgrade(config(conn), "head")
    return Upgraded(before, head(), adopted)


def _adopt_first_release(conn: Connection) -> bool:
    """Stamp a journal made by ``metadata.create_all`` (no version table) at BASELINE, once
    its tables and columns are checked to be exactly 0001's; False when the database has none
    of the journal's tables (a fresh one: 0001 creates them)."""
    expected = baseline_tables()
    inspector = inspect(conn)
    present = set(inspector.get_table_names()) & set(expected)
    if not present:
        return False
    problems = [f"нет таблицы {name}" for name in sorted(set(expected) - present)]
    for name in sorted(present):
        columns = {column["name"] for column in inspector.get_columns(name)}
        problems += [f"нет столбца {name}.{c}" for c in sorted(expected[name] - columns)]
        problems += [f"лишний столбец {name}.{c}" for c in sorted(columns - expected[name])]
    if problems:
        raise SchemaError("база без alembic_version не совпадает с журналом первой версии, "
                          "принять её нельзя: " + "; ".join(problems))
    command.stamp(config(conn), BASELINE)
    # The first release seeded the counter at every start; a journal stopped before its first
    # start may lack it (the name is journal.db.REQUEST_COUNTER, frozen here as in 0001).
    conn.execute(text("INSERT INTO counters (name, value) SELECT 'request', 0 WHERE NOT EXISTS "
                      "(SELECT 1 FROM counters WHERE name = 'request')"))
    return True


@functools.cache
def baseline_tables() -> dict[str, frozenset[str]]:
    """0001's tables and their columns, read from 0001 itself run on an in-memory SQLite
    database (one description of the first release's schema, not two)."""
    engine = create_engine("sqlite://")
    try:
        with engine.begin() as conn:
            command.upgrade(config(conn), BASELINE)
            inspector = inspect(conn)
            return {name: frozenset(column["name"] for column in inspector.get_columns(name))
                    for name in inspector.get_table_names() if name != "alembic_version"}
    finally:
        engine.dispose()
