"""A fresh schema per test, on SQLite (tmp file) and on a private PostgreSQL database."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from storage.db import Database
from tests.services import require_postgres

_TABLES = (
    "escalation, turn, team_reply, customer_message, handoff, slack_thread, "
    "summary_post, oncall_override, conversation, stats_conversation_hour, stats_hour"
)


def _dsn(url: str, database: str) -> str:
    return (
        make_url(url)
        .set(drivername="postgresql", database=database)
        .render_as_string(hide_password=False)
    )


def _run(work: Coroutine[Any, Any, None]) -> None:
    """Run set-up work on its own loop: the session fixture is first asked for
    from inside a test's running loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, work).result()


async def _admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(_dsn(url, make_url(url).database or "postgres"))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A uniquely named database for this test session, dropped at the end."""
    base = require_postgres()
    name = f"relaydesk_stats_{secrets.token_hex(4)}"
    _run(_admin(base, f'CREATE DATABASE "{name}"'))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    _run(_migrate(url))
    try:
        yield url
    finally:
        _run(_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _migrate(url: str) -> None:
    db = Database(url)
    try:
        await db.migrate()
    finally:
        await db.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: object) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite+aiosqlite:///{tmp_path}/stats.db")
        await database.migrate()
    else:
        database = Database(request.getfixturevalue("postgres_url"))
        async with database.session() as session:
            await session.execute(text(f"TRUNCATE {_TABLES} RESTART IDENTITY CASCADE"))
    try:
        yield database
    finally:
        await database.dispose()
