"""Engine, sessions and schema migrations (alembic) for SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, CursorResult, Dialect, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import Compiled
from sqlalchemy.util import await_only, greenlet_spawn

T = TypeVar("T")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


_FENCE_SPACE = 0x52454C41  # "RELA": our namespace for advisory locks


class DatabaseUnavailable(Exception):
    """SQL cannot be reached; callers answer 503 and the sender retries."""


Parameters = Mapping[str, Any] | Sequence[Mapping[str, Any]]


class Execute(Protocol):
    """Runs one statement of a unit of work (`Database.run_unit`) and returns its rows
    (none for a write without RETURNING); a list of parameter sets runs it once per set."""

    dialect: str

    def __call__(
        self, statement: Executable, parameters: Parameters
    ) -> Sequence[Sequence[Any]]: ...


class _SessionExecute:
    def __init__(self, session: Session) -> None:
        assert session.bind is not None
        self.session = session
        self.dialect = session.bind.dialect.name

    def __call__(self, statement: Executable, parameters: Parameters) -> Sequence[Sequence[Any]]:
        result = cast("CursorResult[Any]", self.session.execute(statement, parameters))
        return list(result) if result.returns_rows else []


@dataclass(frozen=True)
class _Plan:
    """One statement as asyncpg runs it: SQL text, bind order and bind processors."""

    compiled: Compiled
    sql: str
    names: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]
    writes_only: bool  # INSERT/UPDATE/DELETE without RETURNING: executemany for many sets

    def arguments(self, parameters: Mapping[str, Any]) -> list[Any]:
        values = self.compiled.construct_params(parameters)
        assert values is not None
        return [
            values[name] if process is None else process(values[name])
            for name, process in zip(self.names, self.processors, strict=True)
        ]


class _AsyncpgExecute:
    """PostgreSQL: each statement compiled by SQLAlchemy (once per statement and set of
    keys, as SQLAlchemy does) and run on the asyncpg connection with SQLAlchemy's bind
    processors (JSON, UTC timestamps); JSON results are decoded by the codec
    SQLAlchemy's dialect installs on every connection."""

    dialect = "postgresql"
    _plans: dict[tuple[Executable, tuple[str, ...]], _Plan] = {}  # per process, a few dozen

    def __init__(self, connection: Any, dialect: Dialect) -> None:
        self._connection = connection
        self._dialect = dialect

    def __call__(self, statement: Executable, parameters: Parameters) -> Sequence[Sequence[Any]]:
        sets = [parameters] if isinstance(parameters, Mapping) else list(parameters)
        plan = self._plan(statement, tuple(sets[0]))
        arguments = [plan.arguments(one) for one in sets]
        if plan.writes_only and len(arguments) > 1:
            await_only(self._connection.executemany(plan.sql, arguments))
            return []
        return [
            row for one in arguments for row in await_only(self._connection.fetch(plan.sql, *one))
        ]

    def _plan(self, statement: Executable, keys: tuple[str, ...]) -> _Plan:
        plan = self._plans.get((statement, keys))
        if plan is None:
            compiled: Any = statement.compile(dialect=self._dialect, column_keys=list(keys))  # type: ignore[attr-defined]
            names = tuple(compiled.positiontup or ())
            binds = compiled.binds
            plan = _Plan(
                compiled,
                str(compiled),
                names,
                tuple(
                    binds[name].type.dialect_impl(self._dialect).bind_processor(self._dialect)
                    for name in names
                ),
                (compiled.isinsert or compiled.isupdate or compiled.isdelete)
                and not compiled.effective_returning,
            )
            self._plans[(statement, keys)] = plan
        return plan


