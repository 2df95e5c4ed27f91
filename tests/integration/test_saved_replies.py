"""Saved replies end to end: `/replies`, the root's button and the message shortcut, the
modal's search (block_suggestion) and its submission, through the real app with the
fake Slack and the fake networks, every request signed as Slack signs it."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse

from storage.core import ReplyState
from storage.models import TeamReply
from tests.harness import AGENT, INBOX, Bot, start_bot
from tests.integration.test_meta_relay import post_meta
from tests.refs import ref_json

MAYA = "U0MAYA0001"
PICK = "relaydesk.saved_reply_pick"
MODAL = "relaydesk.saved_reply_modal"


async def customer_thread(bot: Bot, chat: int = 7001) -> dict[str, Any]:
    await bot.from_telegram(chat, "Hi, where is my order?", first_name="Ana")
    return await bot.root()


async def opened_view(bot: Bot, count: int = 1) -> dict[str, Any]:
    opened = await bot.until(
        lambda: bot.slack.calls_to("views.open")[count - 1 :], what="the modal opened"
    )
    view: dict[str, Any] = opened[0].params["view"]
    return view


async def search(bot: Bot, view: dict[str, Any], typed: str, user: str = MAYA) -> list[Any]:
    """What Slack sends as the person types in the external select, and our answer."""
    response = await bot.interact(
        {
            "type": "block_suggestion",
            "user": {"id": user, "username": "maya", "team_id": "T0001"},
            "container": {"type": "view", "view_id": "V00000001"},
            "api_app_id": "A0001",
            "token": "verification-token",
            "action_id": PICK,
            "block_id": "saved",
            "value": typed,
            "team": {"id": "T0001", "domain": "example"},
            "view": {
                "id": "V00000001",
                "type": "modal",
                "callback_id": MODAL,
                "private_metadata": view["private_metadata"],
                "state": {"values": {}},
            },
        }
    )
    assert response.status == 200
    options: list[Any] = json.loads(await response.text())["options"]
    return options


async def submit(bot: Bot, view: dict[str, Any], saved_id: str, user: str = MAYA) -> ClientResponse:
    return await bot.interact(
        {
            "type": "view_submission",
            "user": {"id": user},
            "team": {"id": "T0001"},
            "api_app_id": "A0001",
            "view": {
                "id": "V00000001",
                "type": "modal",
                "callback_id": MODAL,
                "private_metadata": view["private_metadata"],
                "state": {
                    "values": {
                        "saved": {
                            PICK: {
                                "type": "external_select",
                                "selected_option": {
                                    "text": {"type": "plain_text", "text": "greeting"},
                                    "value": saved_id,
                                },
                            }
                        }
                    }
                },
            },
        }
    )


def shortcut(message_ts: str, thread_ts: str | None, user: str = MAYA) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "message", "ts": message_ts, "text": "x"}
    if thread_ts:
        message["thread_ts"] = thread_ts
    return {
        "type": "message_action",
        "callback_id": "relaydesk.saved_reply",
        "trigger_id": "13345.7",
        "user": {"id": user},
        "team": {"id": "T0001"},
        "api_app_id": "A0001",
        "channel": {"id": INBOX},
        "message_ts": message_ts,
        "response_url": "https://hooks.slack.com/app/x",
        "message": message,
    }


async def test_replies_command_manages_them_and_explains_mistakes(bot: Bot) -> None:
    text = bot.command_text
    assert "Usage: `/replies list" in await text("/replies")
    assert "No saved replies yet" in await text("/replies list")
    assert "Added saved reply `greeting`" in await text(
        "/replies add Greeting Hello {customer_name}, this is {agent_name}."
    )
    assert "exists already" in await text("/replies add greeting Hi")
    assert "Added saved reply `greeting` (telegram)" in await text(
        "/replies add greeting network=telegram Hi {customer_name} 👋"
    )
    assert "not a network" in await text("/replies add greeting network=fax Hi")
    assert "Unknown placeholder {order_id}" in await text("/replies add late Order {order_id}")
    assert "not a usable name" in await text("/replies add h*llo Hi")
    assert "needs the text" in await text("/replies add refund")
    assert "at most 3,000" in await text("/replies add long " + "x" * 3001)
    assert "`delete` is not a `/replies` action" in await text("/replies delete greeting")
    assert "Changed saved reply `greeting`" in await text("/replies edit greeting Hello again")
    assert "There is no saved reply `nope`" in await text("/replies edit nope Hi")
    listing = await text("/replies list")
    assert "`greeting`: Hello again" in listing and "`greeting` _(telegram)_" in listing
    assert "(2)" in listing
    assert "(1)" in await text("/replies list whatsapp")  # the all-networks text only
    assert "Removed saved reply `greeting` (telegram)" in await text(
        "/replies remove greeting network=telegram"
    )
    assert "There is no saved reply `greeting` (telegram)" in await text(
        "/replies remove greeting network=telegram"
    )
    assert "takes a name and an optional network only" in await text("/replies remove greeting now")


async def test_only_allowed_users_change_them_but_anyone_lists(tmp_path: Path) -> None:
    bot, stop = await start_bot(tmp_path, env={"ALLOWED_USERS": "U0BOSS001"})
    try:
        refused = await bot.command_text("/replies add greeting Hello")
        assert "ALLOWED_USERS may change saved replies" in refused
        assert "Added" in await bot.command_text("/replies add greeting Hello", user="U0BOSS001")
        assert "`greeting`: Hello" in await bot.command_text("/replies list")
        assert "ALLOWED_USERS" in await bot.command_text("/replies remove greeting")
    finally:
        await stop()


async def test_button_search_and_submission_send_it_as_the_clickers_reply(tmp_path: Path) -> None:
    bot, stop = await start_bot(tmp_path, env={"API_TOKEN": "secret-token"})
    try:
        bot.slack.add_user(MAYA, "Maya Lopez", "Maya")
        await bot.command_text(
            "/replies add greeting Hello {customer_name}, {agent_name} here about "
            "{conversation}. We are *on it*."
        )
        await bot.command_text("/replies add greeting network=whatsapp WhatsApp hello")
        await bot.command_text("/replies add refund Refunds take 5 days &amp; no fee")
        root = await customer_thread(bot)
        buttons = json.dumps(root["blocks"])
        assert '"action_id": "relaydesk.saved_reply"' in buttons

        response = await bot.click("relaydesk.saved_reply", "1", message_ts=root["ts"], user=MAYA)
        assert response.status == 200
        view = await opened_view(bot)
        assert view["callback_id"] == MODAL
        assert view["blocks"][0]["element"]["type"] == "external_select"
        assert view["blocks"][0]["element"]["action_id"] == PICK

        everything = await search(bot, view, "")
        assert [o["text"]["text"] for o in everything] == [
            "greeting: Hello {customer_name}, {agent_name} here about {conversation}. W…",
            "refund: Refunds take 5 days & no fee",
        ]  # the Telegram conversation never sees the WhatsApp variant
        assert all(len(o["text"]["text"]) <= 75 for o in everything)
        found = await search(bot, view, "refunds FEE")
        assert [o["text"]["text"][:6] for o in found] == ["refund"]
        assert await search(bot, view, "nothing like this") == []

        response = await submit(bot, view, everything[0]["value"])
        assert response.status == 200 and not (await response.text()).strip()
        sent = await bot.until(lambda: bot.telegram.messages(7001), what="the customer's copy")
        assert sent[0]["text"] == "Hello Ana, Maya here about #1. We are on it."
        (call,) = await bot.telegram.wait_for("sendMessage")
        assert call.params["entities"] == [{"type": "bold", "offset": 38, "length": 5}]

        posted = [m for m in bot.slack.replies(INBOX, root["ts"]) if m.get("username")]
        assert len(posted) == 1
        assert posted[0]["username"] == "Maya"  # shown under her name and face
        assert posted[0]["icon_url"] == f"https://avatars.example/{MAYA}_72.png"
        assert posted[0]["text"] == "Hello Ana, Maya here about #1. We are *on it*."
        await bot.until(lambda: "white_check_mark" in bot.slack.reactions(INBOX, posted[0]["ts"]))
        told = await bot.until(
            lambda: [t for t in bot.ephemerals_for(MAYA) if "Sent saved reply" in t]
        )
        assert "*greeting*" in told[0]

        # Stored and counted as Maya's reply: the turn is answered by it, at its Slack ts.
        [reply] = await bot.services.repo.replies(1)
        assert (reply.user_id, reply.state, reply.slack_ts) == (
            MAYA,
            ReplyState.SENT,
            posted[0]["ts"],
        )
        conversation = await bot.services.repo.conversation(1)
        assert conversation is not None
        assert (conversation.last_replier, conversation.owner) == (MAYA, MAYA)
        [turn] = await bot.services.repo.turns(1)
        assert turn.reply_id == reply.id
        since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        stats = await bot.client.get(
            "/api/stats",
            params={"since": since},
            headers={"Authorization": "Bearer secret-token"},
        )
        figures = await stats.json()
        assert (figures["turns"], figures["answered_turns"], figures["unanswered"]) == (1, 1, 0)
    finally:
        await stop()


async def test_shortcut_in_the_thread_and_a_per_network_variant(bot: Bot) -> None:
    await bot.command_text("/replies add greeting Hello {customer_name}")
    await bot.command_text("/replies add greeting network=telegram Привет, {customer_name}!")
    root = await customer_thread(bot)
    _, note_ts = await bot.thread_reply(INBOX, root["ts"], "note: VIP customer")
    response = await bot.interact(shortcut(note_ts, root["ts"]))
    assert response.status == 200
    view = await opened_view(bot)
    [option] = await search(bot, view, "greet")
    assert option["text"]["text"] == "greeting: Привет, {customer_name}!"
    await submit(bot, view, option["value"])
    sent = await bot.until(lambda: bot.telegram.messages(7001))
    assert sent[0]["text"] == "Привет, Ana!"
    [reply] = [r for r in await bot.services.repo.replies(1) if r.kind == "reply"]
    assert reply.user_id == MAYA and reply.slack_thread_ts == root["ts"]


async def test_long_saved_reply_is_split_for_messenger(bot: Bot) -> None:
    """Messenger takes 2,000 characters a message: the outbound rules split it."""
    paragraph = "Our refund policy, in full. " * 40  # 1,120 characters
    await bot.command_text(f"/replies add policy {paragraph}\n\n{paragraph}")
    assert await post_meta(bot, ref_json("social/messenger_message.json")) == 200
    root = await bot.root()
    await bot.interact(shortcut(root["ts"], None))
    view = await opened_view(bot)
    [option] = await search(bot, view, "")
    await submit(bot, view, option["value"])
    await bot.until(lambda: len(bot.graph.sent) >= 2, what="two Send API calls")
    texts = [s["message"]["text"] for s in bot.graph.sent]
    assert len(texts) == 2 and all(len(t) <= 2000 for t in texts)
    assert "".join(texts).replace("\n", "").replace(" ", "") == (
        (paragraph + paragraph).replace(" ", "")
    )


async def test_a_failed_send_is_retried_like_any_reply(bot: Bot) -> None:
    """Telegram answers 429 with retry_after once: the thread is told, then it is
    delivered once, still as the sender's reply."""
    await bot.command_text("/replies add thanks Thanks, {customer_name}!")
    root = await customer_thread(bot)
    bot.telegram.fail("sendMessage", 429, count=1, retry_after=1)
    await bot.click("relaydesk.saved_reply", "1", message_ts=root["ts"], user=MAYA)
    view = await opened_view(bot)
    [option] = await search(bot, view, "")
    await submit(bot, view, option["value"])
    [posted] = await bot.until(
        lambda: [m for m in bot.slack.replies(INBOX, root["ts"]) if m.get("username")]
    )
    await bot.until(lambda: "warning" in bot.slack.reactions(INBOX, posted["ts"]))
    await bot.until(
        lambda: "white_check_mark" in bot.slack.reactions(INBOX, posted["ts"]),
        timeout=6,
        what="delivered after the retry",
    )
    assert [m["text"] for m in bot.telegram.messages(7001)] == ["Thanks, Ana!"]
    assert len(bot.telegram.calls_to("sendMessage")) == 2
    [reply] = await bot.services.repo.replies(1)
    assert (reply.user_id, reply.state, reply.attempts) == (MAYA, ReplyState.SENT, 1)


