"""Delivery under faults: Slack and the networks fail, threads vanish, the process restarts.

Every test runs the real app on the fakes (tests/harness.py) and injects short
failures (`fail`, `fail_for`, `delay`); retries use the dispatcher's backoff from
SQL (Retry-After when given, else 2**attempts seconds), so each test stays a few
seconds long. Assertions read what reached the fakes and what SQL says.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlmodel import col

from bot.networks.http import JsonHttp
from bot.web import create_app
from storage.models import Conversation, CustomerMessage, TeamReply
from tests.fakes.base import Call
from tests.harness import AGENT, GENERIC_SECRET, INBOX, Bot, start_bot

Answer = dict[str, Any]


def quiet_env() -> dict[str, str]:
    """Keep the daily summary from posting during a test (it would eat injected faults).

    The zone is chosen so that it is about 06:00 there now; the summary is due at 23:59.
    """
    offset = (6 - datetime.now(UTC).hour) % 24
    offset = offset - 24 if offset > 12 else offset
    zone = "Etc/GMT" + (f"{-offset:+d}" if offset else "")  # Etc/GMT-3 is UTC+3
    return {"TIMEZONE": zone, "SUMMARY_TIME": "23:59"}


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    running, stop = await start_bot(tmp_path, env=quiet_env())
    try:
        yield running
    finally:
        await stop()


# -- helpers -----------------------------------------------------------------


def rendered(message: Answer) -> str:
    """What a person sees of a Slack message: its blocks, or its text."""
    return json.dumps(message["blocks"]) if message.get("blocks") else str(message.get("text"))


def holders(bot: Bot, text: str, channel: str = INBOX) -> list[Answer]:
    """The Slack messages in `channel` that show `text`."""
    return [m for m in bot.slack.messages(channel) if text in rendered(m)]


async def conversation_of(bot: Bot, root_ts: str, channel: str = INBOX) -> Conversation:
    async def recorded() -> Conversation | None:
        return await bot.services.repo.conversation_by_thread(channel, root_ts)

    found: Conversation = await bot.until(recorded, what=f"conversation of root {root_ts}")
    return found


async def all_posted(bot: Bot, expected: int) -> bool:
    async with bot.services.db.session() as session:
        states = (await session.execute(select(CustomerMessage.state))).scalars().all()  # type: ignore[call-overload]
    return len(states) == expected and all(state == "posted" for state in states)


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 5.0, what: str = "condition"
) -> None:
    """Like `Bot.until`, for async checks that answer yes or no."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def wait_all_posted(bot: Bot, expected: int, timeout: float = 8.0) -> None:
    await eventually(
        lambda: all_posted(bot, expected), timeout=timeout, what=f"{expected} messages posted"
    )


async def reply_row(bot: Bot, reply_ts: str) -> TeamReply:
    async with bot.services.db.session() as session:
        row = (
            await session.execute(select(TeamReply).where(col(TeamReply.slack_ts) == reply_ts))
        ).scalar_one()
    return row


def reaction_calls(bot: Bot, ts: str, name: str, method: str = "reactions.add") -> list[Call]:
    return [
        c
        for c in bot.slack.calls_to(method)
        if c.params.get("timestamp") == ts and c.params.get("name") == name and c.status == 200
    ]


def inbox_posts(bot: Bot) -> list[Call]:
    return [c for c in bot.slack.calls_to("chat.postMessage") if c.params.get("channel") == INBOX]


def bot_thread_messages(bot: Bot, root_ts: str, channel: str = INBOX) -> list[Answer]:
    return [m for m in bot.slack.replies(channel, root_ts) if m.get("bot_id")]


async def new_thread(bot: Bot, chat_id: int, text: str) -> tuple[str, Conversation]:
    response = await bot.from_telegram(chat_id, text)
    assert response.status == 200
    root = await bot.until(lambda: holders(bot, text), what=f"root for {text!r}")
    conversation = await conversation_of(bot, root[0]["ts"])
    return root[0]["ts"], conversation


def button_ids(message: Answer) -> set[str]:
    return {
        element["action_id"]
        for block in message.get("blocks", [])
        if block["type"] == "actions"
        for element in block["elements"]
    }


# -- (a) Slack fails, then recovers -----------------------------------------------------


