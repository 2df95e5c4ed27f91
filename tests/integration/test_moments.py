"""Meaningful moments end to end: signed reaction events, the shortcut and its form,
the note in the thread, `/api/moments`, `/api/stats`, `/social-stats` and the summary."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse
from sqlalchemy import select
from sqlmodel import col

from storage.models import Moment
from tests.harness import AGENT, INBOX, SUMMARY, Bot, start_bot

TOKEN = "moments-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
OTHER = "U0OTHER01"


def reaction(
    kind: str, channel: str, ts: str, *, user: str = AGENT, name: str = "sparkles"
) -> dict[str, Any]:
    """A `reaction_added` / `reaction_removed` event as Slack sends it."""
    return {
        "type": kind,
        "user": user,
        "reaction": name,
        "item_user": "UBOT0001",
        "item": {"type": "message", "channel": channel, "ts": ts},
        "event_ts": f"{time.time():.6f}",
    }


async def react(bot: Bot, kind: str, channel: str, ts: str, **kwargs: Any) -> ClientResponse:
    response = await bot.slack_event(reaction(kind, channel, ts, **kwargs))
    assert response.status == 200, await response.text()
    return response


async def moments(bot: Bot) -> list[Moment]:
    async with bot.services.db.session() as session:
        return list((await session.execute(select(Moment).order_by(col(Moment.id)))).scalars())


def notes(bot: Bot, root_ts: str) -> list[dict[str, Any]]:
    return [m for m in bot.slack.replies(INBOX, root_ts) if "meaningful moment" in str(m["text"])]


async def thread(bot: Bot, chat: int = 9101) -> tuple[dict[str, Any], str]:
    """A conversation with a delivered team reply: its root and the reply's ts."""
    await bot.from_telegram(chat, "Your team saved my wedding day, thank you!")
    root = await bot.root()
    _, reply = await bot.thread_reply(INBOX, root["ts"], "So happy we could help!")
    await bot.until(lambda: "white_check_mark" in bot.slack.reactions(INBOX, reply))
    return root, reply


async def test_reaction_records_one_moment_and_its_removal_removes_it(any_bot: Bot) -> None:
    bot = any_bot
    root, reply = await thread(bot)
    event = reaction("reaction_added", INBOX, reply)
    # Slack's retry of the same event, and a second delivery at the same time.
    responses = await asyncio.gather(
        bot.slack_event(event, event_id="EvMOMENT1"),
        bot.slack_event(event, event_id="EvMOMENT1", retry=1),
    )
    assert [r.status for r in responses] == [200, 200]
    [moment] = await moments(bot)
    assert (moment.user_id, moment.conversation_id, moment.network) == (AGENT, 1, "telegram")
    assert moment.customer == "Ada" and moment.source == "reaction" and moment.note is None
    assert moment.thread_ts == root["ts"]
    [note] = await bot.until(lambda: notes(bot, root["ts"]), what="the moment's note")
    assert "<@U0AGENT01> marked a meaningful moment with *Ada* (#1)" in note["text"]
    await asyncio.sleep(0.2)
    assert len(notes(bot, root["ts"])) == 1

    # Someone else's reaction on the root is a moment of its own; removing it leaves ours.
    await react(bot, "reaction_added", INBOX, root["ts"], user=OTHER)
    await react(bot, "reaction_removed", INBOX, root["ts"], user=OTHER)
    # Another emoji, or our reaction removed from another message, changes nothing.
    await react(bot, "reaction_removed", INBOX, reply, name="heart")
    await react(bot, "reaction_removed", INBOX, root["ts"])
    assert [(m.user_id, m.slack_ts) for m in await moments(bot)] == [(AGENT, reply)]

    await react(bot, "reaction_removed", INBOX, reply)
    assert await moments(bot) == []
    struck = bot.slack.message(INBOX, note["ts"])["text"]
    assert struck.startswith("~") and "(removed by <@U0AGENT01>)" in struck