async def send_held(bot: Bot) -> tuple[dict[str, Any], dict[str, Any], str]:
    """A saved reply sent while UNDO_SECONDS holds it: the root, the thread post and the
    reply id its sender's Cancel button carries."""
    await bot.command_text("/replies add thanks Thanks, {customer_name}!")
    root = await customer_thread(bot)
    await bot.click("relaydesk.saved_reply", "1", message_ts=root["ts"], user=MAYA)
    view = await opened_view(bot)
    [option] = await search(bot, view, "")
    await submit(bot, view, option["value"])
    [posted] = await bot.until(
        lambda: [m for m in bot.slack.replies(INBOX, root["ts"]) if m.get("username")]
    )
    [note] = await bot.until(
        lambda: [e for e in bot.slack.ephemerals() if e.get("user") == MAYA and e.get("blocks")]
    )
    assert "Cancel it before then" in note["text"] and note["thread_ts"] == root["ts"]
    button = note["blocks"][1]["elements"][0]
    assert button["action_id"] == "relaydesk.saved_reply_cancel"
    return root, posted, button["value"]


async def cancel(bot: Bot, reply_id: str, user: str = MAYA) -> str:
    before = len(bot.ephemerals_for(user))
    await bot.click("relaydesk.saved_reply_cancel", reply_id, user=user, message_ts="9.9")
    told = await bot.until(lambda: bot.ephemerals_for(user)[before:], what="the answer")
    return told[0]