async def test_slack_outage_delays_but_never_loses_or_doubles_messages(bot: Bot) -> None:
    bot.slack.fail_for(1.5, status=503)
    texts = {6001: ["first from ann", "second from ann"], 6002: ["only from bob"]}
    for chat_id, chat_texts in texts.items():
        for text in chat_texts:
            assert (await bot.from_telegram(chat_id, text)).status == 200  # stored: 200
    await wait_all_posted(bot, expected=3)

    assert [c.status for c in inbox_posts(bot)][:1] == [503]
    assert len(bot.slack.roots(INBOX)) == 2
    for chat_texts in texts.values():
        for text in chat_texts:
            assert len(holders(bot, text)) == 1, text
    ann_root = holders(bot, "first from ann")[0]
    assert ann_root["ts"] == ann_root.get("thread_ts", ann_root["ts"])
    assert [m["ts"] for m in holders(bot, "second from ann")] == [
        m["ts"] for m in bot.slack.replies(INBOX, ann_root["ts"]) if "second" in rendered(m)
    ]


async def test_slack_429_with_retry_after_is_honoured(bot: Bot) -> None:
    bot.slack.fail("chat.postMessage", 429, count=2, retry_after=1)
    started = asyncio.get_running_loop().time()
    await bot.from_telegram(6003, "rate limited hello")
    await wait_all_posted(bot, expected=1)
    elapsed = asyncio.get_running_loop().time() - started

    posts = inbox_posts(bot)
    assert [c.status for c in posts] == [429, 429, 200]
    # Nothing was re-tried before Slack's Retry-After (1 s) had passed.
    assert posts[1].at - posts[0].at >= 0.9
    assert posts[2].at - posts[1].at >= 0.9
    assert elapsed < 6
    assert len(bot.slack.roots(INBOX)) == 1
    assert len(holders(bot, "rate limited hello")) == 1


async def test_follow_up_waits_for_its_root_and_lands_in_the_thread(bot: Bot) -> None:
    """Slack fails the root, a follow-up arrives meanwhile: root first, then the follow-up."""
    bot.slack.fail("chat.postMessage", 500, count=2)
    await bot.from_telegram(6004, "opening message")
    await bot.slack.wait_for("chat.postMessage", count=2)
    await bot.from_telegram(6004, "follow-up during the outage")
    await wait_all_posted(bot, expected=2)

    roots = bot.slack.roots(INBOX)
    assert len(roots) == 1 and "opening message" in rendered(roots[0])
    follow = holders(bot, "follow-up during the outage")
    assert len(follow) == 1 and follow[0].get("thread_ts") == roots[0]["ts"]


# -- (b) the network fails for a while ------------------------------------------------------


@asynccontextmanager
async def short_network_timeout(bot: Bot, network: str, seconds: float) -> AsyncIterator[None]:
    """Give the adapter an HTTP session with a short timeout (JsonHttp accepts one)."""
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds))
    adapter: Any = bot.services.networks[network]
    original = adapter._http
    adapter._http = JsonHttp(original._platform, session=session)
    try:
        yield
    finally:
        adapter._http = original
        await session.close()


TEMPORARY_FAULTS = ["429-retry-after", "500", "timeout"]


@pytest.mark.parametrize("fault", TEMPORARY_FAULTS)
async def test_temporary_network_failure_is_retried_and_delivered_once(
    bot: Bot, fault: str
) -> None:
    root_ts, conversation = await new_thread(bot, 6101, "will my reply arrive?")
    async with short_network_timeout(bot, "telegram", 0.5):
        if fault == "429-retry-after":
            bot.telegram.fail("sendMessage", 429, count=1, retry_after=1)
        elif fault == "500":
            bot.telegram.fail("sendMessage", 500, count=1)
        else:
            bot.telegram.delay("sendMessage", 1.0)
        _, reply_ts = await bot.thread_reply(INBOX, root_ts, "yes it will")
        await bot.telegram.wait_for("sendMessage")
        if fault == "timeout":
            bot.telegram.clear_faults()  # the retry is answered at once
        # While it waits for the retry: a warning and one explanation in the thread.
        await bot.until(
            lambda: "warning" in bot.slack.reactions(INBOX, reply_ts), what="warning reaction"
        )
        await bot.until(
            lambda: "white_check_mark" in bot.slack.reactions(INBOX, reply_ts),
            timeout=6,
            what="delivered reaction",
        )

    sends = bot.telegram.calls_to("sendMessage")
    assert len(sends) == 2
    assert all(call.params["text"] == "yes it will" for call in sends)
    explanations = bot_thread_messages(bot, root_ts)
    assert len(explanations) == 1, explanations
    assert "Not delivered yet" in explanations[0]["text"]
    assert "warning" not in bot.slack.reactions(INBOX, reply_ts)  # cleared on success
    assert len(reaction_calls(bot, reply_ts, "warning")) == 1
    row = await reply_row(bot, reply_ts)
    assert (row.state, row.attempts) == ("sent", 1)
    assert row.conversation_id == conversation.id
    if fault == "timeout":
        # Telegram has no idempotency key: the timed-out request may also have landed.
        assert row.external_id == str(bot.telegram.messages()[-1]["message_id"])
    else:
        assert [m["text"] for m in bot.telegram.messages()] == ["yes it will"]


