"""Reply path: a signed Slack thread-reply event -> the customer's network, with instant fakes.

    .venv/bin/python -m tests.bench.bench_reply [--quick]

One serve process (SQLite). Replies are sent one at a time; the time is from posting the
event to the fake Telegram receiving `sendMessage` (both clocks in this process).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.bench.common import percentile, sqlite_setup, table, verdict
from tests.chaos.cluster import (
    AGENT,
    TELEGRAM_INBOX,
    Load,
    post_slack_event,
    relayed,
    slack_event_body,
    until,
)
from tests.fakes import FakeTelegram

TARGET_P50_MS = 30.0


class TimedTelegram(FakeTelegram):
    """Notes when each sendMessage arrives, keyed by its text."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: dict[str, float] = {}

    def _send_message(self, params: dict[str, object]) -> web.StreamResponse:
        self.arrived[str(params.get("text", ""))] = time.monotonic()
        return super()._send_message(params)


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 replies instead of 300")
    args = parser.parse_args(argv)
    replies = 50 if args.quick else 300
    latencies: list[float] = []
    with tempfile.TemporaryDirectory(prefix="relaydesk-bench-") as tmp:
        async with sqlite_setup(Path(tmp)) as setup:
            timed = await TimedTelegram().start()
            await setup.fakes.telegram.stop()
            setup.fakes.telegram = timed
            # the processes were started with the old fake's URL: restart them on this one
            setup.cluster.env["TELEGRAM_API_URL"] = timed.url
            await setup.cluster.close()
            for node in setup.cluster.nodes:
                await setup.cluster.spawn(node)
                await setup.cluster.wait_healthy(node)
            load = Load(setup.cluster, 20, 1)  # 10 Telegram and 10 generic conversations
            await load.run()
            await until(
                lambda: len(relayed(setup.fakes.slack)) == 20, 60, "the 20 threads in Slack"
            )
            threads = [t for key, (t,) in relayed(setup.fakes.slack).items() if key[:2] == "tg"]
            node = setup.cluster.nodes[0]
            async with aiohttp.ClientSession() as session:
                for i in range(replies):
                    thread = threads[i % len(threads)]
                    text = f"bench reply {i}"
                    message = setup.fakes.slack.add_message(
                        TELEGRAM_INBOX, text, user=AGENT, thread_ts=thread.ts
                    )
                    event = {
                        "type": "message",
                        "channel": TELEGRAM_INBOX,
                        "user": AGENT,
                        "text": text,
                        "ts": message["ts"],
                        "thread_ts": thread.ts,
                        "channel_type": "channel",
                        "event_ts": message["ts"],
                    }
                    body = slack_event_body(event, f"EvBench{i:06d}")
                    sent = time.monotonic()
                    status = await post_slack_event(session, node, body)
                    assert status == 200, status
                    await until(lambda t=text: t in timed.arrived, 10, f"reply {i}", 0.001)
                    latencies.append(timed.arrived[text] - sent)
            await timed.stop()
    p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
    print(f"\nReply path: {replies} signed Slack events -> Telegram sendMessage, one at a time")
    print(
        table(
            ["replies", "p50 ms", "p99 ms", "max ms"],
            [[replies, p50, p99, max(latencies) * 1000]],
        )
    )
    print(f"target: p50 < {TARGET_P50_MS:.0f} ms -> {verdict(p50 < TARGET_P50_MS)}")


if __name__ == "__main__":
    asyncio.run(main())
