"""Schema migrations (issue 12): every revision from an empty database gives exactly the models'
schema on SQLite and PostgreSQL; a journal made by the first release (``metadata.create_all``)
is adopted with its requests, numbers, recordings and audit intact; the service and the
maintenance commands refuse a schema that is not current, with one line naming the command.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata, produce_migrations, render_python_code
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, create_engine, func, insert, inspect, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from bench.ingest import synthetic_calls
from hotline.assembly import build_services
from journal import migrations
from journal.db import Database
from journal.models import AuditEntry, Base, Counter, Recording, Request, User
from tests.conftest import REPO
from tests.helpers import wait_for

FIXTURES = Path(__file__).resolve().parent / "fixtures"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _database(db_url: tuple[str, str | None]) -> Database:
    return Database(db_url[0], schema=db_url[1])


def _schema_diff(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _triggers(conn: Connection) -> set[str]:
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'")
    else:
        rows = conn.exec_driver_sql(
            "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace")
    return {row[0] for row in rows}


def _step_by_step(conn: Connection) -> list[str]:
    """Upgrade one revision at a time, oldest first, so each revision runs on its own."""
    revisions = migrations.revisions()
    for revision in revisions:
        command.upgrade(migrations.config(conn), revision)
    return revisions


async def test_every_migration_from_an_empty_database_gives_the_models_schema(
        db_url: tuple[str, str | None]) -> None:
    db = _database(db_url)
    try:
        async with db.engine.begin() as conn:
            revisions = await conn.run_sync(_step_by_step)
            assert revisions[0] == migrations.BASELINE
            assert revisions[-1] == migrations.head()
            assert await conn.run_sync(_schema_diff) == []
            # The closed-request triggers and the request counter come with the schema.
            triggers = await conn.run_sync(_triggers)
            assert triggers == ({"trg_requests_closed_update", "trg_requests_closed_delete",
                                 "trg_recordings_closed_update", "trg_recordings_closed_delete"}
                                if db.is_sqlite else
                                {"trg_requests_closed", "trg_recordings_closed",
                                 # NOTIFY of stored notifications (several instances, 0004)
                                 "trg_notifications_notify"})
            assert (await conn.execute(select(Counter.name, Counter.value))).all() == \
                [("request", 0)]
            if db_url[1] is not None:  # the version table lives in the service's schema too
                assert await conn.scalar(text(
                    "SELECT count(*) FROM information_schema.tables WHERE table_schema = :s "
                    "AND table_name = 'alembic_version'"), {"s": db_url[1]}) == 1
        state = await db.schema_state()
        assert state.up_to_date and state.problem() is None
        again = await db.upgrade_schema()  # a second run changes nothing
        assert (again.before, again.after, again.adopted) == (state.head, state.head, False)
    finally:
        await db.dispose()


async def test_downgrade_to_base_removes_the_journal(db_url: tuple[str, str | None]) -> None:
    db = _database(db_url)
    try:
        await db.upgrade_schema()
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(migrations.config(c), "base"))
            tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
        assert set(tables) <= {"alembic_version"}
        assert (await db.upgrade_schema()).after == migrations.head()
    finally:
        await db.dispose()


# ------------------------------------------------------------ a journal of the first release
def _create_first_release_journal(conn: Connection) -> None:
    """The tables, indexes and triggers exactly as the first release's create_all made them
    (tests/fixtures), then a small journal written into them through the tables as reflected
    from that database (so later model changes cannot alter what this builds)."""
    sql = (FIXTURES / f"first_release.{conn.dialect.name}.sql").read_text(encoding="utf-8")
    body = "\n".join(line for line in sql.splitlines() if not line.startswith("--"))
    for statement in body.split(";\n\n"):
        if statement.strip():
            conn.exec_driver_sql(statement.strip().rstrip(";"))
    tables = MetaData()
    tables.reflect(conn)
    t = tables.tables

    def add(table: str, **values: Any) -> int:
        result = conn.execute(insert(t[table]).values(**values))
        return int(result.inserted_primary_key[0]) if result.inserted_primary_key else 0

    conn.execute(insert(t["counters"]).values(name="request", value=3))
    request_ids = []
    for number in (1, 2, 3):
        created = T0 + timedelta(minutes=number)
        request_id = add("requests", number=number, pbx_id="pbx1", linkedid=f"legacy-{number}",
                         created_at=created, line="88007070561",
                         caller_number=f"8916000000{number}",
                         caller_normalized=f"+7916000000{number}", status="new", level="1",
                         version=1, urgent=False, written_appeal_advised=False,
                         corruption=False, recording_missing=False,
                         summary=f"обращение {number}")
        request_ids.append(request_id)
        call_id = add("calls", request_id=request_id, pbx_id="pbx1", linkedid=f"legacy-{number}",
                      direction="inbound", caller_number=f"8916000000{number}",
                      line="88007070561", started_at=created, answered_at=created,
                      ended_at=created + timedelta(minutes=3), outcome="answered")
        add("call_legs", call_id=call_id, uniqueid=f"legacy-{number}.1",
            channel="PJSIP/101-0001", extension="101", answered_at=created)
        add("call_log", call_id=call_id, at=created, type="answer", data={"extension": "101"})
        add("recordings", request_id=request_id, call_id=call_id, pbx_id="pbx1",
            leg_uniqueid=f"legacy-{number}.1",
            pbx_path=f"/var/spool/asterisk/monitor/2026/11/02/in-legacy-{number}.wav",
            relative_path=f"2026/11/02/in-legacy-{number}.wav", status="linked",
            started_at=created, linked_at=created + timedelta(minutes=4), bytes=48044,
            duration_s=3.0, sha256=f"{number:064x}", content_type="audio/wav")
    # Request 3 closed: read-only from then on (the triggers must still say so).
    conn.execute(update(t["requests"]).where(t["requests"].c.number == 3).values(
        status="closed", closed_at=T0 + timedelta(hours=1), closed_by="admin"))
    user_id = add("users", login="admin", password_hash="x", role="admin", failed_logins=0,
                  locked=False, created_at=T0)
    conn.execute(insert(t["sessions"]).values(token_hash="a" * 64, user_id=user_id,
                                              csrf_token="c" * 64, created_at=T0,
                                              expires_at=T0 + timedelta(hours=12)))
    for number, action in ((3, "request.close"), (1, "recording.play")):
        add("audit_log", at=T0 + timedelta(hours=1), user_login="admin", action=action,
            request_number=number, remote="127.0.0.1", detail={"number": number})
    add("request_actions", request_id=request_ids[2], at=T0 + timedelta(hours=1),
        user_login="admin", action="close", data={})
    add("notifications", at=T0, type="call.ringing", request_number=1, payload={"n": 1})
    add("topic_classifier", code="policy", version=1, label="Полис ОМС", active=True,
        position=0, changed_at=T0)


async def test_first_release_journal_is_adopted_with_requests_numbers_recordings_and_audit(
        db_url: tuple[str, str | None], make_settings: Any, start_service: Any,
        replay_peer: Any) -> None:
    db = _database(db_url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_create_first_release_journal)
        state = await db.schema_state()
        assert state.current is None
        assert "hotline db upgrade" in (state.problem() or "")
        with pytest.raises(migrations.SchemaError, match="hotline db upgrade"):
            await db.require_current_schema()

        done = await db.upgrade_schema()
        assert done.adopted and done.before is None and done.after == migrations.head()
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_schema_diff) == []
        async with db.session() as session:
            requests = (await session.execute(
                select(Request.number, Request.linkedid, Request.summary, Request.status)
                .order_by(Request.number))).all()
            assert requests == [(1, "legacy-1", "обращение 1", "new"),
                                (2, "legacy-2", "обращение 2", "new"),
                                (3, "legacy-3", "обращение 3", "closed")]
            assert await session.scalar(select(Counter.value)) == 3
            recordings = (await session.execute(
                select(Recording.relative_path, Recording.sha256, Recording.status,
                       Recording.bytes).order_by(Recording.id))).all()
            assert [r.relative_path for r in recordings] == \
                [f"2026/11/02/in-legacy-{n}.wav" for n in (1, 2, 3)]
            assert {r.status for r in recordings} == {"linked"} and recordings[2].bytes == 48044
            assert recordings[2].sha256 == f"{3:064x}"
            audit = (await session.execute(
                select(AuditEntry.action, AuditEntry.request_number, AuditEntry.detail)
                .order_by(AuditEntry.id))).all()
            assert audit == [("request.close", 3, {"number": 3}),
                             ("recording.play", 1, {"number": 1})]
            assert await session.scalar(select(User.login)) == "admin"
        # The first release's triggers still guard the closed request.
        with pytest.raises(DBAPIError, match="closed request is read-only"):
            async with db.engine.begin() as conn:
                await conn.execute(text("UPDATE requests SET summary = 'x' WHERE number = 3"))
    finally:
        await db.dispose()

    # Numbering goes on from the adopted journal, gap-free.
    items, expected = synthetic_calls(2, 2, first_round=700, only=("s01",))
    peer = await replay_peer(items)
    harness = await start_service(make_settings(ami_port=peer.port, ami_backoff_max_s=0.05))
    await peer.done.wait()
    await wait_for(lambda: harness.services.pipeline.stats.messages >= len(items), 30)
    await harness.wait_calls_done(30)
    async with harness.services.db.session() as session:
        numbers = list(await session.scalars(select(Request.number).order_by(Request.number)))
        assert await session.scalar(select(func.count()).select_from(Recording)) >= 3
    assert expected >= 1 and numbers == list(range(1, 3 + expected + 1))


async def test_a_database_unlike_the_first_release_is_not_adopted(
        db_url: tuple[str, str | None]) -> None:
    db = _database(db_url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_create_first_release_journal)
            await conn.execute(text("ALTER TABLE users ADD COLUMN locked_until VARCHAR(40)"))
            await conn.execute(text("DROP TABLE topic_classifier"))
        with pytest.raises(migrations.SchemaError) as refused:
            await db.upgrade_schema()
        assert "лишний столбец users.locked_until" in str(refused.value)
        assert "нет таблицы topic_classifier" in str(refused.value)
        assert (await db.schema_state()).current is None  # nothing stamped
    finally:
        await db.dispose()


async def test_a_schema_newer_than_the_code_is_refused(db_url: tuple[str, str | None]) -> None:
    db = _database(db_url)
    try:
        await db.upgrade_schema()
        async with db.engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(migrations.SchemaError, match="новее программы"):
            await db.require_current_schema()
        with pytest.raises(migrations.SchemaError, match="новее программы"):
            await db.upgrade_schema()
    finally:
        await db.dispose()


async def test_service_refuses_to_start_on_an_empty_or_outdated_schema(
        db_url: tuple[str, str | None], make_settings: Any) -> None:
    services = build_services(make_settings(), db_schema=db_url[1])
    try:
        with pytest.raises(migrations.SchemaError) as refused:
            await services.start(connect_ami=False)
        message = str(refused.value)
        assert "\n" not in message
        assert message.startswith("схема базы устарела: выполните `hotline db upgrade`")
    finally:
        await services.stop()


# --------------------------------------------------------------------------- the commands
async def hotline(database_url: str, *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    env = {**os.environ, "HOTLINE_DATABASE_URL": database_url, "HOTLINE_HTTP_PORT": "0"}
    env.pop("HOTLINE_AMI_HOST", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hotline.cli", *args, cwd=REPO, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_db_upgrade_and_current_commands_and_the_refusals(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'journal.sqlite3'}"
    head = migrations.head()

    code, out, err = await hotline(url, "serve")
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        f"hotline: схема базы устарела: выполните `hotline db upgrade` "
        f"(в базе: нет схемы, нужна: {head})")
    code, _out, err = await hotline(url, "users", "add", "admin", "--role", "admin",
                                    stdin=b"a-long-password\n")
    assert code == 2 and "выполните `hotline db upgrade`" in err
    code, _out, err = await hotline(url, "recordings", "verify")
    assert code == 2 and "выполните `hotline db upgrade`" in err
    code, out, err = await hotline(url, "db", "current")
    assert code == 1 and out.strip() == "нет схемы" and "hotline db upgrade" in err

    code, out, _err = await hotline(url, "db", "upgrade")
    assert code == 0 and out.strip() == f"схема базы обновлена: пустая база → {head}"
    code, out, _err = await hotline(url, "db", "current")
    assert code == 0 and out.strip() == head


async def test_db_upgrade_adopts_a_first_release_journal_file(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'journal.sqlite3'}"
    db = Database(url)
    async with db.engine.begin() as conn:
        await conn.run_sync(_create_first_release_journal)
    await db.dispose()
    code, out, _err = await hotline(url, "db", "upgrade")
    assert code == 0
    assert out.splitlines()[0] == \
        f"журнал первой версии принят без изменений: ревизия {migrations.BASELINE}"
    code, out, _err = await hotline(url, "db", "current")
    assert code == 0 and out.strip() == migrations.head()


def test_migration_scripts_ship_inside_the_package() -> None:
    # `pip install .` must carry env.py, the revisions (a package of their own) and the
    # revision template: there is no alembic.ini or scripts folder outside the package.
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert '"alembic>=' in pyproject and '"migrations/script.py.mako"' in pyproject
    versions = Path(migrations.__file__).parent / "versions"
    assert (versions / "__init__.py").exists()
    assert sorted(migrations.baseline_tables())[:2] == ["audit_log", "call_legs"]


def test_autogenerate_writes_utc_datetime_as_the_stored_type() -> None:
    # A revision describes the schema of its time: UtcDateTime is written as the
    # DateTime(timezone=True) it stores, never as an import of today's models.
    engine = create_engine("sqlite://")
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={
                "compare_type": True, "render_item": migrations.render_item})
            code = render_python_code(produce_migrations(context, Base.metadata).upgrade_ops,
                                      render_item=migrations.render_item)
    finally:
        engine.dispose()
    assert "sa.Column('created_at', sa.DateTime(timezone=True), nullable=False)" in code
    assert "UtcDateTime" not in code and "journal" not in code
    for script in (Path(migrations.__file__).parent / "versions").glob("0*.py"):
        lines = script.read_text(encoding="utf-8").splitlines()
        assert not [line for line in lines if line.startswith(("from journal", "import journal"))
                    or "UtcDateTime" in line], script.name
