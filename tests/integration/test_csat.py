"""Customer satisfaction through the whole bot: resolving asks the customer in the
network's own interface, the network's native answer (Telegram callback_query,
Messenger / Instagram quick_reply, WhatsApp list_reply / button_reply, the generic
`csat_payload`, a digit in an X DM) is recorded once and shown in the thread, a
comment just after it is attached to it, and neither is a customer message."""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.networks.rating import read_payload
from storage.core import ConversationStatus
from storage.models import Conversation, CsatRating, CsatSurvey, CustomerMessage, TeamReply
from tests.harness import GENERIC_SECRET, INBOX, TELEGRAM_SECRET, Bot, start_bot
from tests.integration.test_meta_relay import post_meta
from tests.integration.test_x_whatsapp_relay import post_whatsapp, post_x
from tests.pg import fresh_postgres
from tests.refs import ref_json
from tests.reports.page import read_page
from tests.services import require_redis
from tests.signing import generic_headers, telegram_headers

ON = {
    "CSAT_ENABLED": "true",
    "CSAT_MESSAGE": "How did we do? 1 (poor) to 5 (great)",
    "API_TOKEN": "csat-token",
}
BEARER = {"Authorization": "Bearer csat-token"}


class Clock:
    """Real time plus an offset a test moves forward (the 24-hour rule)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture(params=["sqlite+memory", "postgres+redis"])
async def csat_bot(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bot]:
    if request.param == "sqlite+memory":
        running, stop = await start_bot(tmp_path, env=ON)
        try:
            yield running
        finally:
            await stop()
        return
    env = {**ON, "REDIS_URL": require_redis()}
    async with fresh_postgres() as database_url:
        running, stop = await start_bot(
            tmp_path,
            database_url=database_url,
            env=env,
            coordination_prefix=f"test-{uuid.uuid4().hex[:8]}:",
        )
        try:
            yield running
        finally:
            await stop()


@pytest.fixture
async def clocked(tmp_path: Path) -> AsyncIterator[tuple[Bot, Clock]]:
    clock = Clock()
    running, stop = await start_bot(tmp_path, env=ON, clock=clock)
    try:
        yield running, clock
    finally:
        await stop()


# -- helpers --------------------------------------------------------------------
async def rows(bot: Bot, model: Any) -> list[Any]:
    async with bot.services.db.read() as session:
        return list((await session.execute(select(model).order_by(model.id))).scalars())


async def conversation_of(bot: Bot, root: dict[str, Any]) -> Conversation:
    found = await bot.services.repo.conversation_by_thread(INBOX, root["ts"])
    assert found is not None and found.id is not None
    return found


async def resolve(bot: Bot, root: dict[str, Any]) -> int:
    conversation = await conversation_of(bot, root)
    assert conversation.id is not None
    response = await bot.click("relaydesk.resolve", str(conversation.id), message_ts=root["ts"])
    assert response.status == 200
    await in_status(bot, conversation.id, ConversationStatus.RESOLVED)
    return conversation.id


async def in_status(bot: Bot, conversation_id: int, status: ConversationStatus) -> None:
    """A click is acknowledged before it is carried out."""

    async def reached() -> bool:
        found = await bot.services.repo.conversation(conversation_id)
        return found is not None and found.status == status

    await bot.until(reached, what=f"#{conversation_id} {status}")


async def reopen(bot: Bot, root: dict[str, Any], conversation_id: int) -> None:
    response = await bot.click("relaydesk.reopen", str(conversation_id), message_ts=root["ts"])
    assert response.status == 200
    await in_status(bot, conversation_id, ConversationStatus.OPEN)


def thread(bot: Bot, root: dict[str, Any]) -> list[str]:
    return [str(m.get("text", "")) for m in bot.slack.thread(INBOX, root["ts"])[1:]]


async def shown(bot: Bot, root: dict[str, Any], words: str) -> list[str]:
    return await bot.until(
        lambda: [t for t in thread(bot, root) if words in t], what=f"{words!r} in the thread"
    )


async def still_resolved(bot: Bot, conversation_id: int) -> None:
    conversation = await bot.services.repo.conversation(conversation_id)
    assert conversation is not None and conversation.status == ConversationStatus.RESOLVED


def telegram_tap(bot: Bot, message: dict[str, Any], data: str) -> dict[str, Any]:
    """Telegram's CallbackQuery update (the documented one in refs), for a button on a
    message the bot sent into the chat."""
    update = copy.deepcopy(ref_json("conformance/telegram/tgdoc_callback_query.json"))
    query = update["callback_query"]
    del query["inline_message_id"]
    query["from"]["id"] = message["chat"]["id"]
    query.update(
        {
            "id": f"cb{bot.next_id('callback')}",
            "message": message,
            "chat_instance": "-7019237",
            "data": data,
        }
    )
    update["update_id"] = 50_000 + bot.next_id("update")
    return update


async def post_telegram(bot: Bot, update: dict[str, Any]) -> int:
    body = json.dumps(update).encode()
    headers = telegram_headers(TELEGRAM_SECRET)
    return (await bot.post_raw("/webhooks/telegram", body, headers)).status


def meta_quick_reply(
    kind: str, customer: str, account: str, mid: str, text: str, payload: str | None
) -> dict[str, Any]:
    """Messenger's quick-reply message event (refs), sent now; Instagram's has the same
    shape under `object: instagram`. `payload` None: a plain text message."""
    body = copy.deepcopy(ref_json("conformance/meta/fb_quick_reply.json"))
    body["object"] = kind
    entry = body["entry"][0]
    entry["id"] = account
    item = entry["messaging"][0]
    item["sender"]["id"], item["recipient"]["id"] = customer, account
    item["timestamp"] = int(time.time() * 1000)
    item["message"].update({"mid": mid, "text": text})
    if payload is None:
        del item["message"]["quick_reply"]
    else:
        item["message"]["quick_reply"]["payload"] = payload
    return body


def whatsapp_message(wa_id: str, wamid: str, **content: Any) -> dict[str, Any]:
    """WhatsApp's list_reply notification (refs), from `wa_id`, now, with `content`."""
    body = copy.deepcopy(ref_json("conformance/whatsapp/wa_list_reply.json"))
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = wa_id
    message = value["messages"][0]
    message.update({"from": wa_id, "id": wamid, "timestamp": str(int(time.time()))})
    for key in ("interactive", "context"):
        message.pop(key, None)
    message.update(content)
    return body


