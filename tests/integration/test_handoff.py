"""Handoff to another team: buttons, the message shortcut and /handoff, end to end."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from storage.models import Handoff
from tests.harness import AGENT, INBOX, Bot, start_bot

SALES = "C0SALES01"
SUPPORT = "C0SUPPORT1"


def text_of(message: dict[str, Any]) -> str:
    return json.dumps(message.get("blocks", [])) + str(message.get("text", ""))


async def customer_thread(bot: Bot, chat: int = 7001) -> dict[str, Any]:
    await bot.from_telegram(chat, "I'd like a quote for 40 seats")
    return await bot.root()


async def test_button_handoff_moves_the_conversation_and_both_threads_still_reply(
    any_bot: Bot,
) -> None:
    bot = any_bot
    root = await customer_thread(bot)
    _, first_reply = await bot.thread_reply(INBOX, root["ts"], "Let me get sales for you")
    await bot.until(lambda: "white_check_mark" in bot.slack.reactions(INBOX, first_reply))

    response = await bot.click("relaydesk.handoff", "sales", message_ts=root["ts"])
    assert response.status == 200
    new_root = await bot.root(SALES)
    new_text = text_of(new_root)
    assert "Handed off to *Sales* by <@U0AGENT01>" in new_text
    assert "earlier thread" in new_text and "I'd like a quote for 40 seats" in new_text
    assert "Let me get sales for you" in new_text  # the digest
    await bot.until(
        lambda: "Handed off to *Sales*" in text_of(bot.slack.message(INBOX, root["ts"])),
        what="old root updated",
    )
    assert "continue in the new thread" in text_of(bot.slack.message(INBOX, root["ts"]))

    conversation = await bot.services.repo.conversation(1)
    assert conversation is not None and conversation.team == "sales"
    assert (conversation.channel, conversation.thread_ts) == (SALES, new_root["ts"])

    await bot.from_telegram(7001, "Any discount for nonprofits?")
    await bot.until(lambda: bot.slack.replies(SALES, new_root["ts"]), what="follow-up in sales")
    assert len(bot.slack.replies(INBOX, root["ts"])) == 1  # only our first reply

    _, from_sales = await bot.thread_reply(SALES, new_root["ts"], "Yes, 20% off", user="U0SALES01")
    _, from_inbox = await bot.thread_reply(INBOX, root["ts"], "Sales will follow up")
    await bot.until(lambda: "white_check_mark" in bot.slack.reactions(SALES, from_sales))
    await bot.until(lambda: "white_check_mark" in bot.slack.reactions(INBOX, from_inbox))
    assert [m["text"] for m in bot.telegram.messages(7001)] == [
        "Let me get sales for you",
        "Yes, 20% off",
        "Sales will follow up",
    ]

    async with bot.services.db.session() as session:
        rows = (await session.execute(select(Handoff))).scalars().all()
    assert [(h.from_team, h.to_team, h.by_user, h.new_channel) for h in rows] == [
        (None, "sales", AGENT, SALES)
    ]


async def test_double_click_makes_one_handoff_and_tells_the_second(any_bot: Bot) -> None:
    bot = any_bot
    root = await customer_thread(bot)
    responses = await asyncio.gather(
        bot.click("relaydesk.handoff", "sales", message_ts=root["ts"]),
        bot.click("relaydesk.handoff", "sales", message_ts=root["ts"], user="U0OTHER01"),
    )
    assert [r.status for r in responses] == [200, 200]
    await bot.root(SALES)
    told = await bot.until(
        lambda: [
            t
            for t in bot.ephemerals_for(AGENT) + bot.ephemerals_for("U0OTHER01")
            if "already with Sales" in t or "right now" in t
        ],
        what="the second clicker is told",
    )
    assert len(told) == 1
    await asyncio.sleep(0.3)
    assert len(bot.slack.roots(SALES)) == 1


async def test_handoff_command_explains_every_mistake(tmp_path: Path) -> None:
    bot, stop = await start_bot(tmp_path, env={"TEAMS": "support,sales,billing"})
    try:
        root = await customer_thread(bot)
        assert "Usage: `/handoff <team>" in await bot.command_text("/handoff")
        assert "Usage" in await bot.command_text("/handoff sales")
        assert "no team called 'legal'" in await bot.command_text("/handoff legal #1")
        assert "no conversation #99" in await bot.command_text("/handoff sales #99")
        assert "SLACK_TEAM_CHANNEL_BILLING" in await bot.command_text("/handoff billing #1")
        assert "is not a conversation" in await bot.command_text("/handoff sales hello")
        stray = bot.slack.add_message(INBOX, "lunch?", user=AGENT)
        link = f"https://example.slack.com/archives/{INBOX}/p{stray['ts'].replace('.', '')}"
        assert "not part of a Relaydesk conversation" in await bot.command_text(
            "/handoff sales " + link
        )
        root_link = f"https://example.slack.com/archives/{INBOX}/p{root['ts'].replace('.', '')}"
        answer = await bot.command_text(f"/handoff Sales {root_link} wants 40 seats")
        assert answer == "#1 is handed off to Sales."
        new_root = await bot.root(SALES)
        assert "wants 40 seats" in text_of(new_root)
        assert "already with Sales" in await bot.command_text("/handoff sales #1")
    finally:
        await stop()


async def test_shortcut_opens_a_modal_and_its_submission_hands_off(bot: Bot) -> None:
    root = await customer_thread(bot)
    _, reply_ts = await bot.thread_reply(INBOX, root["ts"], "note: big account")
    response = await bot.interact(
        {
            "type": "message_action",
            "callback_id": "relaydesk.handoff",
            "trigger_id": "13345.1",
            "user": {"id": AGENT},
            "team": {"id": "T0001"},
            "channel": {"id": INBOX},
            "message_ts": reply_ts,
            "response_url": "https://hooks.slack.com/app/x",
            "message": {
                "type": "message",
                "ts": reply_ts,
                "thread_ts": root["ts"],
                "user": AGENT,
                "text": "note: big account",
            },
        }
    )
    assert response.status == 200
    opened = await bot.slack.wait_for("views.open")
    view = opened[0].params["view"]
    assert view["callback_id"] == "relaydesk.handoff_modal"
    options = view["blocks"][0]["element"]["options"]
    assert [o["value"] for o in options] == ["support", "sales"]
    submission = {
        "type": "view_submission",
        "user": {"id": AGENT},
        "team": {"id": "T0001"},
        "view": {
            "id": "V1",
            "type": "modal",
            "callback_id": "relaydesk.handoff_modal",
            "private_metadata": view["private_metadata"],
            "state": {
                "values": {
                    "team": {
                        "team": {"type": "static_select", "selected_option": {"value": "sales"}}
                    },
                    "note": {"note": {"type": "plain_text_input", "value": "VIP"}},
                }
            },
        },
    }
    response = await bot.interact(submission)
    assert response.status == 200
    new_root = await bot.root(SALES)
    assert "VIP" in text_of(new_root)
    # The same team again: the modal shows why, on the team field.
    response = await bot.interact(submission)
    answer = json.loads(await response.text())
    assert answer["response_action"] == "errors"
    assert "already with Sales" in answer["errors"]["team"]


async def test_shortcut_on_a_stray_message_says_so(bot: Bot) -> None:
    stray = bot.slack.add_message(INBOX, "lunch?", user=AGENT)
    await bot.interact(
        {
            "type": "message_action",
            "callback_id": "relaydesk.handoff",
            "trigger_id": "1.2",
            "user": {"id": AGENT},
            "team": {"id": "T0001"},
            "channel": {"id": INBOX},
            "message_ts": stray["ts"],
            "message": {"type": "message", "ts": stray["ts"]},
        }
    )
    await bot.until(lambda: [t for t in bot.ephemerals_for() if "not part of a Relaydesk" in t])
    assert not bot.slack.calls_to("views.open")


async def test_support_to_sales_and_back_keeps_history(bot: Bot) -> None:
    root = await customer_thread(bot)
    assert "handed off to Sales" in await bot.command_text("/handoff sales #1")
    sales_root = await bot.root(SALES)
    await bot.until(
        lambda: "Handed off to *Sales*" in text_of(bot.slack.message(INBOX, root["ts"])),
        what="first handoff complete",
    )
    assert "handed off to Support" in await bot.command_text(
        "/handoff support #1 back to you", user="U0SALES01"
    )
    support_root = await bot.root(SUPPORT)
    assert "earlier thread" in text_of(support_root)
    await bot.until(
        lambda: "Handed off to *Support*" in text_of(bot.slack.message(SALES, sales_root["ts"])),
        what="sales root updated",
    )
    handoffs = await bot.services.repo.conversation(1)
    assert handoffs is not None and handoffs.team == "support"
    for channel, ts in (
        (INBOX, root["ts"]),
        (SALES, sales_root["ts"]),
        (SUPPORT, support_root["ts"]),
    ):
        _, reply = await bot.thread_reply(channel, ts, f"hello from {channel}")

        def delivered(c: str = channel, r: str = reply) -> bool:
            return "white_check_mark" in bot.slack.reactions(c, r)

        await bot.until(delivered)
    assert len(bot.telegram.messages(7001)) == 3


async def test_allowed_users_refuses_others(tmp_path: Path) -> None:
    bot, stop = await start_bot(tmp_path, env={"ALLOWED_USERS": "U0BOSS001"})
    try:
        root = await customer_thread(bot)
        assert "ALLOWED_USERS" in await bot.command_text("/handoff sales #1")
        await bot.click("relaydesk.claim", "1", message_ts=root["ts"])
        await bot.until(lambda: [t for t in bot.ephemerals_for() if "ALLOWED_USERS" in t])
        _, reply = await bot.thread_reply(INBOX, root["ts"], "I am not allowed")
        await bot.until(lambda: "no_entry_sign" in bot.slack.reactions(INBOX, reply))
        _, again = await bot.thread_reply(INBOX, root["ts"], "still not")
        await bot.until(lambda: "no_entry_sign" in bot.slack.reactions(INBOX, again))
        explained = [t for t in bot.ephemerals_for() if "was not sent to the customer" in t]
        assert len(explained) == 1  # explained once
        _, boss = await bot.thread_reply(INBOX, root["ts"], "Hello!", user="U0BOSS001")
        await bot.until(lambda: "white_check_mark" in bot.slack.reactions(INBOX, boss))
        assert [m["text"] for m in bot.telegram.messages(7001)] == ["Hello!"]
        conversation = await bot.services.repo.conversation(1)
        assert conversation is not None and conversation.team is None
        assert conversation.owner == "U0BOSS001"
    finally:
        await stop()
