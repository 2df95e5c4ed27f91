"""The fakes themselves: real HTTP, real slack_sdk, the platforms' error shapes."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from tests import signing
from tests.fakes.graph_api import FakeGraph
from tests.fakes.sink import FakeSink
from tests.fakes.slack_api import FakeSlack, permalink
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.x_api import FakeX
from tests.refs import ref_bytes, ref_path


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
            (
                web.reactions_add(channel="C1", timestamp=reply["ts"], name="white_check_mark"),
                "already_reacted",
            ),
            (
                web.chat_postMessage(channel="C1", text="x", thread_ts=root["ts"]),
                "thread_not_found",
            ),
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
            retry_handlers=[
                AsyncRateLimitErrorRetryHandler(max_retry_count=1),
                AsyncServerErrorRetryHandler(max_retry_count=1),
            ],
        )
        slack.fail("chat.postMessage", status=429, retry_after=0)
        assert (await web.chat_postMessage(channel="C1", text="a"))["ok"]
        slack.fail("chat.postMessage", status=500)
        assert (await web.chat_postMessage(channel="C1", text="b"))["ok"]
        assert [c.status for c in slack.calls_to("chat.postMessage")] == [429, 200, 500, 200]
        assert len(slack.messages("C1")) == 2


async def test_telegram_send_blocked_and_flood_control() -> None:
    async with FakeTelegram(token="123:abc") as tg, aiohttp.ClientSession() as http:
        tg.blocked_chats.add(66)
        url = f"{tg.url}/bot123:abc/sendMessage"
        ok = await http.post(url, json={"chat_id": 42, "text": "hi", "reply_to_message_id": 7})
        assert (await ok.json())["result"]["reply_to_message"] == {"message_id": 7}
        assert tg.messages(42)[0]["chat"]["id"] == 42
        blocked = await http.post(url, data={"chat_id": "66", "text": "hi"})
        assert blocked.status == 403
        assert await blocked.json() == {
            "ok": False,
            "error_code": 403,
            "description": "Forbidden: bot was blocked by the user",
        }
        tg.fail("sendMessage", status=429, retry_after=5)
        flood = await http.post(url, json={"chat_id": 42, "text": "hi"})
        assert (flood.status, (await flood.json())["parameters"]) == (429, {"retry_after": 5})
        assert (await http.post(f"{tg.url}/botWRONG/getMe")).status == 401


async def test_graph_send_apis_window_closed_and_throttling() -> None:
    async with FakeGraph() as graph, aiohttp.ClientSession() as http:
        graph.closed_window.update({"PSID-OLD", "15550000000"})
        sent = await http.post(
            graph.url + "/me/messages",
            json={"recipient": {"id": "PSID1"}, "message": {"text": "hi"}},
        )
        assert set(await sent.json()) == {"recipient_id", "message_id"}
        wa = await (
            await http.post(
                graph.url + "/PHONE1/messages",
                json={
                    "messaging_product": "whatsapp",
                    "to": "15551234567",
                    "type": "text",
                    "text": {"body": "hi"},
                },
            )
        ).json()
        assert wa["contacts"] == [{"input": "15551234567", "wa_id": "15551234567"}]
        assert wa["messages"][0]["id"].startswith("wamid.")
        reply = await http.post(graph.url + "/C1/replies", data={"message": "thanks"})
        assert "id" in await reply.json()
        closed = await http.post(
            graph.url + "/me/messages",
            data={"recipient": '{"id": "PSID-OLD"}', "message": '{"text": "late"}'},
        )
        error = (await closed.json())["error"]
        assert (closed.status, error["code"], error["error_subcode"]) == (400, 10, 2018278)
        closed = await http.post(
            graph.url + "/PHONE1/messages",
            json={"messaging_product": "whatsapp", "to": "15550000000", "text": {"body": "late"}},
        )
        assert (await closed.json())["error"]["code"] == 131047
        graph.throttle("*/messages", code=613)
        throttled = await http.post(graph.url + "/me/messages", json={"recipient": {"id": "P"}})
        assert (throttled.status, (await throttled.json())["error"]["code"]) == (400, 613)
        assert (await http.post(graph.origin + "/me/messages")).status == 404  # no version


async def test_x_dm_reply_and_rate_limit() -> None:
    async with FakeX() as x, aiohttp.ClientSession() as http:
        auth = {"Authorization": "Bearer t"}
        dm = await http.post(
            x.url + "/2/dm_conversations/with/42/messages", json={"text": "hi"}, headers=auth
        )
        assert (dm.status, (await dm.json())["data"]["dm_conversation_id"]) == (
            201,
            f"42-{x.user_id}",
        )
        tweet = await http.post(
            x.url + "/2/tweets",
            headers=auth,
            json={"text": "@c thanks", "reply": {"in_reply_to_tweet_id": "99"}},
        )
        assert (await tweet.json())["data"]["text"] == "@c thanks"
        assert x.tweets[0]["in_reply_to_tweet_id"] == "99"
        x.fail("/2/dm_conversations/*", status=429, retry_after=60)
        limited = await http.post(
            x.url + "/2/dm_conversations/with/42/messages", json={"text": "hi"}, headers=auth
        )
        assert limited.status == 429
        assert (await limited.json())["title"] == "Too Many Requests"
        assert int(limited.headers["x-rate-limit-reset"]) >= time.time() + 59
        assert (await http.post(x.url + "/2/tweets", json={"text": "x"})).status == 401


def test_slack_signature_matches_slack_docs_vector() -> None:
    # Values from refs/slack/SOURCES.md (Slack's request-signing docs example).
    body = ref_bytes("slack/slash_command_signed_docs_example.txt").rstrip(b"\n")
    headers = signing.slack_headers(body, "8f742231b10e8888abcd99yyyzzz85a5", 1531420618)
    assert headers == {
        "X-Slack-Request-Timestamp": "1531420618",
        "X-Slack-Signature": "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
    }
    fresh = signing.slack_command_body(text="today")
    verifier = SignatureVerifier("s3cret")
    assert verifier.is_valid_request(fresh, signing.slack_headers(fresh, "s3cret"))


def test_hex_signatures_match_github_vector() -> None:
    ref_path("social/signature_examples.md")
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    secret, body = "It's a Secret to Everybody", b"Hello, World!"
    assert signing.meta_headers(body, secret) == {"X-Hub-Signature-256": expected}
    assert signing.generic_headers(body, secret) == {"X-Relaydesk-Signature": expected}


def test_x_signatures_match_zammad_vectors() -> None:
    ref_path("social/signature_examples.md")
    assert signing.x_crc("some_random", "DDD") == (
        "sha256=VE19eUk6krbdSqWPdvH71xtFhApBAU81uPW3UT65vOs="
    )
    for body, expected in [
        (
            b'{"for_user_id":123,"key":"value"}',
            "sha256=JjEmBe1lVKT8XldrYUKibF+D5ehp8f0jDk3PXZSHEWI=",
        ),
        (b'{"key":"value"}', "sha256=EERHBy/k17v+SuT+K0OXuwhJtKnPtxi0n/Y4Wye4kVU="),
        (
            ref_bytes("social/sig_twitter_dm_body.json"),
            "sha256=xXu7qrPhqXfo8Ot14c0si9HrdQdBNru5fkSdoMZi+Ms=",
        ),
        (
            ref_bytes("social/sig_twitter_mention_body.json"),
            "sha256=U7bglX19JitI2xuvyONAc0d/fowIFEeUzkEgnWdGyUM=",
        ),
    ]:
        assert signing.x_headers(body, "DDD") == {"x-twitter-webhooks-signature": expected}


def test_slack_form_and_telegram_headers() -> None:
    assert signing.slack_form({"type": "block_actions"}) == (
        b"payload=%7B%22type%22%3A+%22block_actions%22%7D"
    )
    assert signing.telegram_headers("tok") == {"X-Telegram-Bot-Api-Secret-Token": "tok"}
