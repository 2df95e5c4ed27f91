"""Customer message -> Slack thread -> team reply -> customer, end to end in-process."""

from __future__ import annotations

import json
from pathlib import Path

from tests.harness import AGENT, INBOX, Bot, start_bot


async def test_telegram_message_becomes_a_thread_and_a_reply_goes_back(any_bot: Bot) -> None:
    bot = any_bot
    response = await bot.from_telegram(5001, "Where is my order?", first_name="Ada", username="ada")
    assert response.status == 200
    root = await bot.root()
    header = root["blocks"][0]["text"]["text"]
    assert "Telegram" in header and "Ada" in header and "@ada" in header and "#1" in header
    assert "Where is my order?" in json.dumps(root["blocks"])
    action_ids = {
        element["action_id"]
        for block in root["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
    }
    assert {
        "relaydesk.claim",
        "relaydesk.resolve",
        "relaydesk.escalate",
        "relaydesk.handoff",
    } <= action_ids

    await bot.from_telegram(5001, "Order 42, please")
    await bot.until(lambda: bot.slack.replies(INBOX, root["ts"]), what="follow-up in thread")
    assert "Order 42, please" in bot.slack.replies(INBOX, root["ts"])[0]["text"]
    assert len(bot.slack.roots(INBOX)) == 1

    response, reply_ts = await bot.thread_reply(INBOX, root["ts"], "It ships today!")
    assert response.status == 200
    sent = await bot.telegram.wait_for("sendMessage")
    assert sent[0].params["chat_id"] == 5001
    assert sent[0].params["text"] == "It ships today!"
    await bot.until(
        lambda: "white_check_mark" in bot.slack.reactions(INBOX, reply_ts), what="delivery reaction"
    )


async def test_customer_text_cannot_ping_or_link(bot: Bot) -> None:
    await bot.from_telegram(5002, "<!channel> hi <@U123> see <http://evil.example|bank>")
    root = await bot.root()
    rendered = json.dumps(root["blocks"]) + root["text"]
    assert "<!channel>" not in rendered
    assert "<@U123>" not in rendered
    assert "<http://evil.example|bank>" not in rendered
    assert "&lt;!channel&gt;" in rendered


async def test_notes_stay_internal_and_other_messages_are_ignored(bot: Bot) -> None:
    await bot.from_telegram(5003, "Hello")
    root = await bot.root()
    await bot.thread_reply(INBOX, root["ts"], "NOTE: VIP customer")
    await bot.thread_reply(INBOX, root["ts"], "private: check refund")
    await bot.thread_reply(INBOX, root["ts"], "bot says", bot_id="B999", subtype="bot_message")
    await bot.thread_reply(INBOX, root["ts"], "edited", subtype="message_changed")
    await bot.slack_event(
        {
            "type": "message",
            "channel": INBOX,
            "user": AGENT,
            "text": "loose channel message",
            "ts": "1900000005.000100",
        }
    )
    await bot.thread_reply(INBOX, "1111111111.000001", "unknown thread")
    _, answer_ts = await bot.thread_reply(INBOX, root["ts"], "real answer")
    await bot.until(lambda: "white_check_mark" in bot.slack.reactions(INBOX, answer_ts))
    assert [m["text"] for m in bot.telegram.messages()] == ["real answer"]
    replies = await bot.services.repo.replies(1)
    assert [(r.kind, r.state) for r in replies] == [
        ("note", "internal"),
        ("note", "internal"),
        ("reply", "sent"),
    ]


async def test_slack_retries_do_not_send_twice(any_bot: Bot) -> None:
    bot = any_bot
    await bot.from_telegram(5004, "Hi")
    root = await bot.root()
    ts = bot.slack.add_message(INBOX, "once", user=AGENT, thread_ts=root["ts"])["ts"]
    event = {
        "type": "message",
        "channel": INBOX,
        "user": AGENT,
        "text": "once",
        "ts": ts,
        "thread_ts": root["ts"],
    }
    for retry in (None, 1, 2):
        response = await bot.slack_event(event, event_id="EvSAME", retry=retry)
        assert response.status == 200
    # Same message under a different event id (Slack re-delivery): SQL unique constraint.
    await bot.slack_event(event, event_id="EvOTHER")
    await bot.telegram.wait_for("sendMessage")
    await bot.until(lambda: "white_check_mark" in bot.slack.reactions(INBOX, ts))
    assert len(bot.telegram.messages()) == 1


async def test_telegram_resend_creates_nothing_twice(bot: Bot) -> None:
    for _ in range(3):
        response = await bot.from_telegram(5005, "only once", message_id=77, update_id=900)
        assert response.status == 200
    await bot.root()
    assert len(await bot.services.repo.messages(1)) == 1
    assert len(bot.slack.roots(INBOX)) == 1


async def test_metrics_count_what_happened(bot: Bot) -> None:
    await bot.from_telegram(5006, "Hi")
    await bot.from_telegram(5006, "dup", message_id=1)  # the same Telegram message again
    await bot.post_raw("/webhooks/telegram", b"{}", {})
    root = await bot.root()
    await bot.thread_reply(INBOX, root["ts"], "still waiting?")
    await bot.telegram.wait_for("sendMessage")
    response = await bot.client.get("/metrics")
    assert response.status == 200
    text = await response.text()
    assert 'relaydesk_inbound_messages_total{network="telegram",outcome="stored"} 1.0' in text
    assert 'relaydesk_inbound_messages_total{network="telegram",outcome="duplicate"} 1.0' in text
    assert 'relaydesk_inbound_messages_total{network="telegram",outcome="refused_401"} 1.0' in text
    assert 'relaydesk_slack_api_calls_total{method="chat.postMessage",status="ok"}' in text
    assert "relaydesk_webhook_to_slack_seconds_count 1.0" in text
    assert "relaydesk_pending_deliveries" in text and "relaydesk_unanswered_conversations" in text


async def test_a_network_can_have_its_own_inbox_channel(tmp_path: Path) -> None:
    bot, stop = await start_bot(tmp_path, env={"SLACK_CHANNEL_TELEGRAM": "C0TELEGRAM1"})
    try:
        await bot.from_telegram(5010, "Hi from Telegram")
        await bot.from_generic("web-1", "m-1", "Hi from the website")
        telegram_root = await bot.root("C0TELEGRAM1")
        assert "Hi from Telegram" in json.dumps(telegram_root["blocks"])
        generic_root = await bot.root(INBOX)
        assert "Hi from the website" in json.dumps(generic_root["blocks"])
        assert len(bot.slack.roots(INBOX)) == 1
    finally:
        await stop()