def whatsapp_choice(wa_id: str, wamid: str, kind: str, choice_id: str, title: str) -> dict:  # type: ignore[type-arg]
    return whatsapp_message(
        wa_id,
        wamid,
        type="interactive",
        context={"from": "1122334455667", "id": "wamid.question"},
        interactive={"type": kind, kind: {"id": choice_id, "title": title}},
    )


def x_dm(text: str, event_id: str) -> dict[str, Any]:
    payload = copy.deepcopy(ref_json("social/twitter_dm.json"))
    event = payload["direct_message_events"][0]
    event["id"] = event_id
    event["created_timestamp"] = str(int(time.time() * 1000))
    event["message_create"]["message_data"]["text"] = text
    return payload


async def no_customer_message_reads(bot: Bot, text: str) -> None:
    assert all(m.text != text for m in await rows(bot, CustomerMessage))


# -- Telegram -------------------------------------------------------------------
async def test_telegram_keyboard_tap_rates_once_and_a_comment_follows(csat_bot: Bot) -> None:
    bot = csat_bot
    assert (await bot.from_telegram(8301, "where is my parcel?")).status == 200
    root = await bot.root()
    conversation_id = await resolve(bot, root)

    question = (await bot.until(lambda: bot.telegram.messages(8301), what="the question"))[0]
    assert question["text"] == ON["CSAT_MESSAGE"]
    [buttons] = question["reply_markup"]["inline_keyboard"]
    assert [b["text"] for b in buttons] == ["1", "2", "3", "4", "5"]
    [survey] = await rows(bot, CsatSurvey)
    assert [read_payload(b["callback_data"]) for b in buttons] == [
        (survey.id, n) for n in range(1, 6)
    ]
    await shown(bot, root, "Rating question sent to the customer")

    # the customer taps 4, then taps 5 too: one rating, of 4
    assert await post_telegram(bot, telegram_tap(bot, question, buttons[3]["callback_data"])) == 200
    assert await post_telegram(bot, telegram_tap(bot, question, buttons[4]["callback_data"])) == 200
    note = await shown(bot, root, "Customer rating")
    assert "★★★★☆ 4/5" in note[0]
    await bot.until(lambda: len(bot.telegram.answered) == 2, what="both taps answered")
    assert {a["callback_query_id"] for a in bot.telegram.answered} == {"cb1", "cb2"}
    [rating] = await rows(bot, CsatRating)
    assert (rating.score, rating.network, rating.team) == (4, "telegram", None)

    # a comment just after it: attached, shown, and no customer message
    assert (await bot.from_telegram(8301, "Fast & friendly <3")).status == 200
    comment = await shown(bot, root, "Comment with the rating")
    assert "Fast &amp; friendly &lt;3" in comment[0]
    [rating] = await rows(bot, CsatRating)
    assert rating.comment == "Fast & friendly <3"
    await no_customer_message_reads(bot, "Fast & friendly <3")
    await still_resolved(bot, conversation_id)
    assert [t for t in thread(bot, root) if "Customer rating" in t] == note  # once

    # a later message is the customer's again: it reopens the conversation
    assert (await bot.from_telegram(8301, "one more question")).status == 200
    await shown(bot, root, "one more question")
    reopened = await bot.services.repo.conversation(conversation_id)
    assert reopened is not None and reopened.status == ConversationStatus.OPEN

    # the three stats surfaces and the reports page show it
    window = {"since": (datetime.now(UTC) - timedelta(hours=1)).isoformat()}
    api = await (await bot.client.get("/api/stats", params=window, headers=BEARER)).json()
    assert (api["csat_count"], api["csat_avg"]) == (1, 4.0)
    assert api["by_network"]["telegram"]["csat_count"] == 1
    assert api["by_team"]["unassigned"]["csat_avg"] == 4.0
    stats = json.dumps(json.loads(await (await bot.command("/social-stats", "today")).text()))
    assert "*Customer rating*\\n4.0 / 5 (1 rating)" in stats
    assert "rated 4.0 / 5 (1 rating)" in stats  # the telegram and unassigned lines
    page = read_page(await (await bot.client.get("/reports", params=window, headers=BEARER)).text())
    assert (page.figures["csat_count"], page.figures["csat_avg"]) == (1, 4.0)


