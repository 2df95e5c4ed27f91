"""PostgreSQL unreachable: webhooks answer 503 (never 200 for a message not stored), and the
service recovers by itself once the database is back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.chaos.cluster import (
    LONG,
    Cluster,
    Load,
    TcpProxy,
    asyncpg_dsn,
    check_relayed,
    stored_count,
    until,
    wait_relayed,
)
from tests.chaos.conftest import Stack

OUTAGE = 20.0 if LONG else 4.0


async def all_sql(cluster: Cluster, status: int, sql: str) -> bool:
    for node in cluster.nodes:
        if await cluster.health(node) != status:
            return False
        if not str((await cluster.health_body(node)).get("sql", "")).startswith(sql):
            return False
    return True


@asynccontextmanager
async def refused(stack: Stack, proxy: TcpProxy) -> AsyncIterator[None]:
    """The database host is gone: connections refused, open ones cut."""
    await proxy.down()
    try:
        yield
    finally:
        await proxy.up()


@asynccontextmanager
async def rejected(stack: Stack, proxy: TcpProxy) -> AsyncIterator[None]:
    """The server answers but our database takes no connections (and ours are terminated)."""
    name = make_url(stack.database_url).database
    admin = await asyncpg.connect(asyncpg_dsn(stack.database_url).rsplit("/", 1)[0] + "/test")
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        try:
            yield
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    finally:
        await admin.close()


@pytest.mark.parametrize(
    "outage",
    [
        pytest.param(refused, id="refused"),
        pytest.param(rejected, id="rejected"),
    ],
)
async def test_postgres_unreachable_503_then_recovers(stack: Stack, outage: object) -> None:
    proxy, proxied = await stack.proxied_database()
    cluster = stack.cluster(2, database_url=proxied)
    await cluster.start()
    before = Load(cluster, 6, 2)
    await before.run()
    assert len(before.accepted) == 12, before.statuses
    await wait_relayed(cluster, before, stack.database_url, 30)

    during = Load(cluster, 6, 3, first=6, retry_pause=0.3, give_up=OUTAGE)
    async with outage(stack, proxy):  # type: ignore[operator]
        await until(lambda: all_sql(cluster, 503, "down"), 15, "/healthz: SQL down")
        started = time.monotonic()
        await during.run()
        tried = sum(during.statuses.values())
        stored_meanwhile = await stored_count(stack.database_url) if outage is refused else 12
        await asyncio.sleep(max(0.0, OUTAGE - (time.monotonic() - started)))
    print(f"\nduring the outage: {tried} webhook attempts answered {dict(during.statuses)}")
    assert not during.accepted, "a 200 for a message that could not be stored"
    assert stored_meanwhile == 12

    await until(lambda: all_sql(cluster, 200, "ok"), 30, "/healthz: SQL ok again")
    after = Load(cluster, 6, 3, first=6)
    await after.run()
    assert len(after.accepted) == 18, after.statuses
    await wait_relayed(cluster, after, stack.database_url, 20)
    everything = before.accepted | after.accepted
    check_relayed(stack.fakes.slack, everything, before.messages + after.messages)
    assert await stored_count(stack.database_url) == 30
    assert all(node.running for node in cluster.nodes)
    # Checked last, so that a wrong status does not hide whether the service recovered.
    assert during.statuses and set(during.statuses) == {503}, during.statuses
