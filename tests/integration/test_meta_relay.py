"""Messenger through the whole bot, from the real captured payloads."""

from __future__ import annotations

import json
from datetime import timedelta

from tests.harness import INBOX, META_SECRET, Bot
from tests.refs import ref_json
from tests.signing import meta_headers


async def post_meta(bot: Bot, payload: dict[str, object]) -> int:
    body = json.dumps(payload).encode()
    response = await bot.post_raw("/webhooks/meta", body, meta_headers(body, META_SECRET))
    return response.status


def with_mid(payload: dict, mid: str, text: str) -> dict:  # type: ignore[type-arg]
    message = payload["entry"][0]["messaging"][0]["message"]
    message.update({"mid": mid, "text": text})
    return payload


async def test_messenger_round_trip_with_echoes(bot: Bot) -> None:
    bot.services.relay.echo_hold = timedelta(0)
    assert await post_meta(bot, ref_json("social/messenger_message.json")) == 200
    root = await bot.root()
    assert "hello world" in json.dumps(root["blocks"])

    # Our own reply goes out through the Send API...
    _, reply_ts = await bot.thread_reply(INBOX, root["ts"], "Hi! How can we help?")
    await bot.until(lambda: bot.graph.sent, what="Send API call")
    sent = bot.graph.sent[0]
    assert sent["recipient"] == {"id": "1134343043305865"}
    assert sent["message"] == {"text": "Hi! How can we help?"}
    await bot.until(lambda: "white_check_mark" in bot.slack.reactions(INBOX, reply_ts))
    # ...and its echo is not shown again as a colleague's reply.
    echo_of_ours = with_mid(
        ref_json("social/messenger_echo.json"), sent["message_id"], "Hi! How can we help?"
    )
    assert await post_meta(bot, echo_of_ours) == 200

    # A colleague answering from Meta's own inbox shows in the thread and counts.
    colleague = with_mid(ref_json("social/messenger_echo.json"), "mid.colleague1", "On it")
    assert await post_meta(bot, colleague) == 200
    shown = await bot.until(
        lambda: [m for m in bot.slack.replies(INBOX, root["ts"]) if "On it" in m["text"]],
        what="inbox reply in thread",
    )
    assert "inbox" in shown[0]["text"]

    async def both_sent() -> list[tuple[str, str]] | None:
        """Confirming the echo in SQL follows its Slack post: wait for it, not just the post."""
        states = sorted((r.source, str(r.state)) for r in await bot.services.repo.replies(1))
        return states if ("network", "sent") in states else None

    states = await bot.until(both_sent, what="the inbox reply confirmed in SQL")
    assert states == [("network", "sent"), ("slack", "sent")]
    assert not [
        m
        for m in bot.slack.replies(INBOX, root["ts"])
        if "How can we help" in m["text"] and "inbox" in m["text"]
    ]


async def test_meta_handshake_and_signature(bot: Bot) -> None:
    ok = await bot.client.get(
        "/webhooks/meta",
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": "meta-verify",
            "hub.challenge": "1158201444",
        },
    )
    assert ok.status == 200 and await ok.text() == "1158201444"
    wrong = await bot.client.get(
        "/webhooks/meta",
        params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"},
    )
    assert wrong.status == 403
    body = json.dumps(ref_json("social/messenger_message.json")).encode()
    unsigned = await bot.post_raw("/webhooks/meta", body, {})
    assert unsigned.status == 401
    assert await bot.services.repo.conversation(1) is None


async def test_customer_attachment_urls_neither_ping_nor_break_the_link(bot: Bot) -> None:
    """A URL from a network is customer-supplied: only http(s), %-encoded inside `<url|…>`."""
    assert await post_meta(bot, ref_json("social/messenger_message.json")) == 200
    root = await bot.root()
    follow_up = with_mid(ref_json("social/messenger_message.json"), "mid.urls1", "see these")
    message = follow_up["entry"][0]["messaging"][0]["message"]
    message["attachments"] = [
        {"type": "image", "payload": {"url": "!here"}},
        {"type": "file", "payload": {"url": "<!channel>"}},
        {"type": "video", "payload": {"url": "javascript:alert(1)"}},
        {"type": "audio", "payload": {"url": "https://cdn.example/a.mp3?x=1&y=<b>|@c"}},
    ]
    assert await post_meta(bot, follow_up) == 200
    [shown] = await bot.until(
        lambda: [m for m in bot.slack.replies(INBOX, root["ts"]) if "see these" in m["text"]],
        what="the follow-up in the thread",
    )
    text = shown["text"]
    assert "<!" not in text and "javascript" not in text and "channel" not in text
    # a web URL is shown as escaped text (Slack links it; nothing in it is markup)
    assert "[audio] https://cdn.example/a.mp3?x=1&amp;y=&lt;b&gt;|@c" in text
    assert "[photo]" in text and "[document]" in text and "[video]" in text