async def test_retry_waits_for_telegrams_retry_after(bot: Bot) -> None:
    root_ts, _ = await new_thread(bot, 6102, "slow down")
    bot.telegram.fail("sendMessage", 429, count=1, retry_after=2)
    _, reply_ts = await bot.thread_reply(INBOX, root_ts, "patience")
    await bot.until(lambda: "white_check_mark" in bot.slack.reactions(INBOX, reply_ts), timeout=6)
    first, second = bot.telegram.calls_to("sendMessage")
    assert second.at - first.at >= 1.9  # parameters.retry_after, not 2**1 by chance
    assert first.status == 429 and second.status == 200


# -- (c) the network refuses for good ---------------------------------------------------------


async def test_permanent_failure_is_shown_and_not_retried(bot: Bot) -> None:
    root_ts, conversation = await new_thread(bot, 6201, "I will block you")
    bot.telegram.blocked_chats.add(6201)
    _, reply_ts = await bot.thread_reply(INBOX, root_ts, "sorry to hear that")
    await bot.until(lambda: "warning" in bot.slack.reactions(INBOX, reply_ts))
    explanation = await bot.until(lambda: bot_thread_messages(bot, root_ts))
    assert len(explanation) == 1
    assert "blocked" in explanation[0]["text"]
    assert "Not delivered" in explanation[0]["text"]

    row = await reply_row(bot, reply_ts)
    assert row.state == "failed"
    assert row.last_error and "blocked" in row.last_error
    later = datetime.now(UTC) + timedelta(hours=1)

    async def nothing_due_even_later() -> bool:
        # (the root's re-render may still be due for a moment; then nothing is, ever)
        return conversation.id not in await bot.services.repo.due_conversations(later)

    await eventually(nothing_due_even_later, what="no work left for the conversation")
    work = await bot.services.repo.due_work(conversation.id or 0, later)
    assert work is not None and work.unwarned == [] and work.replies == []
    await asyncio.sleep(1.0)
    assert len(bot.telegram.calls_to("sendMessage")) == 1
    assert "white_check_mark" not in bot.slack.reactions(INBOX, reply_ts)
    turns = await bot.services.repo.turns(conversation.id or 0)
    assert [t.answered_at for t in turns] == [None]  # a failed delivery is no answer

    # The customer unblocks: a new reply goes out; the failed one is not re-sent.
    bot.telegram.blocked_chats.clear()
    _, second_ts = await bot.thread_reply(INBOX, root_ts, "welcome back")
    await bot.until(lambda: "white_check_mark" in bot.slack.reactions(INBOX, second_ts))
    assert [m["text"] for m in bot.telegram.messages()] == ["welcome back"]


async def test_failure_explanation_survives_a_slack_hiccup(bot: Bot) -> None:
    root_ts, _ = await new_thread(bot, 6202, "blocked while Slack hiccups")
    bot.telegram.blocked_chats.add(6202)
    bot.slack.fail("chat.postMessage", 503, count=2)  # slack_sdk retries once: both fail
    _, reply_ts = await bot.thread_reply(INBOX, root_ts, "this will not arrive")
    await bot.telegram.wait_for("sendMessage")
    await bot.until(
        lambda: bot_thread_messages(bot, root_ts),
        timeout=6,
        what="the failure explained once Slack answers again",
    )
    assert "blocked" in bot_thread_messages(bot, root_ts)[0]["text"]
    assert "warning" in bot.slack.reactions(INBOX, reply_ts)


# -- (d) the thread root was deleted ----------------------------------------------------------


