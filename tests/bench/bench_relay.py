"""Relay under Slack's limit: 30 new conversations, 300 messages within one second, one
inbox channel, and a fake Slack that allows about 1 post/s per channel (small burst) and
answers 429 beyond it.

    .venv/bin/python -m tests.bench.bench_relay [--quick]

Reports the time until everything is in Slack against the rate-limit floor (the fewest
posts the contract allows: a root, then one thread reply with the follow-ups that queued
up, per conversation), the posts made and the 429s received.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from tests.bench.common import sqlite_setup, table, verdict
from tests.chaos.cluster import TOKEN_RE, Load, Message, until

CHANNEL = "C0BENCHIN1"
CONVERSATIONS, PER_CONVERSATION = 30, 10
RATE, BURST = 1.0, 3


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the same (it is bounded by Slack)")
    parser.parse_args(argv)
    env = {"SLACK_CHANNEL_TELEGRAM": CHANNEL, "SLACK_CHANNEL_GENERIC": CHANNEL}
    with tempfile.TemporaryDirectory(prefix="relaydesk-bench-") as tmp:
        async with sqlite_setup(Path(tmp), env) as setup:
            slack = setup.fakes.slack
            slack.rate_limit(RATE, burst=BURST)
            load = Load(setup.cluster, CONVERSATIONS, PER_CONVERSATION, interval=0.05)
            started = time.monotonic()
            await load.run()
            offered = time.monotonic() - started
            expected = set(load.messages)

            def seen() -> Counter[Message]:
                return Counter(
                    Message(k, int(s))
                    for m in slack.messages(CHANNEL)
                    for k, s in TOKEN_RE.findall(str(m.get("text", "")))
                )

            await until(lambda: set(seen()) >= expected, 600, "every message in Slack")
            took = time.monotonic() - started
            await asyncio.sleep(2.0)  # a late duplicate would show now
            counts = seen()
    posts = slack.posts(200)
    limited = len(slack.rate_limited())
    fewest = CONVERSATIONS * 2
    floor = (fewest - BURST) / RATE
    floor_made = (len(posts) - BURST) / RATE
    lost = len(expected - set(counts))
    doubled = sum(1 for n in counts.values() if n > 1)
    print(
        f"\nRelay: {len(load.accepted)} messages in {CONVERSATIONS} new conversations offered "
        f"in {offered:.1f} s into one channel; Slack allows {RATE:.0f} post/s, burst {BURST}"
    )
    print(
        table(
            [
                "delivered",
                "lost",
                "doubled",
                "time s",
                "floor s",
                "time/floor",
                "posts",
                "floor of those s",
                "429s",
            ],
            [
                [
                    len(counts),
                    lost,
                    doubled,
                    took,
                    floor,
                    f"{took / floor:.2f}",
                    len(posts),
                    floor_made,
                    limited,
                ]
            ],
        )
    )
    print(
        f"target: all delivered once -> {verdict(lost == 0 and doubled == 0)}; "
        f"within 1.2x of the floor ({floor:.0f} s) -> {verdict(took <= 1.2 * floor)}; "
        f"fewer than 5 429s -> {verdict(limited < 5)}"
    )


if __name__ == "__main__":
    asyncio.run(main())