async def test_reaction_on_any_thread_message_and_never_our_own(bot: Bot) -> None:
    root, _ = await thread(bot)
    # A bot post in the thread is found through Slack (conversations.replies).
    escalation = bot.slack.add_message(INBOX, "escalation level 1", thread_ts=root["ts"])
    await react(bot, "reaction_added", INBOX, escalation["ts"])
    # Our bot mirrors a customer's reaction as the same emoji: that is no moment
    # (bolt drops events of the bot's own user).
    await react(bot, "reaction_added", INBOX, root["ts"], user="UBOT0001")
    # A message outside any conversation, and another emoji, record nothing.
    stray = bot.slack.add_message(INBOX, "lunch?", user=AGENT)
    await react(bot, "reaction_added", INBOX, stray["ts"])
    await react(bot, "reaction_added", INBOX, root["ts"], name="tada")
    assert [(m.user_id, m.slack_ts) for m in await moments(bot)] == [(AGENT, escalation["ts"])]


async def test_a_note_slack_could_not_take_is_posted_by_the_sweep(bot: Bot) -> None:
    root, reply = await thread(bot)
    bot.slack.fail("chat.postMessage", status=503, count=2)
    await react(bot, "reaction_added", INBOX, reply)
    [moment] = await moments(bot)
    assert moment.post_ts is None and not notes(bot, root["ts"])
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert await bot.services.moments.sweep(later) == 1
    assert len(notes(bot, root["ts"])) == 1
    assert await bot.services.moments.sweep(later) == 0


def shortcut(ts: str, thread_ts: str | None) -> dict[str, Any]:
    return {
        "type": "message_action",
        "callback_id": "relaydesk.moment",
        "trigger_id": "13345.2",
        "user": {"id": AGENT},
        "team": {"id": "T0001"},
        "channel": {"id": INBOX},
        "message_ts": ts,
        "response_url": "https://hooks.slack.com/app/x",
        "message": {"type": "message", "ts": ts, **({"thread_ts": thread_ts} if thread_ts else {})},
    }


def submission(view: dict[str, Any], note: str, view_id: str = "V0MOMENT1") -> dict[str, Any]:
    return {
        "type": "view_submission",
        "user": {"id": AGENT},
        "team": {"id": "T0001"},
        "view": {
            "id": view_id,
            "type": "modal",
            "callback_id": view["callback_id"],
            "private_metadata": view["private_metadata"],
            "state": {"values": {"note": {"note": {"type": "plain_text_input", "value": note}}}},
        },
    }


async def test_shortcut_form_records_a_moment_with_its_note(bot: Bot) -> None:
    root, reply = await thread(bot)
    response = await bot.interact(shortcut(reply, root["ts"]))
    assert response.status == 200
    opened = await bot.slack.wait_for("views.open")
    view = opened[0].params["view"]
    assert view["callback_id"] == "relaydesk.moment_modal"
    assert view["blocks"][0]["element"]["type"] == "plain_text_input"

    empty = await bot.interact(submission(view, "   "))
    assert json.loads(await empty.text())["response_action"] == "errors"
    assert await moments(bot) == []

    form = submission(view, "Invited us to the wedding <!channel>")
    for _ in range(2):  # a double submit of one form is one moment
        response = await bot.interact(form)
        assert response.status == 200
    [moment] = await moments(bot)
    assert moment.source == "shortcut" and moment.note == "Invited us to the wedding <!channel>"
    assert (moment.slack_ts, moment.thread_ts) == (reply, root["ts"])
    [note] = notes(bot, root["ts"])
    assert "_Invited us to the wedding &lt;!channel&gt;_" in note["text"]
    await bot.until(lambda: [t for t in bot.ephemerals_for() if "Moment recorded in #1" in t])

    forged = submission({**view, "private_metadata": "{}"}, "hi", "V0MOMENT2")
    answer = json.loads(await (await bot.interact(forged)).text())
    assert answer["errors"] == {"note": "This form is not ours."}


async def test_shortcut_on_a_stray_message_says_so(bot: Bot) -> None:
    stray = bot.slack.add_message(INBOX, "lunch?", user=AGENT)
    await bot.interact(shortcut(stray["ts"], None))
    await bot.until(lambda: [t for t in bot.ephemerals_for() if "not part of a Relaydesk" in t])
    assert not bot.slack.calls_to("views.open")