async def test_deleted_root_gets_a_fresh_root_and_the_follow_up_lands_in_it(bot: Bot) -> None:
    old_ts, conversation = await new_thread(bot, 6301, "before the deletion")
    bot.slack.delete_message(INBOX, old_ts)
    await bot.from_telegram(6301, "after the deletion")
    await bot.until(lambda: holders(bot, "after the deletion"), what="follow-up posted")

    roots = bot.slack.roots(INBOX)
    assert len(roots) == 1 and roots[0]["ts"] != old_ts
    new_root = roots[0]
    assert "deleted" in rendered(new_root)  # the note says why there is a new root
    assert f"#{conversation.id}" in rendered(new_root)
    follow = holders(bot, "after the deletion")
    assert len(follow) == 1
    assert follow[0].get("thread_ts") == new_root["ts"]  # never loose in the channel
    loose = [m for m in bot.slack.messages(INBOX) if m["ts"] != new_root["ts"]]
    assert all(m.get("thread_ts") == new_root["ts"] for m in loose)

    # The new thread is the conversation's now: a reply there reaches the customer.
    again = await conversation_of(bot, new_root["ts"])
    assert again.id == conversation.id
    _, reply_ts = await bot.thread_reply(INBOX, new_root["ts"], "answered in the new thread")
    await bot.until(lambda: "white_check_mark" in bot.slack.reactions(INBOX, reply_ts))
    assert [m["text"] for m in bot.telegram.messages(6301)] == ["answered in the new thread"]


async def test_deleted_root_while_a_reply_is_rendered_does_not_break_delivery(bot: Bot) -> None:
    """The root vanishes; a reply in the (still open) thread re-renders it: no crash loop."""
    root_ts, _ = await new_thread(bot, 6302, "root to vanish")
    _, reply_ts = await bot.thread_reply(INBOX, root_ts, "quick answer")
    bot.slack.delete_message(INBOX, root_ts)
    await bot.telegram.wait_for("sendMessage")
    await bot.from_telegram(6302, "thanks!")
    await bot.until(lambda: holders(bot, "thanks!"), what="next message after the deletion")
    assert len(bot.slack.roots(INBOX)) == 1
    assert [m["text"] for m in bot.telegram.messages()] == ["quick answer"]


# -- (e) two first messages at once ------------------------------------------------------------


async def test_simultaneous_first_messages_make_one_root_each(bot: Bot) -> None:
    chats = list(range(6401, 6404))
    for chat_id in chats:
        responses = await asyncio.gather(
            bot.from_telegram(chat_id, f"{chat_id} one", first_name=f"Cust{chat_id}"),
            bot.from_telegram(chat_id, f"{chat_id} two", first_name=f"Cust{chat_id}"),
        )
        assert [r.status for r in responses] == [200, 200]
    generic = await asyncio.gather(
        bot.from_generic("gen-1", "gen-1-a", "generic one"),
        bot.from_generic("gen-1", "gen-1-b", "generic two"),
    )
    assert [r.status for r in generic] == [200, 200]
    await wait_all_posted(bot, expected=2 * len(chats) + 2, timeout=12)

    roots = bot.slack.roots(INBOX)
    assert len(roots) == len(chats) + 1
    for chat_id in chats:
        mine = [r for r in roots if f"Cust{chat_id}" in rendered(r)]
        assert len(mine) == 1, chat_id
        thread = bot.slack.thread(INBOX, mine[0]["ts"])
        assert sum(f"{chat_id} one" in rendered(m) for m in thread) == 1
        assert sum(f"{chat_id} two" in rendered(m) for m in thread) == 1
    async with bot.services.db.session() as session:
        count = (await session.execute(select(func.count()).select_from(Conversation))).scalar()
    assert count == len(chats) + 1


# -- (f) restart with work pending ------------------------------------------------------------


async def restart(bot: Bot) -> Bot:
    """Stop the app (not the fakes) and start a new one on the same settings and SQL file."""
    await bot.client.close()
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(bot.settings)))
    await client.start_server()
    return Bot(client, bot.slack, bot.telegram, bot.sink, bot.graph, bot.x, bot.settings)


async def test_messages_stored_while_slack_was_down_are_delivered_after_a_restart(
    tmp_path: Path,
) -> None:
    first, stop = await start_bot(tmp_path, env=quiet_env())
    second: Bot | None = None
    try:
        root_ts, _ = await new_thread(first, 6501, "before the outage")
        outage = first.slack.fail("chat.postMessage", 503, count=None)
        for text in ("during the outage 1", "during the outage 2"):
            assert (await first.from_telegram(6501, text)).status == 200
        assert (await first.from_telegram(6502, "new customer during the outage")).status == 200
        await first.slack.wait_for("chat.postMessage", count=3)  # it tried, and failed
        async with first.services.db.session() as session:
            pending = (
                await session.execute(
                    select(func.count())
                    .select_from(CustomerMessage)
                    .where(col(CustomerMessage.state) == "pending")
                )
            ).scalar()
        assert pending == 3

        second = await restart(first)
        assert outage.remaining is None
        first.slack.clear_faults()
        await wait_all_posted(second, expected=4, timeout=8)

        roots = second.slack.roots(INBOX)
        assert len(roots) == 2
        replies = second.slack.replies(INBOX, root_ts)
        shown = " ".join(rendered(m) for m in replies)
        assert "during the outage 1" in shown and "during the outage 2" in shown
        for text in ("before the outage", "during the outage 1", "new customer during the outage"):
            assert len(holders(second, text)) == 1, text
    finally:
        if second is not None:
            await second.client.close()
        await stop()


