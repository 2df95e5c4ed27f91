"""What the customer does besides writing: edits, reactions, removals, notices, and
replies sent outside Slack. Through the real app against the fake Slack; Telegram
edits arrive as signed webhooks, the other kinds as the events the adapters emit."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlmodel import col

from bot.networks.base import (
    CustomerReaction,
    CustomerRemoval,
    InboundMessage,
    Notice,
)
from storage.actions import ActionRepository, NewAction
from storage.core import ActionKind, ActionState, Mark, ReplyKind, ReplyState
from storage.models import CustomerAction, CustomerMessage, TeamReply
from tests.harness import INBOX, TELEGRAM_SECRET, Bot
from tests.signing import telegram_headers

CHAT = 7001


async def _edit(bot: Bot, message_id: int, text: str, update_id: int | None = None) -> int:
    update = {
        "update_id": update_id or bot.next_id("update"),
        "edited_message": {
            "message_id": message_id,
            "date": int(time.time()) - 5,
            "edit_date": int(time.time()),
            "chat": {"id": CHAT, "type": "private", "first_name": "Ada"},
            "from": {"id": CHAT, "is_bot": False, "first_name": "Ada"},
            "text": text,
        },
    }
    response = await bot.post_raw(
        "/webhooks/telegram", json.dumps(update).encode(), telegram_headers(TELEGRAM_SECRET)
    )
    return response.status


async def _conversation(bot: Bot, *texts: str) -> dict[str, Any]:
    """A Telegram conversation with its first message (id 1) and follow-ups (2, 3...)."""
    for number, text in enumerate(texts, 1):
        await bot.from_telegram(CHAT, text, message_id=number)
        if number == 1:
            root = await bot.root()
    await bot.until(
        lambda: len(bot.slack.replies(INBOX, root["ts"])) >= len(texts) - 1 or len(texts) == 1,
        what="follow-ups posted",
    )
    await bot.until(lambda: _all_posted(bot), what="messages recorded as posted")
    return root


async def _all_posted(bot: Bot) -> bool:
    async with bot.services.db.read() as session:
        pending = await session.execute(
            select(func.count())
            .select_from(CustomerMessage)
            .where(col(CustomerMessage.slack_ts).is_(None))
        )
        return bool(pending.scalar_one() == 0)


async def _rows(bot: Bot, model: Any) -> list[Any]:
    async with bot.services.db.read() as session:
        return list((await session.execute(select(model))).scalars())


def _updates(bot: Bot, ts: str) -> list[dict[str, Any]]:
    return [c.params for c in bot.slack.calls_to("chat.update") if c.params.get("ts") == ts]


def _now() -> datetime:
    return datetime.now(UTC)


async def test_an_edit_updates_the_slack_copy_and_keeps_the_old_text(bot: Bot) -> None:
    root = await _conversation(bot, "Hello", "My order is 41")
    follow_up = bot.slack.replies(INBOX, root["ts"])[0]
    turns_before = await bot.services.repo.turns(1)

    assert await _edit(bot, 2, "My order is 42") == 200

    await bot.until(lambda: _updates(bot, follow_up["ts"]), what="the follow-up updated")
    shown = bot.slack.message(INBOX, follow_up["ts"])["text"]
    assert "My order is 42" in shown and "(edited)" in shown and "41" not in shown
    notes = [r["text"] for r in bot.slack.replies(INBOX, root["ts"]) if "Before" in r["text"]]
    assert len(notes) == 1 and "My order is 41" in notes[0]

    async def stored() -> list[CustomerMessage] | None:
        messages: list[CustomerMessage] = await _rows(bot, CustomerMessage)
        return messages if messages[1].mark == Mark.EDITED else None

    messages = await bot.until(stored, what="the edit stored")
    assert [m.text for m in messages] == ["Hello", "My order is 42"]  # digests read this
    turns_after = await bot.services.repo.turns(1)
    assert [(t.started_at, t.answered_at) for t in turns_after] == [
        (t.started_at, t.answered_at) for t in turns_before
    ]


async def test_an_edit_of_the_first_message_changes_the_root(bot: Bot) -> None:
    root = await _conversation(bot, "Helo, my parcel is lost")

    await _edit(bot, 1, "Hello, my parcel is lost")

    def root_text() -> str | None:
        text = json.dumps(bot.slack.message(INBOX, root["ts"]).get("blocks"))
        return text if "Hello, my parcel" in text else None

    shown = await bot.until(root_text, what="the root shows the new text")
    assert "(edited)" in shown
    notes = await bot.until(
        lambda: [r for r in bot.slack.replies(INBOX, root["ts"]) if "Before" in r["text"]],
        what="the previous text in the thread",
    )
    assert "Helo, my parcel" in notes[0]["text"]
    conversation = await bot.services.repo.conversation(1)
    assert conversation is not None and conversation.root_text == "Hello, my parcel is lost"


async def test_a_retried_edit_and_a_slack_failure_do_nothing_twice(bot: Bot) -> None:
    root = await _conversation(bot, "Hi", "Size M")
    follow_up = bot.slack.replies(INBOX, root["ts"])[0]
    bot.slack.fail("chat.update", status=500, count=2)  # the call and its one quick retry

    await _edit(bot, 2, "Size L", update_id=900)
    await _edit(bot, 2, "Size L", update_id=900)  # Telegram retries the webhook

    def updated() -> bool:
        ok = [c for c in bot.slack.calls_to("chat.update") if c.status == 200]
        return any(c.params.get("ts") == follow_up["ts"] for c in ok)

    await bot.until(updated, timeout=10, what="the update after Slack recovered")
    assert "Size L" in bot.slack.message(INBOX, follow_up["ts"])["text"]
    notes = [r for r in bot.slack.replies(INBOX, root["ts"]) if "Before" in r["text"]]
    assert len(notes) == 1

    async def done() -> bool:
        return [a.state for a in await _rows(bot, CustomerAction)] == [ActionState.DONE]

    await bot.until(done, what="the one action done")
    assert len(await _rows(bot, CustomerMessage)) == 2


async def test_reactions_on_the_customers_message_and_on_a_team_reply(bot: Bot) -> None:
    root = await _conversation(bot, "Thanks for the help")
    _, reply_ts = await bot.thread_reply(INBOX, root["ts"], "You are welcome!")
    replies = await bot.until(
        lambda: _sent_replies(bot), what="the reply delivered with its network id"
    )
    relay = bot.services.relay

    await relay.receive(
        [
            _reaction("r1", f"{CHAT}:1", "👍🏽"),
            _reaction("r2", replies[0].external_id or "", "❤️"),
        ]
    )
    await bot.until(
        lambda: "thumbsup" in bot.slack.reactions(INBOX, root["ts"]), what="reaction on root"
    )
    await bot.until(
        lambda: "heart" in bot.slack.reactions(INBOX, reply_ts), what="reaction on the reply"
    )

    await relay.receive([_reaction("r3", f"{CHAT}:1", "", removed=True)])  # WhatsApp: no emoji
    await bot.until(
        lambda: "thumbsup" not in bot.slack.reactions(INBOX, root["ts"]), what="unreaction"
    )
    assert len(await _rows(bot, CustomerMessage)) == 1
    conversation = await bot.services.repo.conversation(1)
    assert conversation is not None and conversation.last_customer_at is not None
    turns = await bot.services.repo.turns(1)
    assert len(turns) == 1 and turns[0].answered_at is not None  # no new turn


async def _sent_replies(bot: Bot) -> list[TeamReply] | None:
    replies = [
        r for r in await _rows(bot, TeamReply) if r.state == ReplyState.SENT and r.external_id
    ]
    return replies or None


def _reaction(event_id: str, target: str, emoji: str, removed: bool = False) -> CustomerReaction:
    return CustomerReaction("telegram", str(CHAT), event_id, target, emoji, removed, _now())


async def test_a_removal_marks_the_slack_copy_and_the_team_keeps_the_text(bot: Bot) -> None:
    root = await _conversation(bot, "First", "Call me on 555-0100")
    follow_up = bot.slack.replies(INBOX, root["ts"])[0]
    removals = [
        CustomerRemoval("telegram", str(CHAT), f"del{n}", f"{CHAT}:{n}", _now()) for n in (1, 2)
    ]

    await bot.services.relay.receive(removals)

    await bot.until(lambda: _updates(bot, follow_up["ts"]), what="the follow-up marked")
    shown = bot.slack.message(INBOX, follow_up["ts"])["text"]
    assert "~Call me on 555-0100~" in shown and "deleted by the customer" in shown

    def root_deleted() -> bool:
        return "deleted by the customer" in json.dumps(bot.slack.message(INBOX, root["ts"]))

    await bot.until(root_deleted, what="the root marked")
    assert [m.mark for m in await _rows(bot, CustomerMessage)] == [Mark.DELETED, Mark.DELETED]
    assert [m.text for m in await _rows(bot, CustomerMessage)] == ["First", "Call me on 555-0100"]


async def test_notices_go_in_the_thread_only_when_the_conversation_exists(bot: Bot) -> None:
    await bot.services.relay.receive(
        [Notice("telegram", "424242", "n0", "The customer blocked the bot", _now())]
    )
    assert await _rows(bot, CustomerAction) == []
    root = await _conversation(bot, "Hi")
    assert len(bot.slack.roots(INBOX)) == 1

    await bot.services.relay.receive(
        [Notice("telegram", str(CHAT), "n1", "The customer changed their number", _now())]
    )

    notes = await bot.until(
        lambda: [r for r in bot.slack.replies(INBOX, root["ts"]) if "changed" in r["text"]],
        what="the notice in the thread",
    )
    assert notes[0]["text"].startswith(":information_source:")
    assert len(bot.slack.roots(INBOX)) == 1 and len(await _rows(bot, CustomerMessage)) == 1


async def test_an_action_whose_target_never_appears_is_given_up(bot: Bot) -> None:
    await _conversation(bot, "Hi")
    long_ago = _now() - timedelta(minutes=11)
    actions = ActionRepository(bot.services.db)
    await actions.store(
        [
            NewAction(
                "telegram",
                str(CHAT),
                "lost",
                ActionKind.REACTION,
                long_ago,
                long_ago,
                f"{CHAT}:999",
                {"emoji": "👍"},
            )
        ]
    )
    await bot.services.relay.receive([_reaction("wake", f"{CHAT}:1", "🔥")])

    async def dropped() -> bool:
        states = {a.event_id: a.state for a in await _rows(bot, CustomerAction)}
        return states == {"lost": ActionState.DROPPED, "wake": ActionState.DONE}

    await bot.until(dropped, what="the lost reaction given up")


async def test_replies_sent_outside_slack_count_and_automated_ones_do_not(bot: Bot) -> None:
    root = await _conversation(bot, "Is it in stock?")
    bot.services.relay.echo_hold = timedelta(0)

    def echo(message_id: str, text: str, automated: bool) -> InboundMessage:
        return InboundMessage(
            network="telegram",
            conversation_key=str(CHAT),
            message_id=message_id,
            author_id="page",
            author_name="Shop" if not automated else "Shop assistant app",
            text=text,
            sent_at=_now(),
            from_team=True,
            automated=automated,
        )

    await bot.services.relay.receive([echo("a1", "Your order #9 has shipped", True)])
    await bot.until(
        lambda: [r for r in bot.slack.replies(INBOX, root["ts"]) if "automated" in r["text"]],
        what="the automated message shown",
    )
    turns = await bot.services.repo.turns(1)
    assert turns[0].answered_at is None  # not a human reply: the SLA clock runs on

    await bot.services.relay.receive([echo("h1", "Yes, 3 left", False)])
    await bot.until(
        lambda: [r for r in bot.slack.replies(INBOX, root["ts"]) if "answered from" in r["text"]],
        what="the colleague's reply shown",
    )

    async def answered() -> bool:
        return (await bot.services.repo.turns(1))[0].answered_at is not None

    await bot.until(answered, what="the turn answered by the human reply")
    kinds = {r.external_id: r.kind for r in await _rows(bot, TeamReply)}
    assert kinds == {"a1": ReplyKind.AUTOMATED, "h1": ReplyKind.REPLY}