async def test_off_by_default(bot: Bot) -> None:
    """Off by default: resolving asks nothing."""
    assert (await bot.from_telegram(8302, "hi")).status == 200
    root = await bot.root()
    await resolve(bot, root)
    await bot.until(lambda: "Resolved" in str(bot.slack.roots(INBOX)[0]), what="resolved root")
    assert bot.telegram.messages(8302) == [] and await rows(bot, CsatSurvey) == []


async def test_24_hour_rule_and_a_typed_digit(clocked: tuple[Bot, Clock]) -> None:
    bot, clock = clocked
    assert (await bot.from_telegram(8303, "hello")).status == 200
    root = await bot.root()
    conversation_id = await resolve(bot, root)
    await bot.until(lambda: bot.telegram.messages(8303), what="the first question")
    await reopen(bot, root, conversation_id)
    await resolve(bot, root)
    await shown(bot, root, "Rating question sent")
    assert len(await rows(bot, CsatSurvey)) == 1  # resolved twice within 24 hours: asked once

    clock.offset = timedelta(hours=25)
    await reopen(bot, root, conversation_id)
    await resolve(bot, root)
    await bot.until(lambda: len(bot.telegram.messages(8303)) == 2, what="the next day's question")
    await bot.until(  # recorded as sent: a digit answers it
        lambda: len([t for t in thread(bot, root) if "Rating question sent" in t]) == 2
    )
    # the customer types the digit instead of tapping: the latest question gets it
    assert (await bot.from_telegram(8303, " 2 ", message_id=9001, update_id=9001)).status == 200
    await shown(bot, root, "Customer rating")
    # Telegram delivers the update again: neither a second rating nor the comment
    assert (await bot.from_telegram(8303, " 2 ", message_id=9001, update_id=9001)).status == 200
    surveys = await rows(bot, CsatSurvey)
    [rating] = await rows(bot, CsatRating)
    assert rating.score == 2 and rating.survey_id == surveys[-1].id
    assert rating.comment is None and rating.event_id == "8303:9001"
    await no_customer_message_reads(bot, " 2 ")
    await still_resolved(bot, conversation_id)