async def test_a_reply_pending_at_shutdown_is_sent_after_the_restart(tmp_path: Path) -> None:
    first, stop = await start_bot(tmp_path, env=quiet_env())
    second: Bot | None = None
    try:
        root_ts, _ = await new_thread(first, 6503, "answer me later")
        first.telegram.fail("sendMessage", 500, count=None)
        _, reply_ts = await first.thread_reply(INBOX, root_ts, "here is the answer")
        await first.until(lambda: bot_thread_messages(first, root_ts), what="explanation")
        second = await restart(first)
        first.telegram.clear_faults()
        await second.until(
            lambda: "white_check_mark" in second.slack.reactions(INBOX, reply_ts),
            timeout=6,
            what="reply delivered by the new process",
        )
        assert [m["text"] for m in second.telegram.messages()] == ["here is the answer"]
        assert len(bot_thread_messages(second, root_ts)) == 1  # one explanation, not two

        # Slack re-delivers the same event to the new process (its in-memory de-dup is
        # gone): SQL's unique constraint still keeps it from going out twice.
        await second.slack_event(
            {
                "type": "message",
                "channel": INBOX,
                "user": AGENT,
                "text": "here is the answer",
                "ts": reply_ts,
                "thread_ts": root_ts,
            },
            event_id="EvREDELIVERED",
            retry=1,
        )
        await asyncio.sleep(0.5)
        assert len(second.telegram.messages()) == 1
    finally:
        if second is not None:
            await second.client.close()
        await stop()


# -- (g) the generic webhook round trip ------------------------------------------------------------


async def test_generic_reply_is_a_signed_post_with_the_contract_body(bot: Bot) -> None:
    bot.slack.add_user(AGENT, "Alan Turing", "alan")
    assert (await bot.from_generic("ticket-77", "m-1", "Hello via the API")).status == 200
    root = await bot.root()
    _, reply_ts = await bot.thread_reply(INBOX, root["ts"], "Hi Grace, on it")
    (call,) = await bot.sink.wait_for("*")
    await bot.until(lambda: "white_check_mark" in bot.slack.reactions(INBOX, reply_ts))

    assert call.http_method == "POST" and call.path == "/replies"
    expected = "sha256=" + hmac.new(GENERIC_SECRET.encode(), call.body, hashlib.sha256).hexdigest()
    assert call.headers["X-Relaydesk-Signature"] == expected
    assert call.headers["Content-Type"].startswith("application/json")
    body = json.loads(call.body)
    assert set(body) == {"conversation_id", "message_id", "text", "author", "sent_at"}
    assert body["conversation_id"] == "ticket-77"
    assert body["text"] == "Hi Grace, on it"
    assert body["author"] == {"id": AGENT, "name": "alan"}
    assert isinstance(body["message_id"], str) and body["message_id"]
    sent_at = datetime.fromisoformat(body["sent_at"])
    assert sent_at == datetime.fromtimestamp(float(reply_ts), UTC)  # the reply's Slack ts
    row = await reply_row(bot, reply_ts)
    assert (row.state, row.external_id) == ("sent", body["message_id"])


async def test_generic_reply_url_failing_is_retried(bot: Bot) -> None:
    bot.sink.fail("*", 503, count=1, retry_after=1)
    await bot.from_generic("ticket-78", "m-1", "anyone?")
    root = await bot.root()
    _, reply_ts = await bot.thread_reply(INBOX, root["ts"], "yes, here")
    await bot.until(lambda: "white_check_mark" in bot.slack.reactions(INBOX, reply_ts), timeout=6)
    assert [c.status for c in bot.sink.calls] == [503, 200]
    assert bot.sink.calls[0].body == bot.sink.calls[1].body  # the same signed reply


# -- (h) claim, resolve, reopen ------------------------------------------------------------