class _SqliteExecute:
    """SQLite's writer thread: each statement compiled once (as for asyncpg) and run on
    the sqlite3 cursor of the session's transaction, with SQLAlchemy's bind and result
    processors (UTC timestamps, JSON): its execution layers had taken about half of the
    writer thread's CPU at saturation. A statement whose SQL SQLAlchemy would still
    rewrite at execution (post-compile parameters) goes through the session."""

    dialect = "sqlite"
    _plans: dict[tuple[Executable, tuple[str, ...]], _SqlitePlan | None] = {}  # per process

    def __init__(self, session: Session) -> None:
        connection = session.connection()  # begins: BEGIN IMMEDIATE (_sqlite_begin)
        self._session = session
        self._dialect = connection.dialect
        self._cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]

    def __call__(self, statement: Executable, parameters: Parameters) -> Sequence[Sequence[Any]]:
        sets = [parameters] if isinstance(parameters, Mapping) else list(parameters)
        plan = self._plan(statement, tuple(sets[0]))
        if plan is None:
            return _SessionExecute(self._session)(statement, parameters)
        arguments = [plan.arguments(one) for one in sets]
        cursor = self._cursor
        if plan.writes_only:
            cursor.executemany(plan.sql, arguments)
            return []
        rows: list[Sequence[Any]] = []
        for one in arguments:
            cursor.execute(plan.sql, one)
            rows.extend(plan.row(row) for row in cursor.fetchall())
        return rows

    def _plan(self, statement: Executable, keys: tuple[str, ...]) -> _SqlitePlan | None:
        key = (statement, keys)
        if key in self._plans:
            return self._plans[key]
        dialect = self._dialect
        compiled: Any = statement.compile(dialect=dialect, column_keys=list(keys))  # type: ignore[attr-defined]
        sql = str(compiled)
        plan = None
        if "POSTCOMPILE" not in sql:
            names = tuple(compiled.positiontup or ())
            binds = compiled.binds
            plan = _SqlitePlan(
                compiled,
                sql,
                names,
                tuple(
                    binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
                ),
                (compiled.isinsert or compiled.isupdate or compiled.isdelete)
                and not compiled.effective_returning,
                tuple(
                    column.type.dialect_impl(dialect).result_processor(dialect, None)
                    for column in compiled._result_columns
                ),
            )
        self._plans[key] = plan
        return plan


@dataclass(frozen=True)
class _SqlitePlan(_Plan):
    results: tuple[Callable[[Any], Any] | None, ...] = ()

    def row(self, row: Sequence[Any]) -> Sequence[Any]:
        if not any(self.results):
            return row
        return tuple(
            value if process is None else process(value)
            for value, process in zip(row, self.results, strict=True)
        )


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


# How often `/healthz` may rewrite the probe row (per process).
PROBE_SECONDS = 5.0
_PROBE = text(
    "INSERT INTO health_probe (id, probed_at) VALUES (1, :at)"
    " ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at"
)


