"""A store that cannot write: 503 (the sender retries), /healthz 503, and nothing marked seen.

PostgreSQL: a database of the test's own is made read-only (`ALTER DATABASE ... SET
default_transaction_read_only`, then its connections are ended so new ones pick it up)
and back. SQLite: the bot is started on a read-only URI of a migrated file.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from storage.core import ReplyState
from tests.harness import AGENT, INBOX, Bot, start_bot
from tests.integration.test_faults import new_thread, quiet_env, reply_row
from tests.services import require_postgres

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def _dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


async def _admin(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(_dsn(url))
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def _run(work: Coroutine[Any, Any, None]) -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, work).result()


@pytest.fixture
def postgres() -> Iterator[tuple[str, str]]:
    """(admin url, url of a fresh database of this test's own), dropped after."""
    base = require_postgres()
    name = f"relaydesk_store_{secrets.token_hex(4)}"
    _run(_admin(base, f'CREATE DATABASE "{name}"'))
    try:
        yield base, make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        _run(_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _read_only(base: str, url: str, on: bool) -> None:
    """Every new connection to `url`'s database read-only (or not); end the current ones."""
    name = make_url(url).database
    setting = (
        "SET default_transaction_read_only = on" if on else "RESET default_transaction_read_only"
    )
    await _admin(
        base,
        f'ALTER DATABASE "{name}" {setting}',
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        f" WHERE datname = '{name}' AND pid <> pg_backend_pid()",
    )


def _thread_event(bot: Bot, root_ts: str, text: str) -> dict[str, Any]:
    ts = bot.slack.add_message(INBOX, text, user=AGENT, thread_ts=root_ts)["ts"]
    return {
        "type": "message",
        "channel": INBOX,
        "user": AGENT,
        "text": text,
        "ts": ts,
        "thread_ts": root_ts,
        "channel_type": "channel",
        "event_ts": ts,
    }


async def _status_until(bot: Bot, send: Any, wanted: int, what: str) -> None:
    """Send (as the sender retries) until the answer is `wanted`; every answer is 200 or 503."""
    statuses = []
    for _ in range(40):
        status = (await send()).status
        statuses.append(status)
        assert status in (200, 503), statuses
        if status == wanted:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: never {wanted}, got {statuses}")


async def test_postgresql_read_only_is_a_503_and_the_retry_is_processed_in_full(
    tmp_path: Path, postgres: tuple[str, str]
) -> None:
    base, url = postgres
    bot, stop = await start_bot(tmp_path, database_url=url, env=quiet_env())
    try:
        root_ts, conversation = await new_thread(bot, 7001, "my parcel is late")
        await _read_only(base, url, on=True)
        event = _thread_event(bot, root_ts, "It ships today")
        attempt = 0

        async def slack_retry() -> Any:
            nonlocal attempt
            attempt += 1
            return await bot.slack_event(event, event_id="EvReadOnly1", retry=attempt - 1 or None)

        # The first statement on an ended connection fails, then read-only ones do.
        for _ in range(2):
            assert (await slack_retry()).status == 503
        assert (await bot.from_telegram(7001, "hello?")).status == 503
        health = await bot.client.get("/healthz")
        assert health.status == 503, await health.text()
        assert "writes fail" in (await health.json())["sql"]

        await _read_only(base, url, on=False)
        await _status_until(bot, slack_retry, 200, "Slack's retry after recovery")
        await _status_until(bot, lambda: bot.client.get("/healthz"), 200, "/healthz")
        reply = await reply_row(bot, event["ts"])
        assert reply.conversation_id == conversation.id

        async def delivered() -> bool:
            return (await reply_row(bot, event["ts"])).state == ReplyState.SENT

        await bot.until(delivered, what="the reply sent to the customer")
        assert [m["text"] for m in bot.telegram.messages()] == ["It ships today"]
    finally:
        await _read_only(base, url, on=False)
        await stop()


async def test_sqlite_read_only_is_a_503_and_healthz_says_so(tmp_path: Path) -> None:
    bot, stop = await start_bot(tmp_path, env=quiet_env())
    try:
        root_ts, _ = await new_thread(bot, 7002, "hello there")
    finally:
        await stop()
    read_only = f"sqlite+aiosqlite:///file:{tmp_path / 'relaydesk.db'}?mode=ro&uri=true"
    bot, stop = await start_bot(
        tmp_path, database_url=read_only, env={**quiet_env(), "AUTO_MIGRATE": "false"}
    )
    try:
        assert (await bot.client.get("/healthz")).status == 503
        assert (await bot.from_telegram(7002, "anyone?")).status == 503
        response = await bot.slack_event(_thread_event(bot, root_ts, "On it"))
        assert response.status == 503, await response.text()
        assert "error" in await response.json()
    finally:
        await stop()
