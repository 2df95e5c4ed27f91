"""Redis restarted or flushed under load: SQL keeps every message once; processes reconnect."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from tests.chaos.cluster import (
    LONG,
    TOKEN_RE,
    Cluster,
    Load,
    check_relayed,
    until,
    wait_relayed,
)
from tests.chaos.conftest import Stack

CONVERSATIONS, PER_CONVERSATION = (60, 20) if LONG else (12, 8)
OUTAGE = 10.0 if LONG else 2.0


async def all_health(cluster: Cluster, status: int, redis: str) -> bool:
    for node in cluster.nodes:
        if await cluster.health(node) != status:
            return False
        body = await cluster.health_body(node)
        if not str(body.get("redis", "")).startswith(redis) or body.get("sql") != "ok":
            return False
    return True


async def hold_a_post(stack: Stack, cluster: Cluster) -> None:
    """Make Slack slow for the first process seen posting (its chat.postMessage waits).

    Which process works on which conversation is decided by who takes its lease
    first, so a given process may have nothing to post for a while: try each in turn.
    """
    slack = stack.fakes.slack
    for node in cluster.nodes:
        slack.hold(node.token, land=True)
        with contextlib.suppress(AssertionError):
            await until(lambda: slack.held, 10, f"serve {node.index} to be posting to Slack")
            return
        slack.release()
    raise AssertionError("no process posted to Slack within 10 s of being watched")


async def lose_leases_mid_post(stack: Stack, lose: Callable[[], Awaitable[None]]) -> None:
    """Redis forgets every lease while a process waits on a (slow) Slack post.

    The post then lands, as a slow Slack call does. Whatever another process did with the
    same conversation meanwhile must not make any message appear twice.
    """
    slack = stack.fakes.slack
    cluster = stack.cluster(3)
    await cluster.start()
    load = Load(cluster, CONVERSATIONS, PER_CONVERSATION, interval=0.4, give_up=120)
    sending = asyncio.create_task(load.run())
    try:
        await until(lambda: len(load.accepted) >= CONVERSATIONS * 2, 30, "the load to get going")
        await hold_a_post(stack, cluster)
        held = {m for text in slack.held for m in TOKEN_RE.findall(text)}
        await lose()

        def taken_over() -> bool:
            shown = {m for c in slack.posts(200) for m in TOKEN_RE.findall(str(c.params))}
            return held <= shown

        with contextlib.suppress(AssertionError):  # a correct bot never takes it over
            await until(taken_over, 7, "another process to post the held messages")
        slack.release()  # within slack_sdk's 10 s timeout: the process gets its answer
        await sending
    finally:
        slack.release()
        sending.cancel()
    print(f"\nheld {sorted('-'.join(m) for m in held)}; webhook answers {dict(load.statuses)}")
    assert len(load.accepted) == CONVERSATIONS * PER_CONVERSATION, load.statuses
    await wait_relayed(cluster, load, stack.database_url, 300 if LONG else 45)
    check_relayed(slack, load.accepted, load.messages)


async def test_redis_restarted_mid_post(stack: Stack) -> None:
    async def restart() -> None:
        await stack.redis.stop()
        await stack.redis.start()

    await lose_leases_mid_post(stack, restart)


async def test_redis_flushed_mid_post(stack: Stack) -> None:
    await lose_leases_mid_post(stack, stack.redis.flush)


async def test_redis_down_then_back_healthz_and_reconnect(stack: Stack) -> None:
    """/healthz follows Redis; webhooks meanwhile are retried; afterwards the relay works."""
    cluster = stack.cluster(2)
    await cluster.start()
    before = Load(cluster, 4, 2)
    await before.run()
    await wait_relayed(cluster, before, stack.database_url, 30)
    await stack.redis.stop()
    down_at = time.monotonic()
    await until(lambda: all_health(cluster, 503, "down"), 15, "/healthz: Redis down")
    print(f"\n/healthz said Redis down after {time.monotonic() - down_at:.1f} s")
    during = Load(cluster, 4, 3, first=4, retry_pause=0.3, give_up=OUTAGE)
    await during.run()
    print(f"webhooks while Redis was down answered {dict(during.statuses)}")
    assert during.statuses and 0 not in during.statuses and 500 not in during.statuses
    await stack.redis.start()
    up_at = time.monotonic()
    await until(lambda: all_health(cluster, 200, "ok"), 30, "/healthz: Redis ok again")
    print(f"/healthz said Redis ok {time.monotonic() - up_at:.1f} s after its restart")
    after = Load(cluster, 4, 3, first=4)  # the networks retry what was not answered 200
    await after.run()
    assert len(after.accepted) == 12, after.statuses
    await wait_relayed(cluster, after, stack.database_url, 30)
    everything = before.accepted | after.accepted
    check_relayed(stack.fakes.slack, everything, before.messages + after.messages)
    assert all(node.running for node in cluster.nodes)
