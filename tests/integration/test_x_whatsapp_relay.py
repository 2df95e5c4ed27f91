"""X and WhatsApp through the whole bot, from the real captured payloads."""

from __future__ import annotations

import copy
import json
from typing import Any

from tests.harness import INBOX, META_SECRET, X_SECRET, Bot
from tests.refs import ref_json
from tests.signing import meta_headers, x_crc, x_headers


async def post_x(bot: Bot, payload: dict[str, Any]) -> int:
    body = json.dumps(payload).encode()
    return (await bot.post_raw("/webhooks/x", body, x_headers(body, X_SECRET))).status


async def post_whatsapp(bot: Bot, payload: dict[str, Any]) -> int:
    body = json.dumps(payload).encode()
    return (await bot.post_raw("/webhooks/whatsapp", body, meta_headers(body, META_SECRET))).status


async def test_x_mention_reply_and_the_customers_answer_stay_in_one_thread(bot: Bot) -> None:
    crc = await bot.client.get("/webhooks/x", params={"crc_token": "some_random"})
    assert crc.status == 200
    assert await crc.json() == {"response_token": x_crc("some_random", X_SECRET)}

    mention = ref_json("social/twitter_mention.json")["params"]
    assert await post_x(bot, mention) == 200
    root = await bot.root()
    assert "Lorem ipsum" in json.dumps(root["blocks"])

    _, reply_ts = await bot.thread_reply(INBOX, root["ts"], "Thanks, we're on it")
    await bot.until(lambda: bot.x.tweets, what="reply post")
    ours = bot.x.tweets[0]
    assert ours["in_reply_to_tweet_id"] == "1065035365336141825"
    await bot.until(lambda: "white_check_mark" in bot.slack.reactions(INBOX, reply_ts))

    answer = copy.deepcopy(mention)
    tweet = answer["tweet_create_events"][0]
    tweet.update(
        {
            "id": 2,
            "id_str": "2000000000000000002",
            "text": "@znuny great, thanks",
            "in_reply_to_status_id_str": ours["id"],
        }
    )
    tweet["extended_tweet"]["full_text"] = "@znuny great, thanks"
    assert await post_x(bot, answer) == 200
    await bot.until(
        lambda: [m for m in bot.slack.replies(INBOX, root["ts"]) if "great, thanks" in m["text"]],
        what="answer in the same thread",
    )
    assert len(bot.slack.roots(INBOX)) == 1


async def test_whatsapp_text_reply_and_a_failed_status(bot: Bot) -> None:
    inbound = ref_json("social/whatsapp_text.json")
    assert await post_whatsapp(bot, inbound) == 200
    root = await bot.root()
    _, reply_ts = await bot.thread_reply(INBOX, root["ts"], "Hello from the team")
    await bot.until(lambda: bot.graph.sent, what="WhatsApp send")
    sent = bot.graph.sent[0]
    assert sent["kind"] == "whatsapp" and sent["text"]["body"] == "Hello from the team"
    await bot.until(lambda: "white_check_mark" in bot.slack.reactions(INBOX, reply_ts))

    status = ref_json("social/whatsapp_status.json")
    value = status["entry"][0]["changes"][0]["value"]
    value["statuses"][0].update(
        {
            "id": sent["message_id"],
            "status": "failed",
            "errors": [{"code": 131047, "title": "Re-engagement message"}],
        }
    )
    assert await post_whatsapp(bot, status) == 200
    await bot.until(lambda: "warning" in bot.slack.reactions(INBOX, reply_ts), what="warning")
    said = await bot.until(lambda: explanations(bot, root["ts"]), what="the explanation")
    assert len(said) == 1 and "Re-engagement" in said[0]
    replies = await bot.services.repo.replies(1)
    assert [(r.state, r.network_status) for r in replies] == [("failed", "failed")]
    turns = await bot.services.repo.turns(1)
    assert turns[0].answered_at is None  # a failed delivery is not a reply


async def test_whatsapp_closed_window_says_what_to_do(bot: Bot) -> None:
    inbound = ref_json("social/whatsapp_text.json")
    wa_id = inbound["entry"][0]["changes"][0]["value"]["contacts"][0]["wa_id"]
    bot.graph.closed_window.add(wa_id)
    await post_whatsapp(bot, inbound)
    root = await bot.root()
    _, reply_ts = await bot.thread_reply(INBOX, root["ts"], "Are you still there?")
    await bot.until(lambda: "warning" in bot.slack.reactions(INBOX, reply_ts), what="warning")
    said = await bot.until(lambda: explanations(bot, root["ts"]), what="the explanation")
    assert len(said) == 1 and "template" in said[0]
    assert "Reply window closes" in json.dumps(root["blocks"])


def explanations(bot: Bot, root_ts: str) -> list[str]:
    """Thread replies that say a reply was not delivered (posted after the reaction)."""
    return [m["text"] for m in bot.slack.replies(INBOX, root_ts) if "Not delivered" in m["text"]]