class Database:
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        # No pool_pre_ping: it costs three round trips per checkout on asyncpg. A
        # connection lost with the server fails its statement once (DatabaseUnavailable:
        # 503, retried by the sender) and SQLAlchemy then renews the whole pool.
        kwargs: dict[str, object] = {}
        if url.startswith("postgresql"):
            kwargs.update(pool_size=pool_size, max_overflow=pool_size)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self.read_engine = self.engine
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)
            # Readers get their own connections without the write lock: in WAL mode
            # they never wait for (or hold up) the writer.
            self.read_engine = create_async_engine(url, **kwargs)
            event.listen(self.read_engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = async_sessionmaker(self.read_engine, expire_on_commit=False)
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None
        self._write_failure: str | None = None
        self._probed_at = -PROBE_SECONDS
        self._sync_engine: Engine | None = None
        self._sync_sessions: sessionmaker[Session] | None = None
        self._writer: ThreadPoolExecutor | None = None
        if self.dialect == "sqlite" and self.engine.url.database not in (None, "", ":memory:"):
            # Units of work given to `run_sync` run in one thread on the plain sqlite3
            # driver: one hop to that thread per transaction, instead of several hops
            # per statement through aiosqlite, each waiting for a busy event loop.
            self._sync_engine = create_engine(self.engine.url.set(drivername="sqlite+pysqlite"))
            event.listen(self._sync_engine, "connect", _sqlite_pragmas)
            event.listen(self._sync_engine, "begin", _sqlite_begin)
            self._sync_sessions = sessionmaker(self._sync_engine, expire_on_commit=False)
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="relaydesk-sqlite-writer")

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction: committed on success, rolled back on error."""
        try:
            async with self._writing(), self.sessions() as session, session.begin():
                yield session
        except (OperationalError, DBAPIError, OSError) as exc:
            if _is_connection_error(exc):
                raise self._write_failed(exc) from exc
            raise

    def _writing(self) -> AbstractAsyncContextManager[object]:
        """SQLite takes one writer at a time: in this process they queue here, in order,
        instead of polling SQLite's lock (busy_timeout sleeps up to tens of ms)."""
        return self._write_lock if self._write_lock is not None else nullcontext()

    async def run_unit(self, work: Callable[[Execute], T]) -> T:
        """Run `work(execute)` in one transaction, committed on success.

        For a unit of many statements (a batch of webhooks), written once for both
        databases as plain functions: on SQLite it runs in the writer thread, on
        PostgreSQL in a greenlet on the pooled asyncpg connection itself.
        """
        try:
            result = await self._run_unit(work)
        except DatabaseUnavailable as exc:
            raise self._write_failed(exc) from exc
        except Exception as exc:
            if _is_connection_error(exc):
                raise self._write_failed(exc) from exc
            raise
        return result

    async def _run_unit(self, work: Callable[[Execute], T]) -> T:
        if self.dialect == "postgresql":
            return await self._run_on_asyncpg(work)
        if self._sync_sessions is None or self._writer is None:
            async with self.sessions() as session, session.begin():
                return await session.run_sync(lambda sync: work(_SessionExecute(sync)))
        async with self._writing():
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._writer, self._in_writer, work)

    def _write_failed(self, exc: BaseException) -> DatabaseUnavailable:
        """Remember that a write failed (`check_writes` reports it) and say why."""
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self._write_failure = reason
        return DatabaseUnavailable(reason)

    async def check_writes(self) -> None:
        """Raise `DatabaseUnavailable` while the store refuses writes.

        The last write's outcome, refreshed by rewriting the `health_probe` row at most
        every PROBE_SECONDS: a ping answers while the disk is full or the database is
        read-only, and a failed write is only seen by whoever made it.
        """
        now = time.monotonic()
        if self._write_failure is not None or now - self._probed_at >= PROBE_SECONDS:
            self._probed_at = now
            # session() records an unavailable store; any other error (the table not
            # migrated yet) says nothing about writes.
            with suppress(DatabaseUnavailable, DBAPIError):
                async with self.session() as session:
                    await session.execute(_PROBE, {"at": datetime.now(UTC)})
                self._write_failure = None
        if self._write_failure is not None:
            raise DatabaseUnavailable(f"writes fail: {self._write_failure}")

    def _in_writer(self, work: Callable[[Execute], T]) -> T:
        assert self._sync_sessions is not None
        with self._sync_sessions() as session, session.begin():
            return work(_SqliteExecute(session))

    async def _run_on_asyncpg(self, work: Callable[[Execute], T]) -> T:
        """Statements compiled by SQLAlchemy once, run by asyncpg directly: SQLAlchemy's
        execution layers had cost about 1 ms of CPU per batch, three times asyncpg's own."""
        async with self.engine.connect() as connection:
            driver = await _live_driver(connection)
            try:
                async with driver.transaction():
                    return await greenlet_spawn(work, _AsyncpgExecute(driver, self.engine.dialect))
            except Exception as exc:  # a cancelled batch is rolled back by asyncpg
                if driver.is_closed() or _is_connection_error(exc):
                    await connection.invalidate()  # never back into the pool
                    raise DatabaseUnavailable(
                        str(exc).splitlines()[0] or "connection lost"
                    ) from exc
                raise

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reading only (on SQLite it takes no write lock)."""
        try:
            async with self._read_sessions() as session:
                yield session
        except (OperationalError, DBAPIError, OSError) as exc:
            if _is_connection_error(exc):
                raise DatabaseUnavailable(str(exc).splitlines()[0]) from exc
            raise

    @asynccontextmanager
    async def fence(self, key: int) -> AsyncIterator[bool]:
        """Hold a PostgreSQL advisory lock on `key` for the duration; yields False if
        another session holds it. The lock dies with its connection, so a killed
        process frees it at once, and it survives Redis losing a lease. SQLite
        serves one process, whose in-memory lease is exact: always True there."""
        if self.dialect != "postgresql":
            yield True
            return
        async with self.engine.connect() as conn:
            got = (
                await conn.execute(
                    text("SELECT pg_try_advisory_lock(:space, :key)"),
                    {"space": _FENCE_SPACE, "key": key},
                )
            ).scalar_one()
            await conn.commit()
            try:
                yield bool(got)
            finally:
                if got:
                    await conn.execute(
                        text("SELECT pg_advisory_unlock(:space, :key)"),
                        {"space": _FENCE_SPACE, "key": key},
                    )
                    await conn.commit()

    async def ping(self) -> None:
        self._check_sqlite_folder()
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (OperationalError, DBAPIError, OSError) as exc:
            raise DatabaseUnavailable(str(exc).splitlines()[0]) from exc

    def _check_sqlite_folder(self) -> None:
        """A SQLite file in a folder that does not exist cannot be opened: say so without
        trying (aiosqlite's thread would answer a failed open after the loop is gone)."""
        path = self.engine.url.database
        if self.dialect != "sqlite" or path in (None, "", ":memory:") or path.startswith("file:"):
            return
        folder = Path(path).expanduser().resolve().parent
        if not folder.is_dir():
            raise DatabaseUnavailable(f"unable to open database file: no folder {folder}")

    async def migrate(self) -> None:
        """Bring the schema to the newest alembic revision."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade)

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._writer is not None:
            self._writer.shutdown(wait=True)
        if self._sync_engine is not None:
            self._sync_engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()


async def _live_driver(connection: AsyncConnection) -> Any:
    """The pooled asyncpg connection, replaced once if the server closed it while it sat
    in the pool (asyncpg notices that locally: no round trip, unlike a pre-ping)."""
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    if driver.is_closed():
        await connection.invalidate()
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
    return driver


# SQLSTATEs that mean "the database cannot take this now", not "this statement is wrong":
# connection exceptions (08), shutdown / cannot connect now (57P01-57P03), 55000 as raised
# for "database is not accepting connections", a read-only transaction (25006), lacking
# privileges (42501: a REVOKE), insufficient resources (53: disk full, out of memory, too
# many connections) and system I/O errors (58).
_UNAVAILABLE_STATES = ("08", "57P01", "57P02", "57P03", "55000", "25006", "42501", "53", "58")
# SQLite's equivalents: a read-only file, a full disk, an I/O error, a lock held too long.
_UNAVAILABLE_SQLITE = (
    "SQLITE_READONLY",
    "SQLITE_FULL",
    "SQLITE_IOERR",
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_CANTOPEN",
)


def _is_connection_error(exc: BaseException) -> bool:
    """Walk the cause chain for a network error or an "unavailable" SQLSTATE or SQLite
    code: the store cannot take the work now, and a retry later may succeed (503)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, OSError | ConnectionError | asyncio.TimeoutError):
            return True
        state = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if isinstance(state, str) and state.startswith(_UNAVAILABLE_STATES):
            return True
        code = getattr(seen, "sqlite_errorname", None)
        if isinstance(code, str) and code.startswith(_UNAVAILABLE_SQLITE):
            return True
        name = type(seen).__name__
        if "CannotConnect" in name or "ConnectionDoesNotExist" in name:
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


async def insert_ignore(
    session: AsyncSession, model: type[Any], keys: tuple[str, ...], **values: Any
) -> Any:
    """INSERT ... ON CONFLICT (keys) DO NOTHING RETURNING <first primary key column>.

    The new row's key, or None when the row existed: unique constraints make
    retried deliveries and racing processes harmless.
    """
    assert session.bind is not None
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
