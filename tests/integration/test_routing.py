"""Routing rules through the whole app: a routed urgent conversation opens in its team's
channel with its priority and tags on the root, escalates after SLA_MINUTES_URGENT, and
its tag filters `/social-stats` and `/api/stats`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import col, select

from storage.models import Turn
from tests.harness import INBOX, start_bot

SALES = "C0SALES01"
ONCALL = "U0ONCALLA1"
RULES = """\
[[rule]]
keywords = ["refund", "money back"]
team = "sales"
priority = "urgent"
tags = ["refund", "billing"]

[[rule]]
regex = ['order\\s*#?\\d{5}']
tags = ["order"]
"""


def text_of(message: dict[str, object]) -> str:
    return json.dumps(message.get("blocks", []), ensure_ascii=False)


async def test_an_urgent_routed_conversation_opens_in_sales_and_escalates_sooner(
    tmp_path: Path,
) -> None:
    (tmp_path / "rules.toml").write_text(RULES, encoding="utf-8")
    env = {
        "ROUTING_RULES": str(tmp_path / "rules.toml"),
        "SLA_MINUTES": "30",
        "SLA_MINUTES_URGENT": "5",
        "ONCALL_USERS": ONCALL,
        "API_TOKEN": "secret-token",
    }
    bot, stop = await start_bot(tmp_path, env=env)
    try:
        written = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=6)
        at = int(written.timestamp())
        await bot.from_telegram(7001, "I want my MONEY BACK for order #12345", date=at)
        await bot.from_telegram(7002, "Hi, a question about order 55555", date=at)

        urgent = await bot.root(SALES)
        plain = await bot.root(INBOX)
        assert bot.slack.roots(SALES) == [urgent] and bot.slack.roots(INBOX) == [plain]
        assert "MONEY BACK" in text_of(urgent)
        assert ":rotating_light: *urgent* · :label: `refund` `billing` `order`" in text_of(urgent)
        assert ":label: `order`" in text_of(plain) and "urgent" not in text_of(plain)

        repo = bot.services.repo
        routed = await repo.conversation_by_thread(SALES, urgent["ts"])
        assert routed is not None and routed.id is not None
        assert (routed.team, routed.priority, routed.tags) == (
            "sales",
            "urgent",
            ["refund", "billing", "order"],
        )
        async with bot.services.db.read() as session:
            turns = (
                await session.execute(select(Turn).where(col(Turn.conversation_id) == routed.id))
            ).scalars()
            assert [t.team for t in turns] == ["sales"]  # counted for Sales from its start

        # the urgent one is due 5 minutes after it was written, the other after 30
        escalations = bot.services.escalations
        assert await escalations.sweep(written + timedelta(minutes=5) - timedelta(seconds=1)) == 0
        assert await escalations.sweep(written + timedelta(minutes=5)) == 1
        pages = await escalations.store.pages_of(routed.id)
        assert [(p.level, p.target_user) for p in pages] == [(1, ONCALL)]
        paged = [c for c in bot.slack.calls_to("chat.postMessage") if c.params.get("thread_ts")]
        assert any(
            c.params["channel"] == SALES and c.params["thread_ts"] == urgent["ts"] for c in paged
        )
        assert await escalations.sweep(written + timedelta(minutes=29)) == 0  # not the plain one
        assert await escalations.sweep(written + timedelta(minutes=30)) == 1

        since = (written - timedelta(hours=1)).isoformat()
        headers = {"Authorization": "Bearer secret-token"}
        figures = {}
        for tag in ("refund", "order", "nothing", ""):
            answer = await bot.client.get(
                "/api/stats", params={"since": since, "tag": tag}, headers=headers
            )
            assert answer.status == 200
            figures[tag] = await answer.json()
        assert (figures["refund"]["received"], figures["refund"]["unanswered"]) == (1, 1)
        assert list(figures["refund"]["by_team"]) == ["sales"]
        assert (figures["order"]["received"], figures["order"]["unanswered"]) == (2, 2)
        assert (figures["nothing"]["received"], figures["nothing"]["turns"]) == (0, 0)
        assert figures[""]["received"] == 2  # an empty tag filters nothing
        refused = await bot.client.get(
            "/api/stats", params={"since": since, "tag": "no\x00tag"}, headers=headers
        )
        assert refused.status == 400
        assert (await refused.json())["error"].startswith("tag must be at most 64 lower-case")

        response = await bot.command("/social-stats", "7d tag:refund")
        shown = json.dumps((await response.json())["blocks"])
        assert "tag: refund" in shown
        assert "*Received*\\n1 messages" in shown  # the refund alone (a JSON-escaped newline)
    finally:
        await stop()
