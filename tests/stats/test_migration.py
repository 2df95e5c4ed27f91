"""Migration 0002 (the stats covering indexes) on a database that already holds data.

Runs on SQLite and PostgreSQL: the schema is built at 0001, conversations are
stored through the real Repository, then 0002 is applied and reverted. The
figures must not move, and the stats scans must read the new indexes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from storage import rollups
from storage.db import Database, alembic_config
from storage.stats import compute
from tests.pg import fresh_postgres
from tests.stats.builder import Builder

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
NEW = {("customer_message", "ix_customer_message_sent"), ("turn", "ix_turn_window")}
OLD = {("customer_message", "ix_customer_message_sent_at"), ("turn", "ix_turn_started")}
ROLLUPS = ("stats_conversation_hour", "stats_hour")
OPEN_0001 = ["answered_at", "started_at"]
OPEN_0002 = ["answered_at", "started_at", "conversation_id", "network", "team"]


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty(request: pytest.FixtureRequest, tmp_path: object) -> AsyncIterator[Database]:
    """A database with no schema at all."""
    if request.param == "sqlite":
        database = Database(f"sqlite+aiosqlite:///{tmp_path}/migrate.db")
        try:
            yield database
        finally:
            await database.dispose()
        return
    async with fresh_postgres() as url:
        database = Database(url)
        try:
            yield database
        finally:
            await database.dispose()


async def _alembic(db: Database, action: str, revision: str) -> None:
    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)

    async with db.engine.begin() as connection:
        await connection.run_sync(run)


async def _indexes(db: Database) -> dict[tuple[str, str], list[str | None]]:
    """(table, index name) -> its columns, for the two tables 0002 changes."""

    def read(connection: Connection) -> dict[tuple[str, str], list[str | None]]:
        inspector = inspect(connection)
        return {
            (table, index["name"]): list(index["column_names"])
            for table in ("customer_message", "turn")
            for index in inspector.get_indexes(table)
            if index["name"] is not None
        }

    async with db.engine.connect() as connection:
        return await connection.run_sync(read)


async def _plan(db: Database, sql: str) -> str:
    explain = "EXPLAIN QUERY PLAN " if db.dialect == "sqlite" else "EXPLAIN "
    async with db.engine.connect() as connection:
        rows = (await connection.execute(text(explain + sql))).all()
    return "\n".join(str(value) for row in rows for value in row)


async def _figures(db: Database) -> dict[str, Any]:
    return await compute(db, T0, T0 + timedelta(hours=3), now=T0 + timedelta(hours=4))


async def _later_columns(db: Database) -> None:
    """The turn columns later revisions add, which the current Repository writes, and the
    moment (0013), ratings (0015) and roll-up tables, which today's figures read."""
    async with db.engine.begin() as connection:
        await connection.execute(
            text("ALTER TABLE turn ADD COLUMN business_response_seconds FLOAT")
        )
        await connection.execute(
            text(
                "CREATE TABLE moment (id INTEGER PRIMARY KEY, conversation_id INTEGER,"
                " network VARCHAR(32), at TIMESTAMP)"
            )
        )
        for name in ("csat_survey", "csat_rating"):
            await connection.run_sync(SQLModel.metadata.tables[name].create)
        rolled = [SQLModel.metadata.tables[name] for name in ROLLUPS]
        await connection.run_sync(lambda sync: SQLModel.metadata.create_all(sync, rolled))
        for statement in rollups.rebuild_statements(db.dialect):
            await connection.execute(text(statement))


async def test_0002_keeps_the_figures_and_is_reversible(empty: Database) -> None:
    db = empty
    # The data is written with today's models, then the schema taken back to 0001.
    await _alembic(db, "upgrade", "head")
    b = Builder(db)
    await b.customer("a", T0)
    await b.customer("a", T0 + timedelta(minutes=1))
    await b.reply("a", T0 + timedelta(minutes=5))  # 300 s, a first response
    await b.customer("a", T0 + timedelta(hours=1))
    await b.reply("a", T0 + timedelta(hours=1, minutes=2))  # 120 s
    await b.customer("b", T0 + timedelta(minutes=30), network="whatsapp")  # still waiting
    await _alembic(db, "downgrade", "0001")
    await _later_columns(db)  # today's stats queries read it
    before = await _figures(db)
    assert (before["received"], before["turns"], before["answered_turns"]) == (4, 3, 2)
    assert before["median_response_seconds"] == 210.0
    indexes = await _indexes(db)
    assert OLD <= indexes.keys()
    assert indexes[("turn", "ix_turn_open")] == OPEN_0001

    await _alembic(db, "upgrade", "0004")  # the last revision before the turn changes again

    indexes = await _indexes(db)
    assert NEW <= indexes.keys()
    assert not OLD & indexes.keys()
    assert indexes[("turn", "ix_turn_open")] == OPEN_0002
    assert await _figures(db) == before
    if db.dialect == "sqlite":  # PostgreSQL's choice depends on its statistics
        window = "'2026-03-02 10:00:00' AND '2026-03-02 13:00:00'"
        plan = await _plan(
            db, f"SELECT conversation_id FROM customer_message WHERE sent_at BETWEEN {window}"
        )
        assert "COVERING INDEX ix_customer_message_sent" in plan
        plan = await _plan(
            db,
            "SELECT network, team, answered_at, is_first, response_seconds FROM turn"
            f" WHERE started_at BETWEEN {window}",
        )
        assert "COVERING INDEX ix_turn_window" in plan
        plan = await _plan(
            db,
            "SELECT conversation_id, network, team FROM turn"
            " WHERE answered_at IS NULL AND started_at < '2026-03-02 13:00:00'",
        )
        assert "COVERING INDEX ix_turn_open" in plan

    await _alembic(db, "downgrade", "0001")

    indexes = await _indexes(db)
    assert OLD <= indexes.keys()
    assert not NEW & indexes.keys()
    assert indexes[("turn", "ix_turn_open")] == OPEN_0001
    assert await _figures(db) == before


async def test_0006_fills_business_response_time_and_is_reversible(empty: Database) -> None:
    """Turns answered before 0006 get their wall-clock figure as the business one."""
    db = empty
    await _alembic(db, "upgrade", "head")
    b = Builder(db)
    await b.customer("a", T0)
    await b.reply("a", T0 + timedelta(minutes=5))
    await b.customer("a", T0 + timedelta(hours=1))
    await b.reply("a", T0 + timedelta(hours=1, minutes=2))
    before = await _figures(db)
    assert before["avg_business_response_seconds"] == before["avg_response_seconds"] == 210.0

    await _alembic(db, "downgrade", "0005")
    assert "business_response_seconds" not in await _turn_columns(db)
    await _alembic(db, "upgrade", "head")

    assert await _figures(db) == before
    indexes = await _indexes(db)
    assert indexes[("turn", "ix_turn_window")][-1] == "business_response_seconds"


async def _turn_columns(db: Database) -> set[str]:
    def read(connection: Connection) -> set[str]:
        return {column["name"] for column in inspect(connection).get_columns("turn")}

    async with db.engine.connect() as connection:
        return await connection.run_sync(read)
