"""SIGTERM during load: requests in flight finish, exit 0 within 10 s, nothing half-done.

The database sits behind a proxy that adds latency, so a webhook spends about a second
in its transaction and the ones sent just before the signal are certainly in flight.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from bot.serving import HANG_SECONDS
from tests.chaos.cluster import (
    LONG,
    Load,
    Message,
    Node,
    check_relayed,
    conversation_key,
    until,
    wait_relayed,
    webhook,
)
from tests.chaos.conftest import Stack

CONVERSATIONS, PER_CONVERSATION = (40, 20) if LONG else (10, 6)
IN_FLIGHT = 6


async def send(session: aiohttp.ClientSession, node: Node, message: Message) -> int:
    path, body, headers = webhook(message)
    try:
        async with session.post(
            node.url + path,
            data=body,
            headers={"Content-Type": "application/json", **headers},
            timeout=aiohttp.ClientTimeout(total=15),
        ) as response:
            await response.read()
            return response.status
    except (aiohttp.ClientError, TimeoutError, OSError):
        return 0


async def test_sigterm_mid_load_finishes_requests_and_loses_nothing(stack: Stack) -> None:
    _, database_url = await stack.proxied_database(latency=0.01)
    cluster = stack.cluster(1, database_url=database_url)
    await cluster.start()
    (node,) = cluster.nodes
    assert node.process is not None
    load = Load(cluster, CONVERSATIONS, PER_CONVERSATION, interval=0.2, give_up=120)
    sending = asyncio.create_task(load.run())
    in_flight = [Message(conversation_key(100 + i), 1) for i in range(IN_FLIGHT)]
    try:
        await until(lambda: len(load.accepted) >= CONVERSATIONS * 2, 30, "the load to get going")
        # Keep this test to the webhooks: a post the dispatcher has in flight when the signal
        # comes is the next test's subject, so Slack fails (without posting) meanwhile.
        stack.fakes.slack.hold(node.token)
        async with aiohttp.ClientSession() as session:
            requests = [asyncio.create_task(send(session, node, m)) for m in in_flight]
            await asyncio.sleep(0.05)  # sent, and now inside their (slow) transactions
            assert not any(request.done() for request in requests), "too fast to be in flight"
            cluster.terminate(node)
            terminated_at = time.monotonic()
            accepted_before = len(load.accepted)
            statuses = list(await asyncio.gather(*requests))
        await asyncio.wait_for(node.process.wait(), 15)
        exited_after = time.monotonic() - terminated_at
        code = node.process.returncode
        print(
            f"\nSIGTERM with {accepted_before} messages accepted: exit {code} after "
            f"{exited_after:.1f} s; the {IN_FLIGHT} requests in flight answered {statuses}"
        )
        assert code == 0, cluster.tail(node)
        # On its own, before the hang guard would have ended it (and exited non-zero).
        assert exited_after < HANG_SECONDS
        assert statuses == [200] * IN_FLIGHT, "requests in flight were not finished"

        stack.fakes.slack.release()
        await cluster.spawn(node)  # the restart
        await cluster.wait_healthy(node)
        await sending
    finally:
        stack.fakes.slack.release()
        sending.cancel()
    print(f"webhook answers: {dict(load.statuses)} (0: nobody listening, retried)")
    assert len(load.accepted) == CONVERSATIONS * PER_CONVERSATION, load.statuses
    load.accepted.update(in_flight)  # they got their 200 too
    await wait_relayed(cluster, load, stack.database_url, 300 if LONG else 40)
    check_relayed(stack.fakes.slack, load.accepted, load.messages + in_flight)


async def test_sigterm_while_a_post_is_in_flight_does_not_post_it_twice(stack: Stack) -> None:
    slack = stack.fakes.slack
    cluster = stack.cluster(1)
    await cluster.start()
    (node,) = cluster.nodes
    assert node.process is not None
    slack.hold(node.token, land=True)  # Slack is slow to answer: the post is in flight
    load = Load(cluster, 4, 3)
    await load.run()
    assert len(load.accepted) == 12, load.statuses
    await until(lambda: slack.held, 15, "a post in flight")
    cluster.terminate(node)
    await asyncio.sleep(1.0)
    slack.release()  # Slack answers (the post is there) within slack_sdk's timeout
    await asyncio.wait_for(node.process.wait(), 15)
    assert node.process.returncode == 0, cluster.tail(node)
    await cluster.spawn(node)
    await cluster.wait_healthy(node)
    await wait_relayed(cluster, load, stack.database_url, 30)
    check_relayed(slack, load.accepted, load.messages)
