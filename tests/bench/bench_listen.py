"""Listening under load: 5,000 mentions in an hour, time-compressed, into one channel.

The real app runs in this process on SQLite against the fake Slack, which enforces one
post per second per channel (burst 4, as in the chaos tests; the bot paces at 1/s,
burst 3). Its clock runs `--factor` times faster than the wall (60: the hour takes a
minute), so the 10-minute digest windows and the 60-an-hour threshold come due as they
would in an hour. Mentions arrive open-loop, evenly spread, through the signed generic
webhook (`"kind": "mention"`): misspelled and exact brand names, 5% sent twice (the same
post), 10% naming nothing of ours. Measured: every matching mention shown exactly once
(by the button naming it), none of the others, no 429, the posts and digests made, and
how long until everything was shown.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlmodel import col

from bot.blocks.listening import OPEN
from storage.listening import Mentions
from storage.models import ListenMention, MentionState
from tests.bench.common import table, verdict
from tests.harness import GENERIC_SECRET, Bot, start_bot, until
from tests.signing import generic_headers

LISTEN = "C0LISTEN01"
ENV = {"LISTEN_TERMS": "Relaydesk|relay desk", "SLACK_LISTENING_CHANNEL": LISTEN}
SPELLINGS = ("Relaydesk", "relaydsk", "RELAY DESK", "realydesk", "relaydeskk")
START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def body(index: int) -> tuple[bytes, bool]:
    """A signed-to-be mention body, and whether it names the brand."""
    ours = index % 10 != 9
    text = (
        f"{SPELLINGS[index % len(SPELLINGS)]} helped me today #{index}"
        if ours
        else (f"the weather is nice today #{index}")
    )
    payload = {
        "kind": "mention",
        "message_id": f"m-{index}",
        "author": {"id": f"a-{index % 300}", "name": f"Author {index % 300}"},
        "text": text,
        "sent_at": datetime.now(UTC).isoformat(),
        "url": f"https://blog.example.com/posts/{index}",
    }
    return json.dumps(payload).encode(), ours


async def offer(bot: Bot, count: int, seconds: float) -> tuple[set[int], int]:
    """Send `count` mentions evenly over `seconds`; the indexes that name the brand and
    the number of answers that were not 200."""
    ours: set[int] = set()
    failures = 0
    loop = asyncio.get_running_loop()
    began = loop.time()

    async def one(index: int) -> None:
        nonlocal failures
        await asyncio.sleep(max(0.0, began + index * seconds / count - loop.time()))
        data, named = body(index)
        if named:
            ours.add(index)
        for _ in range(2 if index % 20 == 0 else 1):  # 5% delivered twice
            answer = await bot.post_raw(
                "/webhooks/generic", data, generic_headers(data, GENERIC_SECRET)
            )
            failures += answer.status != 200

    await asyncio.gather(*(one(index) for index in range(count)))
    return ours, failures


async def pending(bot: Bot) -> int:
    async with bot.services.db.read() as session:
        found = await session.execute(
            select(func.count()).where(col(ListenMention.state) == MentionState.PENDING)
        )
        return int(found.scalar_one())


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 mentions instead of 5,000")
    parser.add_argument("--factor", type=float, default=60.0, help="clock speed-up (default 60)")
    args = parser.parse_args(argv)
    count = 1_000 if args.quick else 5_000
    offered_over = 3600 / args.factor
    began = datetime.now(UTC)

    def clock() -> datetime:
        return START + (datetime.now(UTC) - began) * args.factor

    with tempfile.TemporaryDirectory(prefix="relaydesk-bench-") as tmp:
        bot, stop = await start_bot(Path(tmp), env=ENV, clock=clock)
        try:
            bot.slack.rate_limit(1.0, burst=4)
            started = time.monotonic()
            ours, failures = await offer(bot, count, offered_over)
            offered = time.monotonic() - started

            async def all_shown() -> bool:
                return await pending(bot) == 0 and not (
                    await Mentions(bot.services.db).unfinished_digests()
                )

            await until(all_shown, 1200, "every mention shown")
            took = time.monotonic() - started
            await asyncio.sleep(2.0)  # a late duplicate would show now
            posts = bot.slack.messages(LISTEN)
            shown = Counter(
                int(element["value"])
                for post in posts
                for block in post.get("blocks") or []
                for element in [*block.get("elements", []), block.get("accessory") or {}]
                if element.get("action_id") == OPEN
            )
            async with bot.services.db.read() as session:
                rows = list((await session.execute(select(ListenMention))).scalars())
            limited = len(bot.slack.rate_limited())
            digests = [p for p in bot.slack.roots(LISTEN) if "digest" in str(p.get("text"))]
            alone = len(bot.slack.roots(LISTEN)) - len(digests)
        finally:
            await stop()
    stored_ids = {row.id for row in rows}
    named = {int(row.external_id.removeprefix("m-")) for row in rows}
    doubled = sum(1 for n in shown.values() if n > 1)
    missing = len(stored_ids - set(shown))
    wrong = len(named - ours) + len(ours - named)
    hour = timedelta(seconds=took * args.factor)
    print(
        f"\nListening: {count:,} mentions ({len(ours):,} naming the brand, 5% sent twice) "
        f"offered over {offered:.0f} s = one hour at x{args.factor:.0f}; Slack allows 1 post/s"
    )
    print(
        table(
            [
                "stored",
                "shown once",
                "doubled",
                "missing",
                "mismatched",
                "posts",
                "alone",
                "digests",
                "429s",
                "non-200",
                "all shown s",
                "in bot time",
            ],
            [
                [
                    len(rows),
                    len(shown) - doubled,
                    doubled,
                    missing,
                    wrong,
                    len(posts),
                    alone,
                    len(digests),
                    limited,
                    failures,
                    took,
                    str(hour).split(".")[0],
                ]
            ],
        )
    )
    ok = doubled == 0 and missing == 0 and wrong == 0 and failures == 0
    print(
        f"target: every mention of ours stored and shown exactly once, no other -> "
        f"{verdict(ok)}; no 429 -> {verdict(limited == 0)}"
    )


if __name__ == "__main__":
    asyncio.run(main())
