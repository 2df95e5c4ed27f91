"""Three serve processes on one PostgreSQL and one Redis, webhooks spread over them."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp

from tests.chaos.cluster import (
    LONG,
    Load,
    check_relayed,
    delivered_replies,
    post_slack_event,
    relayed,
    reply_event,
    until,
    wait_relayed,
)
from tests.chaos.conftest import Stack

CONVERSATIONS, PER_CONVERSATION = (200, 10) if LONG else (30, 10)
REPLIES_PER_CONVERSATION = 2


async def test_three_processes_relay_every_message_once_in_order(stack: Stack) -> None:
    cluster = stack.cluster(3)
    await cluster.start()
    stack.fakes.slack.rate_limit(1.0, burst=4)  # Slack's own limit; the bot paces at 1/s
    load = Load(cluster, CONVERSATIONS, PER_CONVERSATION, interval=0.05)
    started = time.monotonic()
    await load.run()
    offered = time.monotonic() - started
    assert len(load.accepted) == CONVERSATIONS * PER_CONVERSATION, load.statuses
    relay_time = await wait_relayed(cluster, load, stack.database_url, 600 if LONG else 50)
    check_relayed(stack.fakes.slack, load.accepted, load.messages)
    posts = stack.fakes.slack.posts()
    by_node = {n.token: 0 for n in cluster.nodes}
    for call in posts:
        token = call.headers.get("Authorization", "").removeprefix("Bearer ")
        by_node[token] = by_node.get(token, 0) + 1
    print(
        f"\n{len(load.accepted)} messages in {CONVERSATIONS} conversations offered in "
        f"{offered:.1f} s, relayed {relay_time:.1f} s later; {len(posts)} posts "
        f"({', '.join(f'{k}: {v}' for k, v in by_node.items())}), "
        f"{len(stack.fakes.slack.rate_limited())} answered 429"
    )
    assert sum(1 for count in by_node.values() if count) >= 2, "one process did all the work"
    assert len(stack.fakes.slack.rate_limited()) < 5, "the processes do not share the pace"

    # Replies: each event reaches one process, and Slack's retry of it another one.
    threads = relayed(stack.fakes.slack)
    expected: set[str] = set()
    replies: list[tuple[str, str, str]] = []  # channel, ts, token
    async with aiohttp.ClientSession() as session:
        bodies = []
        for key in load.keys:
            (thread,) = threads[key]
            for n in range(1, REPLIES_PER_CONVERSATION + 1):
                token = f"reply-{key}-{n}"
                expected.add(token)
                text = f"Thanks! {token}"
                body = reply_event(stack.fakes.slack, thread, text, f"Ev{key}{n:04d}")
                replies.append((thread.channel, json.loads(body)["event"]["ts"], token))
                bodies.append(body)
        statuses = []
        for body in bodies:
            first, retry = cluster.next_node(), cluster.next_node()
            assert first is not None and retry is not None
            statuses.append(await post_slack_event(session, first, body))
            statuses.append(await post_slack_event(session, retry, body, retry=1))
        assert set(statuses) == {200}, statuses

    await until(
        lambda: set(delivered_replies(stack.fakes)) >= expected,
        120 if LONG else 30,
        "every reply delivered to its network",
    )
    await asyncio.sleep(1.0)
    delivered = delivered_replies(stack.fakes)
    assert delivered == {token: 1 for token in expected}, {
        t: n for t, n in delivered.items() if n != 1
    }
    for channel, ts, token in replies:
        assert "white_check_mark" in stack.fakes.slack.reactions(channel, ts), token
