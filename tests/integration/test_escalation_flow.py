"""Escalation through the whole app: the page DM's Claim also stops escalating."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.escalation.support import date_tag
from tests.harness import INBOX, start_bot

ONCALL_A, ONCALL_B = "U0ONCALLA1", "U0ONCALLB1"


async def test_claim_on_a_page_stops_further_levels(tmp_path: Path) -> None:
    bot, stop = await start_bot(
        tmp_path, env={"ONCALL_USERS": f"{ONCALL_A},{ONCALL_B}", "SLA_MINUTES": "30"}
    )
    try:
        written = datetime.now(UTC) - timedelta(minutes=31)
        await bot.from_telegram(9101, "Hello? Anyone?", date=int(written.timestamp()))
        await bot.root()
        await bot.until(lambda: bot.services.repo.conversation(1), what="conversation")
        now = datetime.now(UTC)
        escalations = bot.services.escalations
        assert await escalations.sweep(now) == 1
        dm = [
            c
            for c in bot.slack.calls_to("chat.postMessage")
            if str(c.params.get("channel", "")).startswith("D")
        ]
        assert len(dm) == 1
        dm_channel = str(dm[0].params["channel"])

        await bot.click("relaydesk.claim", "1", user=ONCALL_A, channel=dm_channel)
        await bot.until(lambda: [t for t in bot.ephemerals_for(ONCALL_A) if "own #1" in t])
        later = now + timedelta(minutes=20)  # past ESCALATION_REPEAT_MINUTES
        assert await escalations.sweep(later) == 0
        pages = await escalations.store.pages_of(1)
        assert [(p.level, p.acked_by) for p in pages] == [(1, ONCALL_A)]
        conversation = await bot.services.repo.conversation(1)
        assert conversation is not None and conversation.owner == ONCALL_A
        assert INBOX == conversation.channel
    finally:
        await stop()


async def test_claim_on_a_page_of_a_colleagues_conversation_still_stops_paging(
    tmp_path: Path,
) -> None:
    """The paged person answered the page: a refused claim (a colleague owns it) acks it."""
    bot, stop = await start_bot(
        tmp_path, env={"ONCALL_USERS": f"{ONCALL_A},{ONCALL_B}", "SLA_MINUTES": "30"}
    )
    try:
        written = datetime.now(UTC) - timedelta(minutes=31)
        await bot.from_telegram(9102, "Still waiting", date=int(written.timestamp()))
        root = await bot.root()
        await bot.click("relaydesk.claim", "1", user=ONCALL_B, message_ts=root["ts"])
        await bot.until(lambda: [t for t in bot.ephemerals_for(ONCALL_B) if "own #1" in t])
        now = datetime.now(UTC)
        escalations = bot.services.escalations
        assert await escalations.sweep(now) == 1
        dm = next(
            str(c.params["channel"])
            for c in bot.slack.calls_to("chat.postMessage")
            if str(c.params.get("channel", "")).startswith("D")
        )

        await bot.click("relaydesk.claim", "1", user=ONCALL_A, channel=dm)
        await bot.until(lambda: [t for t in bot.ephemerals_for(ONCALL_A) if "already" in t])
        assert await escalations.sweep(now + timedelta(minutes=20)) == 0
        pages = await escalations.store.pages_of(1)
        assert [(p.level, p.acked_by) for p in pages] == [(1, ONCALL_A)]
    finally:
        await stop()


async def test_oncall_answers_with_the_injected_clock(tmp_path: Path) -> None:
    """/oncall and its cover read the app's clock (week 1 of the rotation, not today)."""
    fixed = datetime(2026, 1, 6, 10, 0, tzinfo=UTC)
    env = {
        "ONCALL_USERS": f"{ONCALL_A},{ONCALL_B}",
        "ONCALL_START": "2026-01-05",
        "ONCALL_HANDOFF": "09:00",
        "ONCALL_ROTATION_DAYS": "7",
        "TIMEZONE": "UTC",
    }
    bot, stop = await start_bot(tmp_path, env=env, clock=lambda: fixed)
    try:
        shift_ends = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)
        answer = await bot.command_text("/oncall")
        assert (
            answer.splitlines()[0]
            == f":pager: On call now: <@{ONCALL_A}> until {date_tag(shift_ends)}"
        )
        cover = await bot.command_text(f"/oncall cover <@{ONCALL_B}> 4h", user=ONCALL_A)
        assert cover == (
            f":pager: <@{ONCALL_B}> is on call from {date_tag(fixed)} "
            f"until {date_tag(fixed + timedelta(hours=4))} (cover)."
        )
    finally:
        await stop()
