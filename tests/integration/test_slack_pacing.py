"""The Slack wrapper's pacing against the fake Slack: Retry-After is shared by every process.

Two `Slack` wrappers on one coordinator stand for two processes (the coordinator's own
contract suite shows the Redis one behaves like the in-memory twin used here).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bot.slack import Slack, SlackTemporary, make_web_client
from storage.coordination import MemoryCoordinator
from tests.fakes import FakeSlack


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as slack:
        yield slack


def processes(fake: FakeSlack) -> tuple[Slack, Slack]:
    shared = MemoryCoordinator()
    return (
        Slack(make_web_client("xoxb-one", fake.url), coordinator=shared),
        Slack(make_web_client("xoxb-two", fake.url), coordinator=shared),
    )


async def test_a_429_pauses_that_channels_posts_in_every_process(fake: FakeSlack) -> None:
    one, two = processes(fake)
    fake.fail("chat.postMessage", 429, count=2, retry_after=1)
    with pytest.raises(SlackTemporary) as refused:
        await one.post("C1", "first")  # refused, and refused again on its one retry
    assert refused.value.retry_after == 1

    await asyncio.gather(two.post("C1", "second"), two.post("C2", "elsewhere"))

    calls = [(c.params["channel"], c.status) for c in fake.calls_to("chat.postMessage")]
    # no retry on top of ours; the other channel went first, not paused
    assert calls == [("C1", 429), ("C1", 429), ("C2", 200), ("C1", 200)]
    posts = fake.calls_to("chat.postMessage")
    assert posts[1].at - posts[0].at >= 0.9  # the retry waited for Retry-After
    assert posts[3].at - posts[1].at >= 0.9  # so did the other process


async def test_a_server_error_is_tried_once_more(fake: FakeSlack) -> None:
    one, _ = processes(fake)
    fake.fail("chat.postMessage", 500, count=1)
    await one.post("C1", "after one 500")
    fake.fail("chat.postMessage", 503, count=2)
    with pytest.raises(SlackTemporary):
        await one.post("C1", "after two")
    assert [c.status for c in fake.calls_to("chat.postMessage")] == [500, 200, 503, 503]


async def test_an_impatient_call_is_refused_at_once_while_its_method_is_paused(
    fake: FakeSlack,
) -> None:
    one, two = processes(fake)
    ts = await one.post("C1", "root")
    fake.fail("chat.update", 429, count=2, retry_after=1)
    with pytest.raises(SlackTemporary):
        await one.update("C1", ts, "refused twice")
    with pytest.raises(SlackTemporary) as deferred:
        await two.update("C1", ts, "later, please", patient=False)
    assert deferred.value.retry_after is not None and deferred.value.retry_after > 0.5
    assert len(fake.calls_to("chat.update")) == 2  # the deferred call never reached Slack
    await two.update("C1", ts, "after the pause")
    assert fake.message("C1", ts)["text"] == "after the pause"


class AnswerLost(FakeSlack):
    """Carries out the next `drop` posts, then drops the connection instead of answering."""

    drop = 0

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        response = await super()._handle(request)
        if self.drop and request.match_info["method"] == "chat.postMessage":
            self.drop -= 1
            assert request.transport is not None
            request.transport.abort()
        return response


METADATA = {"event_type": "relaydesk_message", "event_payload": {"conversation_id": 1}}


async def test_a_findable_post_whose_answer_is_lost_is_not_resent() -> None:
    async with AnswerLost() as fake:
        one = Slack(make_web_client("xoxb-one", fake.url))
        fake.drop = 1
        with pytest.raises(SlackTemporary) as unknown:
            await one.post("C1", "landed, unanswered", metadata=METADATA)
        assert unknown.value.status == 0
        fake.fail("chat.postMessage", 500, count=1)
        with pytest.raises(SlackTemporary):
            await one.post("C1", "a 500: maybe landed", metadata=METADATA)
        # the caller looks for them (by their metadata) before posting again
        assert [m["text"] for m in fake.messages("C1")] == ["landed, unanswered"]
        assert len(fake.calls_to("chat.postMessage")) == 2


async def test_a_findable_post_refused_with_429_is_still_tried_again(fake: FakeSlack) -> None:
    one, _ = processes(fake)
    fake.fail("chat.postMessage", 429, count=1, retry_after=0)
    await one.post("C1", "after one 429", metadata=METADATA)
    assert [c.status for c in fake.calls_to("chat.postMessage")] == [429, 200]