async def test_moments_in_the_api_and_the_stats_surfaces(tmp_path: Path) -> None:
    bot, stop = await start_bot(tmp_path, env={"API_TOKEN": TOKEN})
    try:
        root, reply = await thread(bot)
        await react(bot, "reaction_added", INBOX, reply)
        await react(bot, "reaction_added", INBOX, root["ts"], user=OTHER)
        await bot.until(lambda: len(notes(bot, root["ts"])) == 2, what="two notes")
        now = datetime.now(UTC)
        since = (now - timedelta(hours=1)).isoformat()

        listed = await bot.client.get("/api/moments", params={"since": since}, headers=AUTH)
        assert listed.status == 200
        items = await listed.json()
        assert [(i["who"], i["conversation"], i["customer"], i["network"]) for i in items] == [
            (AGENT, 1, "Ada", "telegram"),
            (OTHER, 1, "Ada", "telegram"),
        ]
        assert all(i["note"] is None and datetime.fromisoformat(i["when"]) for i in items)
        later = (now + timedelta(hours=1)).isoformat()
        empty = await bot.client.get(
            "/api/moments", params={"since": later, "until": later}, headers=AUTH
        )
        assert await empty.json() == []
        for params, headers, status in [
            ({"since": since}, {}, 401),
            ({"since": since}, {"Authorization": "Bearer wrong"}, 401),
            ({}, AUTH, 400),
            ({"since": "yesterday"}, AUTH, 400),
            ({"since": since, "until": (now - timedelta(days=1)).isoformat()}, AUTH, 400),
        ]:
            answer = await bot.client.get("/api/moments", params=params, headers=headers)
            assert answer.status == status, (params, headers)
            assert "error" in await answer.json()

        answered = await bot.client.get("/api/stats", params={"since": since}, headers=AUTH)
        stats = await answered.json()
        assert stats["moments"] == 2
        assert stats["by_network"]["telegram"]["moments"] == 2
        assert stats["by_team"]["unassigned"]["moments"] == 2
        filtered = await bot.client.get(
            "/api/stats", params={"since": since, "network": "whatsapp"}, headers=AUTH
        )
        assert (await filtered.json())["moments"] == 0

        shown = json.dumps((await (await bot.command("/social-stats", "today")).json())["blocks"])
        assert "Meaningful moments*: 2" in shown and "<@U0OTHER01>" in shown
        today = now.astimezone(bot.settings.tz).date()
        channel, ts = await bot.services.summary.post(today, now)
        assert channel == SUMMARY
        summary = json.dumps(bot.slack.message(channel, ts)["blocks"])
        assert "Meaningful moments*: 2" in summary
    finally:
        await stop()


async def test_api_moments_is_off_without_api_token(bot: Bot) -> None:
    answer = await bot.client.get("/api/moments", params={"since": "2026-01-01T00:00:00+00:00"})
    assert answer.status == 404
    assert "API_TOKEN" in (await answer.json())["error"]


async def test_the_scheduler_pages_the_person_on_call_when_volume_spikes(tmp_path: Path) -> None:
    """A burst stored while timers were off; a bot with timers checks at once and pages."""
    env = {"SPIKE_MIN": "3", "ONCALL_USERS": "U0ONCALL1"}
    url = f"sqlite+aiosqlite:///{tmp_path / 'spike.db'}"
    bot, stop = await start_bot(tmp_path, database_url=url, env=env)
    try:
        for chat in (9301, 9302, 9303):
            await bot.from_telegram(chat, "Is the checkout broken? My payment failed")
    finally:
        await stop()
    bot, stop = await start_bot(tmp_path, database_url=url, env=env, timers=True)
    try:
        page = await bot.until(
            lambda: next((m for m in bot.slack.roots(INBOX) if "Volume spike" in m["text"]), None),
            what="the spike page",
        )
        shown = json.dumps(page["blocks"])
        assert "<@U0ONCALL1>" in shown and "telegram 3" in shown
        assert "`checkout`" in shown and "`payment`" in shown
    finally:
        await stop()