async def wait_for_update(bot: Bot, after: int, ts: str) -> Answer:
    """Wait for a chat.update of `ts` beyond the first `after` ones; the root as it is then."""
    await bot.until(
        lambda: (
            len([c for c in bot.slack.calls_to("chat.update") if c.params.get("ts") == ts]) > after
        ),
        what="root re-rendered",
    )
    return bot.slack.message(INBOX, ts)


def updates_of(bot: Bot, ts: str) -> int:
    return len([c for c in bot.slack.calls_to("chat.update") if c.params.get("ts") == ts])


async def test_claim_resolve_reopen_buttons(bot: Bot) -> None:
    root_ts, conversation = await new_thread(bot, 6601, "who will help me?")
    cid = str(conversation.id)
    repo = bot.services.repo
    root = bot.slack.message(INBOX, root_ts)
    assert "relaydesk.claim" in button_ids(root)

    n = updates_of(bot, root_ts)
    response = await bot.click("relaydesk.claim", cid, message_ts=root_ts)
    assert response.status == 200
    root = await wait_for_update(bot, n, root_ts)
    assert (await repo.conversation(conversation.id or 0)).owner == AGENT  # type: ignore[union-attr]
    assert f"Owner: <@{AGENT}>" in rendered(root)
    assert "relaydesk.claim" not in button_ids(root)

    # A second claimer is told who owns it, privately; nothing changes.
    other = "U0OTHER01"
    await bot.click("relaydesk.claim", cid, user=other, message_ts=root_ts)
    told = await bot.until(
        lambda: [e for e in bot.slack.ephemerals(INBOX) if e["user"] == other],
        what="ephemeral to the second claimer",
    )
    assert f"<@{AGENT}>" in told[0]["text"]
    assert (await repo.conversation(conversation.id or 0)).owner == AGENT  # type: ignore[union-attr]

    n = updates_of(bot, root_ts)
    await bot.click("relaydesk.resolve", cid, message_ts=root_ts)
    root = await wait_for_update(bot, n, root_ts)
    resolved = await repo.conversation(conversation.id or 0)
    assert resolved is not None
    assert (resolved.status, resolved.resolved_by) == ("resolved", AGENT)
    assert f"Resolved by <@{AGENT}>" in rendered(root)
    assert button_ids(root) == {"relaydesk.reopen"}

    n = updates_of(bot, root_ts)
    await bot.click("relaydesk.reopen", cid, message_ts=root_ts)
    root = await wait_for_update(bot, n, root_ts)
    reopened = await repo.conversation(conversation.id or 0)
    assert reopened is not None and reopened.status == "open" and reopened.resolved_by is None
    assert "relaydesk.resolve" in button_ids(root) and "Resolved by" not in rendered(root)


async def test_customer_message_reopens_a_resolved_conversation_in_the_same_thread(
    bot: Bot,
) -> None:
    root_ts, conversation = await new_thread(bot, 6602, "thanks, all good")
    n = updates_of(bot, root_ts)
    await bot.click("relaydesk.resolve", str(conversation.id), message_ts=root_ts)
    await wait_for_update(bot, n, root_ts)

    n = updates_of(bot, root_ts)
    await bot.from_telegram(6602, "actually, one more thing")
    follow = await bot.until(lambda: holders(bot, "one more thing"), what="follow-up")
    assert len(bot.slack.roots(INBOX)) == 1
    assert follow[0].get("thread_ts") == root_ts
    post = [c for c in inbox_posts(bot) if "one more" in c.params["text"]]
    assert post[0].params.get("thread_ts") == root_ts
    assert post[0].params.get("reply_broadcast") in (True, "true", "1")
    root = await wait_for_update(bot, n, root_ts)
    assert "relaydesk.resolve" in button_ids(root) and "Resolved by" not in rendered(root)
    reopened = await bot.services.repo.conversation(conversation.id or 0)
    assert reopened is not None and reopened.status == "open"


async def test_buttons_ack_fast_even_when_slack_is_slow(bot: Bot) -> None:
    """Slack wants the ack within 3 s: the answer must not wait on the Web API."""
    root_ts, conversation = await new_thread(bot, 6603, "slow day")
    bot.slack.delay("chat.postEphemeral", 3.5)
    bot.slack.delay("chat.update", 3.5)
    started = asyncio.get_running_loop().time()
    response = await bot.click("relaydesk.claim", str(conversation.id), message_ts=root_ts)
    assert response.status == 200
    assert asyncio.get_running_loop().time() - started < 1.0
    bot.slack.clear_faults()
