"""Messenger and Instagram customers by name, and a conversation a colleague opened from
Meta's own inbox, through the whole bot against the fake Graph server."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from storage.models import Conversation, TeamReply, Turn
from tests.harness import INBOX, META_SECRET, Bot
from tests.refs import ref_json
from tests.signing import meta_headers

PAGE = "1691462197845448"


async def post_meta(bot: Bot, payload: dict[str, Any]) -> float:
    """Send a signed webhook; how long its 200 took."""
    body = json.dumps(payload).encode()
    started = time.monotonic()
    response = await bot.post_raw("/webhooks/meta", body, meta_headers(body, META_SECRET))
    assert response.status == 200, await response.text()
    return time.monotonic() - started


def customer_message(
    kind: str, customer: str, mid: str, text: str, page: str = PAGE
) -> dict[str, Any]:
    account = page if kind == "page" else "17841400000000001"
    now = int(time.time() * 1000)
    item = {
        "sender": {"id": customer},
        "recipient": {"id": account},
        "timestamp": now,
        "message": {"mid": mid, "text": text},
    }
    return {"object": kind, "entry": [{"id": account, "time": now, "messaging": [item]}]}


def header(root: dict[str, Any]) -> str:
    return str(root["blocks"][0]["text"]["text"])


async def test_messenger_and_instagram_roots_name_the_customer(bot: Bot) -> None:
    bot.graph.profiles["2400000000000011"] = {"first_name": "Ada", "last_name": "Lovelace"}
    bot.graph.profiles["8800000000000011"] = {"name": "Grace Hopper", "username": "grace.h"}
    await post_meta(bot, customer_message("page", "2400000000000011", "m_n1", "Hi"))
    messenger = await bot.root()
    await post_meta(bot, customer_message("instagram", "8800000000000011", "m_n2", "Hello"))
    instagram = await bot.root(index=1)

    assert "*Ada Lovelace*" in header(messenger) and "2400000000000011" not in header(messenger)
    assert "*Grace Hopper* (@grace.h)" in header(instagram)
    assert "Ada Lovelace" in messenger["text"]  # the notification text too


async def test_a_failing_lookup_neither_fails_nor_slows_the_webhook(bot: Bot) -> None:
    bot.graph.delay("/2400000000000012", 3.0)  # Graph hangs on this profile...
    took = await post_meta(bot, customer_message("page", "2400000000000012", "m_s1", "Hi"))
    assert took < 1.0  # ...the webhook does not wait for it
    await bot.graph.wait_for("/2400000000000012", timeout=5)
    # Graph refuses the next one (no consent): the root shows the id, the message arrives.
    await post_meta(bot, customer_message("page", "2400000000000013", "m_s2", "Still here"))
    roots = await bot.until(
        lambda: roots if len(roots := bot.slack.roots(INBOX)) == 2 else None,
        timeout=10,
        what="both roots",
    )
    by_customer = {r["text"].split(" · ")[1]: r for r in roots}
    assert "Still here" in json.dumps(by_customer["2400000000000013"]["blocks"])
    assert set(by_customer) == {"2400000000000012", "2400000000000013"}


async def test_a_colleagues_reply_from_the_page_inbox_opens_the_conversation(bot: Bot) -> None:
    bot.services.relay.echo_hold = timedelta(0)
    bot.graph.profiles["987654321432"] = {"first_name": "Linus", "last_name": "Customer"}
    echo = ref_json("conformance/meta/fb_echo_colleague_text.json")
    item = echo["entry"][0]["messaging"][0]
    item["timestamp"] = echo["entry"][0]["time"] = int(time.time() * 1000)
    await post_meta(bot, echo)

    root = await bot.root()
    assert "*Linus Customer*" in header(root)
    assert "No message from the customer yet" in json.dumps(root["blocks"])
    shown = await bot.until(
        lambda: [m for m in bot.slack.replies(INBOX, root["ts"]) if "Page inbox" in m["text"]],
        what="the colleague's reply in the thread",
    )
    assert "A colleague answering from the Page inbox." in shown[0]["text"]

    async def stored() -> tuple[Conversation, TeamReply] | None:
        async with bot.services.db.read() as session:
            conversation = (await session.execute(select(Conversation))).scalar_one()
            reply = (await session.execute(select(TeamReply))).scalar_one()
        return (conversation, reply) if reply.state == "sent" else None

    conversation, reply = await bot.until(stored, what="the reply counted as sent")
    assert conversation.external_key == "page:12345654332:987654321432"
    assert conversation.last_customer_at is None  # nothing waits for an answer
    assert (reply.source, reply.kind) == ("network", "reply")
    async with bot.services.db.read() as session:
        assert (await session.execute(select(Turn))).all() == []  # nothing waits: no SLA clock

    # The customer answers: the same thread, no second root.
    answer = customer_message("page", "987654321432", "m_back", "Thanks!", page="12345654332")
    await post_meta(bot, answer)
    await bot.until(
        lambda: [m for m in bot.slack.replies(INBOX, root["ts"]) if "Thanks!" in m["text"]],
        what="the customer's answer in the thread",
    )
    assert len(bot.slack.roots(INBOX)) == 1
