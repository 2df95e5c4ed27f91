"""SQL cannot write (PostgreSQL cut off, or switched to read-only) while customer webhooks
and team replies arrive: each is answered 503, so the network or Slack sends it again, and
once SQL writes again every one is accepted, relayed or delivered, exactly once."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
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
    deliver_event,
    delivered_replies,
    post_slack_event,
    relayed,
    reply_event,
    until,
    wait_relayed,
)
from tests.chaos.conftest import Stack

OUTAGE = 20.0 if LONG else 4.0
CONVERSATIONS = 20 if LONG else 4


async def sql_is(cluster: Cluster, status: int) -> bool:
    return all([await cluster.health(node) == status for node in cluster.nodes])


@asynccontextmanager
async def cut(stack: Stack, proxy: TcpProxy, cluster: Cluster) -> AsyncIterator[None]:
    """The database host is gone: connections refused, open ones cut."""
    await proxy.down()
    try:
        await until(lambda: sql_is(cluster, 503), 15, "/healthz: SQL down")
        yield
    finally:
        await proxy.up()


@asynccontextmanager
async def read_only(stack: Stack, proxy: TcpProxy, cluster: Cluster) -> AsyncIterator[None]:
    """Our database turns read-only: reads work, every write is refused (SQLSTATE 25006)."""
    name = make_url(stack.database_url).database
    admin = await asyncpg.connect(asyncpg_dsn(stack.database_url).rsplit("/", 1)[0] + "/test")

    async def reconnect_all() -> None:  # the setting applies to new sessions
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )

    try:
        await admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        await reconnect_all()
        try:
            yield
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
            await reconnect_all()
    finally:
        await admin.close()


@pytest.mark.parametrize(
    "failure", [pytest.param(cut, id="cut"), pytest.param(read_only, id="read-only")]
)
async def test_sql_write_failures_503_then_nothing_lost(stack: Stack, failure: object) -> None:
    proxy, proxied = await stack.proxied_database()
    cluster = stack.cluster(2, database_url=proxied)
    await cluster.start()
    slack = stack.fakes.slack
    before = Load(cluster, CONVERSATIONS, 1)
    await before.run()
    assert len(before.accepted) == CONVERSATIONS, before.statuses
    await wait_relayed(cluster, before, stack.database_url, 60)
    threads = relayed(slack)
    replies = {
        f"reply-{key}-1": reply_event(slack, thread, f"Thanks! reply-{key}-1", f"EvSql{key}")
        for key, (thread,) in sorted(threads.items())
    }

    during = Load(cluster, CONVERSATIONS, 2, first=CONVERSATIONS, retry_pause=0.3, give_up=OUTAGE)
    events_during: Counter[int] = Counter()
    outage = failure(stack, proxy, cluster)  # type: ignore[operator]
    async with outage, aiohttp.ClientSession() as session:
        started = time.monotonic()
        await during.run()
        for body in replies.values():  # Slack's first delivery of each reply
            node = cluster.next_node()
            assert node is not None
            events_during[await post_slack_event(session, node, body)] += 1
        await asyncio.sleep(max(0.0, OUTAGE - (time.monotonic() - started)))
    print(
        f"\nwhile SQL could not write: webhooks answered {dict(during.statuses)}, "
        f"reply events answered {dict(events_during)}"
    )
    assert not during.accepted, "a 200 for a message that could not be stored"

    after = Load(cluster, CONVERSATIONS, 2, first=CONVERSATIONS, give_up=60)
    events_after: Counter[int] = Counter()
    async with aiohttp.ClientSession() as session:
        accepted = [
            await deliver_event(session, cluster, body, 60, events_after, retry=1)
            for body in replies.values()
        ]
    await after.run()
    assert all(accepted), events_after
    assert len(after.accepted) == 2 * CONVERSATIONS, after.statuses
    after.accepted |= before.accepted
    await wait_relayed(cluster, after, stack.database_url, 60)
    check_relayed(slack, after.accepted, before.messages + after.messages)
    await until(
        lambda: set(delivered_replies(stack.fakes)) >= set(replies), 30, "every reply delivered"
    )
    await asyncio.sleep(1.0)  # a duplicate still in flight would land now
    delivered = delivered_replies(stack.fakes)
    assert {t: delivered[t] for t in replies} == dict.fromkeys(replies, 1), delivered
    assert all(node.running for node in cluster.nodes)
    # Checked last, so that a wrong status does not hide whether anything was lost.
    assert set(during.statuses) == {503}, during.statuses
    assert set(events_during) == {503}, events_during
