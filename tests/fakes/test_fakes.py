"""The fakes themselves: real HTTP, real slack_sdk, the platforms' error shapes."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.sink import FakeSink
from tests.fakes.slack_api import FakeSlack, permalink


def client(slack: FakeSlack, **kwargs: object) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=slack.url, **kwargs)  # type: ignore[arg-type]


async def test_base_records_query_json_and_form_with_json_fields() -> None:
    async with FakeSink() as sink, aiohttp.ClientSession() as http:
        await http.post(sink.url + "/a?x=1", json={"y": 2})
        await http.post(sink.url + "/b", data={"text": "[not json", "blocks": '[{"type": "x"}]'})
        a, b = sink.calls
    assert (a.method, a.params, a.status) == ("/a", {"x": "1", "y": 2}, 200)
    assert b.params == {"text": "[not json", "blocks": [{"type": "x"}]}


async def test_faults_are_counted_windowed_and_recorded() -> None:
    async with FakeSink() as sink, aiohttp.ClientSession() as http:
        sink.fail("/hook", status=429, count=2, retry_after=1.5)
        statuses = [(await http.post(sink.url + "/hook")).status for _ in range(3)]
        assert statuses == [429, 429, 200]
        assert [c.status for c in sink.calls_to("/hook")] == [429, 429, 200]
        assert [c.injected for c in sink.calls] == [True, True, False]
        sink.fail_for(0.2, status=503)
        assert (await http.post(sink.url + "/other")).status == 503
        await asyncio.sleep(0.25)
        assert (await http.post(sink.url + "/other")).status == 200


async def test_delay_provokes_client_timeout_and_wait_for_explains() -> None:
    async with FakeSink() as sink, aiohttp.ClientSession() as http:
        sink.delay("/slow", 5)
        with pytest.raises(asyncio.TimeoutError):
            await http.post(sink.url + "/slow", timeout=aiohttp.ClientTimeout(total=0.2))
        with pytest.raises(AssertionError, match=r"'/never'.*calls so far: /slow"):
            await sink.wait_for("/never", timeout=0.05)


async def test_slack_threads_reactions_and_errors_through_slack_sdk() -> None:
    async with FakeSlack() as slack:
        web = client(slack)
        auth = await web.auth_test()
        assert (auth["user_id"], auth["bot_id"]) == (slack.bot_user_id, slack.bot_id)
        root = await web.chat_postMessage(channel="C1", text="root", blocks=[{"type": "divider"}])
        reply = await web.chat_postMessage(channel="C1", text="reply", thread_ts=root["ts"])
        assert float(reply["ts"]) > float(root["ts"])
        assert [m["text"] for m in slack.thread("C1", root["ts"])] == ["root", "reply"]
        assert slack.message("C1", root["ts"])["blocks"] == [{"type": "divider"}]
        # slack_sdk sends reactions.add as POST with query-string arguments
        await web.reactions_add(channel="C1", timestamp=reply["ts"], name="white_check_mark")
        assert slack.calls_to("reactions.add")[0].body == b""
        assert slack.reactions("C1", reply["ts"]) == ["white_check_mark"]
        link = await web.chat_getPermalink(channel="C1", message_ts=root["ts"])
        assert link["permalink"] == permalink("C1", root["ts"])
        assert (await web.conversations_open(users="U1"))["channel"]["id"].startswith("D")
        assert (await web.users_info(user="U9"))["user"]["profile"]["display_name"] == ""

        slack.missing_channels.add("C404")
        slack.delete_message("C1", root["ts"])
        for call, error in [
            (web.reactions_add(channel="C1", timestamp=reply["ts"], name="white_check_mark"),
             "already_reacted"),
            (web.chat_postMessage(channel="C1", text="x", thread_ts=root["ts"]),
             "thread_not_found"),
            (web.chat_postMessage(channel="C404", text="x"), "channel_not_found"),
            (web.chat_update(channel="C1", ts="1.000001", text="x"), "message_not_found"),
        ]:
            with pytest.raises(SlackApiError) as caught:
                await call
            assert caught.value.response.status_code == 200
            assert caught.value.response["error"] == error


async def test_slack_rate_limit_answers_429_with_integer_retry_after() -> None:
    async with FakeSlack() as slack:
        slack.rate_limit(per_second=1.0, burst=2)
        web = client(slack)
        await web.chat_postMessage(channel="C1", text="1")
        await web.chat_postMessage(channel="C1", text="2")
        await web.chat_postMessage(channel="C2", text="other channel, own bucket")
        with pytest.raises(SlackApiError) as caught:
            await web.chat_postMessage(channel="C1", text="3")
        assert caught.value.response.status_code == 429
        assert caught.value.response.headers["Retry-After"] == "1"
        assert caught.value.response["error"] == "ratelimited"
        assert len(slack.rate_limited()) == 1


async def test_slack_sdk_retry_handlers_see_injected_429_and_500() -> None:
    async with FakeSlack() as slack:
        web = client(
            slack,
            retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1),
                            AsyncServerErrorRetryHandler(max_retry_count=1)],
        )
        slack.fail("chat.postMessage", status=429, retry_after=0)
        assert (await web.chat_postMessage(channel="C1", text="a"))["ok"]
        slack.fail("chat.postMessage", status=500)
        assert (await web.chat_postMessage(channel="C1", text="b"))["ok"]
        assert [c.status for c in slack.calls_to("chat.postMessage")] == [429, 200, 500, 200]
        assert len(slack.messages("C1")) == 2
