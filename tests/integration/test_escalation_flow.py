"""Escalation through the whole app: the page DM's Claim also stops escalating."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

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
