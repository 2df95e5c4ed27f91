"""Posting under Slack's limits and faults: nothing blocks a conversation, nothing twice.

The fake Slack refuses what Slack refuses (`invalid_blocks` over 3,000 characters in
a section or 50 blocks, `msg_too_long` over 40,000 characters of text), answers a
post late when told to (the post succeeds after the client gave up), and returns
message metadata from conversations.history / conversations.replies.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from storage.core import MessageState, ReplyState
from storage.models import CustomerMessage, TeamReply, utcnow
from tests.harness import INBOX, Bot, start_bot
from tests.integration.test_faults import quiet_env

Answer = dict[str, Any]


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    running, stop = await start_bot(tmp_path, env=quiet_env())
    try:
        yield running
    finally:
        await stop()


async def states(bot: Bot) -> list[str]:
    async with bot.services.db.read() as session:
        rows = await session.execute(
            select(col(CustomerMessage.state)).order_by(col(CustomerMessage.id))
        )
        return [str(state) for state in rows.scalars()]


def thread_text(bot: Bot, root: Answer) -> str:
    return "".join(str(m.get("text", "")) for m in bot.slack.replies(INBOX, root["ts"]))


def unquote(section: str) -> str:
    return "\n".join(line.removeprefix("> ") for line in section.split("\n"))


async def test_a_long_first_message_is_split_between_root_and_thread(bot: Bot) -> None:
    text = "\n".join(f"line {n} <a & b> " + "x" * 60 for n in range(120))  # ~10,000 escaped
    await bot.from_telegram(501, text)
    root = await bot.root()
    await bot.until(lambda: states(bot), what="stored")
    await bot.until(
        lambda: _all(states(bot), MessageState.POSTED), timeout=10, what="the message posted"
    )
    sections = [b["text"]["text"] for b in root["blocks"] if b["type"] == "section"]
    quoted = unquote(sections[1])
    assert all(len(s) <= 3000 for s in sections)
    shown = quoted + thread_text(bot, root)
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert shown == escaped  # all of it, in order, nothing cut twice
    assert "continues in the thread" in json.dumps(root["blocks"])


async def test_a_follow_up_over_40000_characters_is_split_in_order(bot: Bot) -> None:
    await bot.from_telegram(502, "hello")
    root = await bot.root()
    long = " ".join(f"w{n}" for n in range(20_000))  # ~128,000 characters
    await bot.from_telegram(502, long)
    await bot.from_telegram(502, "after the long one")
    await bot.until(
        lambda: _all(states(bot), MessageState.POSTED, 3), timeout=15, what="all posted"
    )
    replies = bot.slack.replies(INBOX, root["ts"])
    assert all(len(str(m["text"])) <= 40_000 for m in replies)
    assert len(replies) >= 4
    assert "".join(str(m["text"]) for m in replies[:-1]) == long
    assert replies[-1]["text"] == "after the long one"


async def test_a_refused_message_fails_alone_and_later_ones_arrive(bot: Bot) -> None:
    await bot.from_telegram(503, "first")
    root = await bot.root()
    await bot.until(lambda: _all(states(bot), MessageState.POSTED, 1), what="first posted")
    bot.slack.fail("chat.postMessage", status=200, body={"ok": False, "error": "invalid_blocks"})
    await bot.from_telegram(503, "refused one")
    await bot.until(
        lambda: _all(states(bot), MessageState.FAILED, 2, index=1), what="second failed"
    )
    await bot.from_telegram(503, "third")
    await bot.until(lambda: "third" in thread_text(bot, root), what="the third message")

    async def settled() -> bool:  # the post lands in Slack a moment before SQL records it
        return await states(bot) == ["posted", "failed", "posted"]

    await bot.until(settled, what="the third recorded as posted")
    said = thread_text(bot, root)
    assert "could not be posted here" in said and "invalid_blocks" in said
    health = await (await bot.client.get("/healthz")).json()
    assert health["failed"] == 1 and health["oldest_pending_seconds"] == 0
    metrics = await (await bot.client.get("/metrics")).text()
    assert "relaydesk_failed_deliveries 1.0" in metrics
    assert "relaydesk_oldest_pending_delivery_seconds 0.0" in metrics


async def test_healthz_reports_the_oldest_pending_delivery(bot: Bot) -> None:
    bot.slack.not_in_channels.add(INBOX)  # fixable: kept and retried
    await bot.from_telegram(504, "waiting")
    await bot.until(lambda: bot.slack.calls_to("chat.postMessage"), what="a try")
    async with bot.services.db.session() as session:
        message = (await session.execute(select(CustomerMessage))).scalars().one()
        message.received_at = utcnow().replace(microsecond=0) - _minutes(7)
    health = await (await bot.client.get("/healthz")).json()
    assert health["status"] == "ok" and 420 <= health["oldest_pending_seconds"] < 480
    assert await states(bot) == ["pending"]


async def test_a_root_post_that_timed_out_but_succeeded_is_not_posted_twice(bot: Bot) -> None:
    bot.services.slack.client.timeout = 1
    bot.slack.delay("chat.postMessage", 1.5)
    await bot.from_telegram(505, "hello there")
    await bot.slack.wait_for("chat.postMessage")
    await bot.until(lambda: bot.slack.roots(INBOX), timeout=5, what="the late root")
    bot.slack.clear_faults()
    await bot.until(lambda: _all(states(bot), MessageState.POSTED, 1), timeout=15, what="recorded")
    assert len(bot.slack.roots(INBOX)) == 1
    root = bot.slack.roots(INBOX)[0]
    assert root["metadata"]["event_payload"]["conversation_id"] >= 1
    assert bot.slack.calls_to("conversations.history")  # it looked before posting again
    await bot.from_telegram(505, "second")
    await bot.until(lambda: "second" in thread_text(bot, root), what="second in the thread")


async def test_a_reply_whose_send_was_cut_short_is_not_resent_blindly(bot: Bot) -> None:
    await bot.from_telegram(506, "hi")
    root = await bot.root()
    bot.services.dispatcher._draining = True  # a dispatcher that died mid-send, as SQL sees it
    _, ts = await bot.thread_reply(INBOX, root["ts"], "our answer")
    reply = await bot.until(lambda: _reply(bot), what="the reply stored")
    await bot.services.repo.begin_send(reply.id or 0, utcnow())
    bot.services.dispatcher._draining = False
    await bot.services.dispatcher.kick(reply.conversation_id)
    warning = await bot.until(
        lambda: [m for m in bot.slack.replies(INBOX, root["ts"]) if m.get("blocks")],
        what="the in-doubt notice",
    )
    assert "may not have been delivered" in warning[0]["text"]
    button = warning[0]["blocks"][1]["elements"][0]
    assert (button["action_id"], button["value"]) == ("relaydesk.resend", str(reply.id))
    assert not bot.telegram.calls_to("sendMessage")
    doubted = await _reply(bot)
    assert doubted is not None and doubted.state == ReplyState.UNCERTAIN
    # the same button value clicked in another conversation's thread does nothing
    await bot.from_telegram(507, "someone else")
    other = await bot.root(index=1)
    await bot.click(
        "relaydesk.resend", str(reply.id), message_ts=other["ts"], thread_ts=other["ts"]
    )
    await bot.until(lambda: any("already resent" in e for e in bot.ephemerals_for()), what="no")
    assert not bot.telegram.calls_to("sendMessage")
    await bot.click(
        "relaydesk.resend", str(reply.id), message_ts=warning[0]["ts"], thread_ts=root["ts"]
    )
    await bot.telegram.wait_for("sendMessage")
    await bot.until(lambda: _sent(bot), what="delivered after Resend")
    await bot.click(
        "relaydesk.resend", str(reply.id), message_ts=warning[0]["ts"], thread_ts=root["ts"]
    )
    await bot.until(
        lambda: sum("already resent" in e for e in bot.ephemerals_for()) == 2, what="no"
    )
    assert len(bot.telegram.calls_to("sendMessage")) == 1


async def _reply(bot: Bot) -> TeamReply | None:
    async with bot.services.db.read() as session:
        return (await session.execute(select(TeamReply))).scalars().first()


async def _sent(bot: Bot) -> bool:
    reply = await _reply(bot)
    return reply is not None and reply.state == ReplyState.SENT


async def _all(
    found: Any, state: MessageState, count: int | None = None, index: int | None = None
) -> bool:
    values = await found
    if count is not None and len(values) < count:
        return False
    if index is not None:
        return values[index] == state
    return bool(values) and all(value == state for value in values)


def _minutes(n: int) -> timedelta:
    return timedelta(minutes=n)
