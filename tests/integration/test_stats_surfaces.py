"""/social-stats, /api/stats and the daily summary agree, and the summary posts once."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from bot.app import build_services
from bot.blocks.stats import humanize_seconds
from bot.services.summary import DailySummary
from bot.slack import SlackTemporary
from tests.harness import INBOX, SUMMARY, Bot, start_bot


async def answered_conversation(bot: Bot) -> None:
    """One conversation: a customer message, then a delivered reply."""
    await bot.from_telegram(8001, "Do you ship to Norway?")
    root = await bot.root()
    _, reply = await bot.thread_reply(INBOX, root["ts"], "Yes we do")
    await bot.until(lambda: "white_check_mark" in bot.slack.reactions(INBOX, reply))
    await bot.from_telegram(8002, "Hello?")  # left unanswered
    await bot.root(index=1)


async def test_three_surfaces_agree(tmp_path: Path) -> None:
    bot, stop = await start_bot(tmp_path, env={"API_TOKEN": "secret-token"})
    try:
        await answered_conversation(bot)
        turns = await bot.services.repo.turns(1)
        expected = turns[0].response_seconds
        assert expected is not None

        response = await bot.command("/social-stats", "today")
        body = json.loads(await response.text())
        rendered = json.dumps(body["blocks"])
        assert "Received" in rendered or "received" in rendered

        now = datetime.now(UTC)
        since = (now - timedelta(days=1)).isoformat()
        unauthorized = await bot.client.get("/api/stats", params={"since": since})
        assert unauthorized.status == 401
        api = await bot.client.get(
            "/api/stats", params={"since": since}, headers={"Authorization": "Bearer secret-token"}
        )
        assert api.status == 200
        figures = await api.json()
        assert figures["received"] == 2 and figures["conversations"] == 2
        assert figures["turns"] == 2 and figures["answered_turns"] == 1
        assert figures["response_rate"] == 0.5
        assert abs(figures["avg_response_seconds"] - expected) < 0.01
        assert figures["unanswered"] == 1
        assert set(figures["by_network"]) == {"telegram"}
        bad = await bot.client.get(
            "/api/stats",
            params={"since": "yesterday"},
            headers={"Authorization": "Bearer secret-token"},
        )
        assert bad.status == 400 and "error" in await bad.json()

        today = now.astimezone(bot.settings.tz).date()
        channel, ts = await bot.services.summary.post(today, now)
        assert channel == SUMMARY
        summary = json.dumps(bot.slack.message(channel, ts)["blocks"])
        assert "Daily summary" in summary and "Escalations sent that day: 0" in summary
        # The command and the summary show the API's figures for the same day.
        shown = humanize_seconds(figures["avg_response_seconds"])
        for surface in (rendered, summary):
            assert "50%" in surface and shown in surface
    finally:
        await stop()


async def test_stats_users_only(tmp_path: Path) -> None:
    bot, stop = await start_bot(tmp_path, env={"STATS_USERS": "U0BOSS001"})
    try:
        assert "only for the people listed in STATS_USERS" in await bot.command_text(
            "/social-stats"
        )
        allowed = await bot.command("/social-stats", "", user="U0BOSS001")
        assert "blocks" in json.loads(await allowed.text())
        assert "Usage" in await bot.command_text("/social-stats banana", user="U0BOSS001")
    finally:
        await stop()


async def test_api_stats_is_404_without_a_token(bot: Bot) -> None:
    response = await bot.client.get("/api/stats", params={"since": "2026-01-01T00:00:00Z"})
    assert response.status == 404


async def test_daily_summary_posts_exactly_once_across_processes(bot: Bot) -> None:
    """Three schedulers (three processes' worth) on one database: one post per day."""
    settings = bot.settings.model_copy(update={"slack_summary_channel": "C0OTHER001"})
    others = [build_services(settings) for _ in range(2)]
    try:
        summaries = [DailySummary(settings, s.db, s.slack) for s in [bot.services, *others]]
        day_after = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)  # SUMMARY_TIME 09:00 UTC passed
        before = datetime(2026, 11, 24, 8, 59, tzinfo=UTC)
        assert [await s.tick(before) for s in summaries] == [False, False, False]
        results = await asyncio.gather(*(s.tick(day_after) for s in summaries))
        assert sorted(results) == [False, False, True]
        assert [await s.tick(day_after + timedelta(hours=5)) for s in summaries] == [
            False,
            False,
            False,
        ]
        posts = bot.slack.messages("C0OTHER001")
        assert len(posts) == 1
        assert "2026-11-23" in posts[0]["text"]
        # The next day posts again, even when the bot comes back late that day.
        assert await summaries[1].tick(datetime(2026, 11, 25, 17, 0, tzinfo=UTC))
        assert len(bot.slack.messages("C0OTHER001")) == 2
    finally:
        for services in others:
            await services.close()


async def test_the_scheduler_posts_yesterdays_summary_at_start(tmp_path: Path) -> None:
    bot, stop = await start_bot(tmp_path, env={"SUMMARY_TIME": "00:00"}, timers=True)
    try:
        posts = await bot.until(lambda: bot.slack.messages(SUMMARY), what="the summary")
        yesterday = datetime.now(UTC).date() - timedelta(days=1)
        assert len(posts) == 1 and yesterday.isoformat() in posts[0]["text"]
    finally:
        await stop()


async def test_a_failed_summary_post_is_tried_again(bot: Bot) -> None:
    when = datetime(2030, 1, 2, 10, 0, tzinfo=UTC)
    bot.slack.fail("chat.postMessage", status=500, count=2)  # the call and its one retry
    summary = bot.services.summary
    with pytest.raises(SlackTemporary):
        await summary.tick(when)
    assert await summary.tick(when)
    posted = [m for m in bot.slack.messages(SUMMARY) if date(2030, 1, 1).isoformat() in m["text"]]
    assert len(posted) == 1
