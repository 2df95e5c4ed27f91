"""Slack answers 500 for a while, then 429 with Retry-After: the backlog goes out afterwards,
and the processes do not storm Slack with retries."""

from __future__ import annotations

import asyncio
import time

from tests.chaos.cluster import INBOXES, LONG, Load, check_relayed, wait_relayed
from tests.chaos.conftest import Stack

CONVERSATIONS, PER_CONVERSATION = (40, 10) if LONG else (10, 6)
ERRORS_FOR = 30.0 if LONG else 5.0  # every Slack call answers 500
LIMITED_FOR = 15.0 if LONG else 5.0  # then every call answers 429
RETRY_AFTER = 2.0


async def test_slack_500_then_429_backlog_delivered_without_a_storm(stack: Stack) -> None:
    slack = stack.fakes.slack
    cluster = stack.cluster(2)
    await cluster.start()
    slack.rate_limit(1.0, burst=4)
    outage_started = time.monotonic()
    slack.fail_for(ERRORS_FOR, 500)
    load = Load(cluster, CONVERSATIONS, PER_CONVERSATION, interval=0.1)
    await load.run()
    assert len(load.accepted) == CONVERSATIONS * PER_CONVERSATION, load.statuses
    await asyncio.sleep(max(0.0, ERRORS_FOR - (time.monotonic() - outage_started)))
    limited_from = time.monotonic()
    slack.fail_for(LIMITED_FOR, 429, retry_after=RETRY_AFTER)
    recovered_at = limited_from + LIMITED_FOR

    took = await wait_relayed(cluster, load, stack.database_url, 180 if LONG else 60)
    done_at = time.monotonic()
    check_relayed(slack, load.accepted, load.messages)

    errors = [c for c in slack.calls if c.status == 500]
    in_window = [c for c in slack.calls if c.status == 429 and c.at < recovered_at]
    after = [c for c in slack.calls if c.status == 429 and c.at >= recovered_at]
    posts_after = [c for c in slack.posts(200) if c.at >= recovered_at]
    floor = max(0.0, len(posts_after) / len(INBOXES) - 4)  # 1 post/s/channel, burst 4
    print(
        f"\nSlack down {ERRORS_FOR:.0f} s (500) then limited {LIMITED_FOR:.0f} s (429, "
        f"Retry-After {RETRY_AFTER:.0f}): {len(errors)} calls answered 500, {len(in_window)} "
        f"answered 429 during the window and {len(after)} after it; backlog of "
        f"{len(posts_after)} posts done {done_at - recovered_at:.1f} s after recovery "
        f"(rate-limit floor about {floor:.1f} s; waited {took:.1f} s in all)"
    )
    by_method: dict[str, int] = {}
    for call in in_window:
        by_method[call.method] = by_method.get(call.method, 0) + 1
    print(f"429s during the window by method: {by_method}")
    # Paced at 1 post/s per channel, plus our one retry of a call after Retry-After:
    # at most two attempts per channel per second. A storm would be many per second.
    bound = len(INBOXES) * (LIMITED_FOR + 1) * 2
    assert len(in_window) <= bound, f"{len(in_window)} 429s in {LIMITED_FOR:.0f} s: a storm"
    assert len(after) < 5, f"{len(after)} 429s after recovery: the bot does not pace itself"
    # The exponential backoff of a failed post may still run when Slack comes back.
    backoff_allowance = ERRORS_FOR + LIMITED_FOR
    assert done_at - recovered_at < 2 * floor + backoff_allowance + 10, "backlog drained slowly"