# -- Messenger and Instagram --------------------------------------------------------
@pytest.mark.parametrize(("kind", "account"), [("page", "1234567890321"), ("instagram", "17841")])
async def test_quick_replies_on_messenger_and_instagram(
    bot_on: Bot, kind: str, account: str
) -> None:
    bot = bot_on
    customer = f"{kind}-cust-1"
    body = meta_quick_reply(kind, customer, account, f"{kind}.m1", "my order is late", None)
    assert await post_meta(bot, body) == 200
    root = await bot.root()
    conversation_id = await resolve(bot, root)
    sent = await bot.until(lambda: bot.graph.sent, what="the question")
    message = sent[0]["message"]
    assert message["text"] == ON["CSAT_MESSAGE"]
    choices = message["quick_replies"]
    assert [c["title"] for c in choices][0] == "1 ★ Poor" and len(choices) == 5
    five = choices[4]
    tap = meta_quick_reply(kind, customer, account, f"{kind}.m2", five["title"], five["payload"])
    assert await post_meta(bot, tap) == 200
    assert await post_meta(bot, tap) == 200  # delivered twice
    note = await shown(bot, root, "Customer rating")
    assert "5/5" in note[0]
    [rating] = await rows(bot, CsatRating)
    assert rating.score == 5 and rating.network == "meta"
    await no_customer_message_reads(bot, five["title"])
    await still_resolved(bot, conversation_id)
    # Meta echoes what the Page sent: our question's echo is nobody's reply
    echo = copy.deepcopy(tap)
    item = echo["entry"][0]["messaging"][0]
    item["sender"]["id"], item["recipient"]["id"] = account, customer
    item["message"] = {"mid": sent[0]["message_id"], "text": message["text"], "is_echo": True}
    assert await post_meta(bot, echo) == 200
    assert await rows(bot, TeamReply) == []


@pytest.fixture
async def bot_on(tmp_path: Path) -> AsyncIterator[Bot]:
    running, stop = await start_bot(tmp_path, env=ON)
    try:
        yield running
    finally:
        await stop()


async def test_a_closed_reply_window_gets_no_question(bot_on: Bot) -> None:
    """The captured quick reply is from 2016: Messenger's 24-hour window closed long ago."""
    bot = bot_on
    assert await post_meta(bot, ref_json("conformance/meta/fb_quick_reply.json")) == 200
    root = await bot.root()
    await resolve(bot, root)
    old = whatsapp_message("972500000001", "wamid.old", type="text", text={"body": "hi"})
    old["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = str(
        int(time.time()) - 25 * 3600
    )
    assert await post_whatsapp(bot, old) == 200
    await resolve(bot, await bot.root(index=1))
    # a third conversation, asked, shows the dispatcher has been through the others
    assert (await bot.from_telegram(8304, "hi")).status == 200
    await resolve(bot, await bot.root(index=2))
    await bot.until(lambda: bot.telegram.messages(8304), what="the open window's question")
    assert bot.graph.sent == []
    assert [s.network for s in await rows(bot, CsatSurvey)] == ["telegram"]


async def test_public_comments_and_x_mentions_get_no_question(bot_on: Bot) -> None:
    bot = bot_on
    assert await post_x(bot, ref_json("social/twitter_mention.json")["params"]) == 200
    await resolve(bot, await bot.root())
    assert await post_meta(bot, ref_json("conformance/meta/fb_customer_comment_video.json")) == 200
    await resolve(bot, await bot.root(index=1))
    assert (await bot.from_telegram(8305, "hi")).status == 200
    await resolve(bot, await bot.root(index=2))
    await bot.until(lambda: bot.telegram.messages(8305), what="the private question")
    assert bot.x.tweets == [] and bot.graph.sent == []
    assert [s.network for s in await rows(bot, CsatSurvey)] == ["telegram"]


