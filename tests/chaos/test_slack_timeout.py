"""Slack posts that succeed but whose answer never comes back (a timeout, or a dropped
connection): the dispatcher must look for the post (its metadata) before posting again, so
there is no second root and no thread post twice."""

from __future__ import annotations

import time

import pytest

from tests.chaos.cluster import (
    LONG,
    Load,
    check_relayed,
    root_counts,
    until,
    wait_relayed,
)
from tests.chaos.conftest import Stack

CONVERSATIONS, PER_CONVERSATION = (20, 10) if LONG else (4, 3)


@pytest.mark.parametrize(
    ("hang", "swallowed"),
    [
        # slack_sdk's own timeout (10 s) ends the wait: a few posts, each costs 10 s
        pytest.param(True, 8 if LONG else 3, id="timeout"),
        # every post until a thread post was among them
        pytest.param(False, None, id="dropped"),
    ],
)
async def test_a_post_that_landed_unanswered_is_not_posted_again(
    stack: Stack, hang: bool, swallowed: int | None
) -> None:
    slack = stack.fakes.slack
    cluster = stack.cluster(1)
    await cluster.start()
    slack.swallow(cluster.nodes[0].token, hang=hang, count=swallowed)
    load = Load(cluster, CONVERSATIONS, PER_CONVERSATION, interval=0.2)
    started = time.monotonic()
    await load.run()
    assert len(load.accepted) == CONVERSATIONS * PER_CONVERSATION, load.statuses
    await until(lambda: slack.swallowed, 30, "a post to land unanswered")
    if hang:
        # past slack_sdk's timeout: the poster has given up on its answer by now
        await until(lambda: slack.calls_to("conversations.*"), 30, "the poster to look")
    else:
        await until(
            lambda: any(call.params.get("thread_ts") for call in slack.swallowed),
            30,
            "a thread post to land unanswered",
        )
    slack.release()
    await wait_relayed(cluster, load, stack.database_url, 120 if LONG else 60)
    roots = root_counts(slack)
    looked = len(slack.calls_to("conversations.history")) + len(
        slack.calls_to("conversations.replies")
    )
    in_threads = sum(1 for call in slack.swallowed if call.params.get("thread_ts"))
    print(
        f"\n{len(slack.swallowed)} posts landed unanswered ({'timeout' if hang else 'dropped'}), "
        f"{in_threads} of them thread posts; "
        f"{looked} looks in Slack; duplicate roots {sum(roots.values()) - len(roots)}; "
        f"relayed in {time.monotonic() - started:.1f} s"
    )
    assert len(roots) == CONVERSATIONS and set(roots.values()) == {1}, roots
    check_relayed(slack, load.accepted, load.messages)
    assert looked, "no post was looked for"
    if not hang:
        assert 0 < in_threads < len(slack.swallowed), "both roots and thread posts swallowed"
