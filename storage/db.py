"""Engine, sessions and schema migrations (alembic) for SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class DatabaseUnavailable(Exception):
    """SQL cannot be reached; callers answer 503 and the sender retries."""


def _sqlite_pragmas(dbapi_connection: object, _record: ConnectionPoolEntry) -> None:
    # Transactions are begun by `_sqlite_begin`, not by the driver.
    dbapi_connection.isolation_level = None  # type: ignore[attr-defined]
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    """BEGIN IMMEDIATE: take SQLite's write lock up front, so two transactions that read
    then write wait for each other (busy_timeout) instead of failing with "locked"."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        kwargs: dict[str, object] = {"pool_pre_ping": True}
        if url.startswith("postgresql"):
            kwargs.update(pool_size=pool_size, max_overflow=pool_size)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction: committed on success, rolled back on error."""
        try:
            async with self.sessions() as session, session.begin():
                yield session
        except (OperationalError, DBAPIError, OSError) as exc:
            if _is_connection_error(exc):
                raise DatabaseUnavailable(str(exc).splitlines()[0]) from exc
            raise

    async def ping(self) -> None:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (OperationalError, DBAPIError, OSError) as exc:
            raise DatabaseUnavailable(str(exc).splitlines()[0]) from exc

    async def migrate(self) -> None:
        """Bring the schema to the newest alembic revision."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade)

    async def dispose(self) -> None:
        await self.engine.dispose()


def _is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, OSError | ConnectionError | asyncio.TimeoutError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    orig = getattr(exc, "orig", None)
    name = type(orig).__name__ if orig is not None else ""
    return "Connection" in name or "CannotConnect" in name or isinstance(orig, OSError)


async def insert_ignore(
    session: AsyncSession, model: type[Any], keys: tuple[str, ...], **values: Any
) -> Any:
    """INSERT ... ON CONFLICT (keys) DO NOTHING RETURNING <first primary key column>.

    The new row's key, or None when the row existed: unique constraints make
    retried deliveries and racing processes harmless.
    """
    dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    table = model.__table__
    statement = (
        dialect.insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=list(keys))
        .returning(table.primary_key.columns[0])
    )
    return (await session.execute(statement)).scalar_one_or_none()


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