async def test_undo_window_holds_it_like_any_reply(tmp_path: Path) -> None:
    bot, stop = await start_bot(tmp_path, env={"UNDO_SECONDS": "1"})
    try:
        _, posted, reply_id = await send_held(bot)
        await bot.until(lambda: "hourglass" in bot.slack.reactions(INBOX, posted["ts"]))
        assert not bot.telegram.messages(7001)  # held for the undo window

        async def delivered() -> list[TeamReply]:
            return [r for r in await bot.services.repo.replies(1) if r.delivered_at]

        [reply] = await bot.until(delivered, what="sent after the undo window")
        assert reply.delivered_at is not None
        assert reply.delivered_at - reply.sent_at >= timedelta(seconds=1)
        assert [m["text"] for m in bot.telegram.messages(7001)] == ["Thanks, Ana!"]
        assert "Too late to cancel" in await cancel(bot, reply_id)
    finally:
        await stop()


async def test_its_sender_can_cancel_it_during_the_undo_window(tmp_path: Path) -> None:
    bot, stop = await start_bot(tmp_path, env={"UNDO_SECONDS": "2"})
    try:
        root, posted, reply_id = await send_held(bot)
        assert "Only <@U0MAYA0001>, who sent it" in await cancel(bot, reply_id, user=AGENT)
        assert "Cancelled: the customer does not get it" in await cancel(bot, reply_id)
        assert await bot.services.repo.replies(1) == []
        assert posted["ts"] not in [m["ts"] for m in bot.slack.replies(INBOX, root["ts"])]
        assert "cancelled already" in await cancel(bot, reply_id)
        await asyncio.sleep(2.5)  # past the undo window: nothing may reach the customer
        assert not bot.telegram.messages(7001)
    finally:
        await stop()


