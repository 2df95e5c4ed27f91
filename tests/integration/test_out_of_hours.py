"""Business hours in Slack and towards the customer: the out-of-hours auto-reply (once
per conversation per closed period, not a human reply), the closed desk on roots and in
`/oncall`, and the tone guidance on roots. Through the real app, on a clock that runs
from a Saturday noon (the desk opens Monday 09:00 UTC)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.networks.registry import BY_NAME
from storage.core import ReplyState
from storage.models import OutOfHoursReply, TeamReply, Turn
from storage.out_of_hours import OutOfHoursReplies
from tests.harness import INBOX, Bot, start_bot
from tests.integration.test_x_whatsapp_relay import post_x
from tests.pg import fresh_postgres
from tests.refs import ref_json
from tests.services import require_redis

SATURDAY_NOON = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)
MONDAY_OPENING = datetime(2026, 3, 9, 9, 0, tzinfo=UTC)
MESSAGE = "Thanks for writing! We are back on Monday at 9:00."
CLOSED = {
    "BUSINESS_HOURS": "mon-fri 09:00-18:00",
    "TIMEZONE": "UTC",
    "OUT_OF_HOURS_MESSAGE": MESSAGE,
    "TONE_TELEGRAM": "Friendly and brief; emoji welcome",
    "ONCALL_USERS": "U0ONCALL01",
}


def running_from(start: datetime) -> Callable[[], datetime]:
    """A clock that starts at `start` and runs at real speed (retries come due)."""
    began = datetime.now(UTC)
    return lambda: start + (datetime.now(UTC) - began)


@pytest.fixture(params=["sqlite+memory", "postgres+redis"])
async def closed_bot(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bot]:
    clock = running_from(SATURDAY_NOON)
    if request.param == "sqlite+memory":
        running, stop = await start_bot(tmp_path, env=CLOSED, clock=clock)
        try:
            yield running
        finally:
            await stop()
        return
    env = {**CLOSED, "REDIS_URL": require_redis()}
    async with fresh_postgres() as database_url:
        running, stop = await start_bot(
            tmp_path,
            database_url=database_url,
            env=env,
            coordination_prefix=f"test-{uuid.uuid4().hex[:8]}:",
            clock=clock,
        )
        try:
            yield running
        finally:
            await stop()


def texts(bot: Bot, chat_id: int) -> list[str]:
    return [str(m["text"]) for m in bot.telegram.messages(chat_id)]


def bot_posts(bot: Bot, root_ts: str) -> list[str]:
    return [str(m.get("text", "")) for m in bot.slack.thread(INBOX, root_ts)[1:]]


def root_text(root: dict[str, Any]) -> str:
    return str(root.get("blocks"))


async def rows(bot: Bot, model: Any) -> list[Any]:
    async with bot.services.db.read() as session:
        return list((await session.execute(select(model))).scalars())


async def test_auto_reply_once_per_closed_period_and_not_a_human_reply(closed_bot: Bot) -> None:
    bot = closed_bot
    assert (await bot.from_telegram(8101, "is anyone there?")).status == 200
    root = await bot.root()
    await bot.until(lambda: texts(bot, 8101), what="the auto-reply")
    assert (await bot.from_telegram(8101, "hello??")).status == 200
    await bot.until(lambda: len(bot_posts(bot, root["ts"])) >= 2, what="the second message")
    note = await bot.until(
        lambda: [t for t in bot_posts(bot, root["ts"]) if "Out-of-hours auto-reply sent" in t]
    )
    assert MESSAGE in note[0]
    assert texts(bot, 8101) == [MESSAGE]  # once, though the customer wrote twice

    [claimed] = await rows(bot, OutOfHoursReply)
    assert claimed.state == ReplyState.SENT and claimed.opens_at == MONDAY_OPENING
    assert await rows(bot, TeamReply) == []  # no reply row: the turn is still waiting
    [turn] = await rows(bot, Turn)
    assert turn.answered_at is None
    again = await OutOfHoursReplies(bot.services.db).claim(
        claimed.conversation_id, "telegram", MONDAY_OPENING, SATURDAY_NOON
    )
    assert again is None  # a second process claiming the same closed period gets nothing


async def test_root_says_when_the_desk_opens_and_shows_the_tone(closed_bot: Bot) -> None:
    bot = closed_bot
    assert (await bot.from_telegram(8102, "weekend question")).status == 200
    shown = root_text(await bot.root())
    opens = int(MONDAY_OPENING.timestamp())
    assert f":crescent_moon: Desk closed · opens <!date^{opens}^" in shown
    assert "Tone: Friendly and brief; emoji welcome" in shown
    # the generic network has no TONE_GENERIC: no tone line on its roots
    assert (await bot.from_generic("g-1", "m-1", "hi")).status == 200
    generic = await bot.until(lambda: bot.slack.roots(INBOX)[1:], what="the generic root")
    assert "Tone:" not in root_text(generic[0])


async def test_oncall_says_when_the_closed_desk_opens(closed_bot: Bot) -> None:
    answer = await closed_bot.command_text("/oncall")
    opens = int(MONDAY_OPENING.timestamp())
    assert f"The desk is closed; it opens <!date^{opens}^" in answer


async def test_a_temporary_failure_is_retried_and_a_permanent_one_is_noted(
    closed_bot: Bot,
) -> None:
    bot = closed_bot
    bot.telegram.fail("sendMessage", 500, count=1)
    assert (await bot.from_telegram(8103, "retry me")).status == 200
    await bot.until(lambda: texts(bot, 8103), timeout=10, what="the retried auto-reply")
    assert texts(bot, 8103) == [MESSAGE]

    bot.telegram.blocked_chats.add(8104)
    assert (await bot.from_telegram(8104, "blocked")).status == 200
    root = await bot.root(index=1)
    failed = await bot.until(
        lambda: [t for t in bot_posts(bot, root["ts"]) if "auto-reply was not delivered" in t]
    )
    assert "blocked" in failed[0]
    states = {row.conversation_id: row.state for row in await rows(bot, OutOfHoursReply)}
    assert sorted(states.values()) == [ReplyState.FAILED, ReplyState.SENT]


async def test_public_comments_get_no_auto_reply(tmp_path: Path) -> None:
    """An X mention is public: an automatic answer there is spam."""
    bot, stop = await start_bot(tmp_path, env=CLOSED, clock=running_from(SATURDAY_NOON))
    try:
        assert await post_x(bot, ref_json("social/twitter_mention.json")["params"]) == 200
        root = await bot.root()
        assert (await bot.from_telegram(8105, "private")).status == 200
        await bot.until(lambda: texts(bot, 8105), what="the private auto-reply")
        assert "Desk closed" in root_text(root)
        claimed = await rows(bot, OutOfHoursReply)
        assert [row.network for row in claimed] == ["telegram"]
        assert bot.x.tweets == []
    finally:
        await stop()


async def test_no_auto_reply_while_open_or_unset(tmp_path: Path) -> None:
    monday_ten = datetime(2026, 3, 9, 10, 0, tzinfo=UTC)
    bot, stop = await start_bot(tmp_path, env=CLOSED, clock=running_from(monday_ten))
    try:
        assert (await bot.from_telegram(8106, "open hours")).status == 200
        root = await bot.root()
        assert "Desk closed" not in root_text(root)
        assert await rows(bot, OutOfHoursReply) == []
        answer = await bot.command_text("/oncall")
        assert "closed" not in answer
    finally:
        await stop()
    unset = {k: v for k, v in CLOSED.items() if k != "OUT_OF_HOURS_MESSAGE"}
    (tmp_path / "unset").mkdir()
    bot, stop = await start_bot(tmp_path / "unset", env=unset, clock=running_from(SATURDAY_NOON))
    try:
        assert (await bot.from_telegram(8107, "closed, no message set")).status == 200
        await bot.root()
        assert "Desk closed" in root_text(await bot.root())
        assert texts(bot, 8107) == [] and await rows(bot, OutOfHoursReply) == []
    finally:
        await stop()


def test_public_conversations_are_known_from_the_descriptors() -> None:
    assert BY_NAME["meta"].is_public({"channel": "facebook_comment"})
    assert BY_NAME["meta"].is_public({"channel": "instagram_comment"})
    assert not BY_NAME["meta"].is_public({"channel": "messenger"})
    assert BY_NAME["x"].is_public({"kind": "tweet"})
    assert not BY_NAME["x"].is_public({"kind": "dm"})
    assert not BY_NAME["telegram"].is_public({"chat_id": 1})