# -- WhatsApp -----------------------------------------------------------------------
async def test_whatsapp_list_reply_and_button_reply(bot_on: Bot) -> None:
    bot = bot_on
    text = whatsapp_message("972500000002", "wamid.in1", type="text", text={"body": "hello"})
    assert await post_whatsapp(bot, text) == 200
    root = await bot.root()
    conversation_id = await resolve(bot, root)
    sent = await bot.until(lambda: bot.graph.sent, what="the question")
    assert sent[0]["type"] == "interactive"
    interactive = sent[0]["interactive"]
    assert interactive["type"] == "list"
    assert interactive["body"]["text"] == ON["CSAT_MESSAGE"]
    rows_sent = interactive["action"]["sections"][0]["rows"]
    assert [r["title"] for r in rows_sent][2] == "3 ★★★ Good"
    choice = rows_sent[2]
    tap = whatsapp_choice("972500000002", "wamid.in2", "list_reply", choice["id"], choice["title"])
    assert await post_whatsapp(bot, tap) == 200
    # a reply button carrying one of our ids counts the same; a second answer counts nothing
    again = whatsapp_choice("972500000002", "wamid.in3", "button_reply", rows_sent[0]["id"], "1")
    assert await post_whatsapp(bot, again) == 200
    note = await shown(bot, root, "Customer rating")
    assert "3/5" in note[0]
    [rating] = await rows(bot, CsatRating)
    assert rating.score == 3 and rating.event_id == "wamid.in2"
    await still_resolved(bot, conversation_id)
    # another app's list choice is still a customer message
    other = whatsapp_choice("972500000002", "wamid.in4", "list_reply", "callback_data", "title")
    assert await post_whatsapp(bot, other) == 200
    await shown(bot, root, "tapped: title")


# -- generic and X --------------------------------------------------------------------
async def test_generic_reply_carries_the_options_and_csat_payload_answers(bot_on: Bot) -> None:
    bot = bot_on
    assert (await bot.from_generic("g-csat", "g-m1", "hi there")).status == 200
    root = await bot.root()
    await resolve(bot, root)
    [call] = await bot.until(lambda: bot.sink.received("/replies"), what="the question")
    sent = json.loads(call.body)
    assert sent["text"] == ON["CSAT_MESSAGE"] and sent["message_id"].startswith("relaydesk-csat-")
    options = sent["csat"]["options"]
    assert [o["score"] for o in options] == [1, 2, 3, 4, 5]
    body = json.dumps(
        {
            "conversation_id": "g-csat",
            "message_id": "g-m2",
            "author": {"id": "cust-g-csat", "name": "Grace"},
            "text": options[0]["label"],
            "sent_at": datetime.now(UTC).isoformat(),
            "csat_payload": options[0]["payload"],
        }
    ).encode()
    response = await bot.post_raw("/webhooks/generic", body, generic_headers(body, GENERIC_SECRET))
    assert response.status == 200
    await shown(bot, root, "Customer rating")
    [rating] = await rows(bot, CsatRating)
    assert rating.score == 1


async def test_x_dm_question_in_words_answered_by_a_digit(bot_on: Bot) -> None:
    bot = bot_on
    assert await post_x(bot, x_dm("my refund?", "dm-1")) == 200
    root = await bot.root()
    await resolve(bot, root)
    [dm] = await bot.until(lambda: bot.x.dms, what="the question")
    assert "Reply with a number from 1 to 5." in json.dumps(dm)
    await shown(bot, root, "Rating question sent")  # recorded as sent: a digit answers it
    assert await post_x(bot, x_dm("5", "dm-2")) == 200
    note = await shown(bot, root, "Customer rating")
    assert "5/5" in note[0]
    await no_customer_message_reads(bot, "5")