async def test_refusals_show_on_the_form_or_to_the_person(tmp_path: Path) -> None:
    bot, stop = await start_bot(tmp_path, env={"ALLOWED_USERS": f"U0BOSS001,{MAYA}"})
    try:
        # No saved replies yet: the button says how to add one instead of an empty modal.
        root = await customer_thread(bot)
        await bot.click("relaydesk.saved_reply", "1", message_ts=root["ts"], user=MAYA)
        await bot.until(lambda: [t for t in bot.ephemerals_for(MAYA) if "/replies add" in t])
        assert not bot.slack.calls_to("views.open")

        await bot.command_text("/replies add greeting Hello", user="U0BOSS001")
        await bot.click("relaydesk.saved_reply", "1", message_ts=root["ts"], user=AGENT)
        view = await opened_view(bot)
        [option] = await search(bot, view, "")
        refused = json.loads(await (await submit(bot, view, option["value"], user=AGENT)).text())
        assert refused["response_action"] == "errors"
        assert "ALLOWED_USERS" in refused["errors"]["saved"]

        await bot.command_text("/replies remove greeting", user="U0BOSS001")
        gone = json.loads(await (await submit(bot, view, option["value"])).text())
        assert "removed or changed meanwhile" in gone["errors"]["saved"]
        forged = dict(view, private_metadata='{"conversation": "x"}')
        assert "not ours" in (await (await submit(bot, forged, "1")).text())
        assert not bot.telegram.messages(7001)
        assert await bot.services.repo.replies(1) == []

        # A button whose value names another conversation than its root's.
        await bot.click("relaydesk.saved_reply", "99", message_ts=root["ts"], user=MAYA)
        await bot.until(lambda: [t for t in bot.ephemerals_for(MAYA) if "no longer exists" in t])
    finally:
        await stop()
