"""A burst of simultaneous webhooks at one process, with SQL and Redis healthy: all 200."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.chaos.cluster import Message, conversation_key, webhook
from tests.chaos.conftest import Stack

BURST = 400


async def test_burst_of_webhooks_on_healthy_services_all_answer_200(stack: Stack) -> None:
    cluster = stack.cluster(1)
    await cluster.start()
    (node,) = cluster.nodes
    messages = [Message(conversation_key(i), 1) for i in range(BURST)]
    connector = aiohttp.TCPConnector(limit=BURST)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send(message: Message) -> int:
            path, body, headers = webhook(message)
            async with session.post(
                node.url + path,
                data=body,
                headers={"Content-Type": "application/json", **headers},
                timeout=aiohttp.ClientTimeout(total=30),
            ) as response:
                await response.read()
                return response.status

        statuses = await asyncio.gather(*(send(m) for m in messages))
    counts = {status: statuses.count(status) for status in set(statuses)}
    print(f"\n{BURST} simultaneous webhooks answered {counts}")
    assert counts == {200: BURST}
