"""Spike alerts from two processes: one page per spike, one "over" post, through the
coordination interface (in memory, and Redis with two clients) and one database."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import col

from bot.config import load_settings
from bot.services.spikes import Spikes
from bot.slack import Slack, make_web_client
from storage.coordination import Coordinator, MemoryCoordinator
from storage.db import Database
from storage.models import Conversation
from storage.redis_coordination import RedisCoordinator
from tests.fakes import FakeSlack
from tests.moments.conftest import Messages
from tests.pg import fresh_postgres
from tests.services import require_redis

INBOX = "C0INBOX01"
ONCALL = "U0ONCALL1"
NOW = datetime.now(UTC).replace(microsecond=0)
MINUTE = timedelta(minutes=1)


@dataclass
class Desk:
    db: Database
    slack: FakeSlack
    processes: list[Spikes]

    def posts(self, text: str) -> list[dict[str, Any]]:
        return [
            call.params
            for call in self.slack.calls_to("chat.postMessage")
            if call.status == 200 and text in str(call.params.get("text"))
        ]


async def on_call(at: datetime) -> str | None:
    return ONCALL


def _processes(
    db: Database, url: str, slack: FakeSlack, coordinators: list[Coordinator]
) -> list[Spikes]:
    settings = load_settings(
        {
            "DATABASE_URL": url,
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_API_URL": slack.url,
            "SLACK_INBOX_CHANNEL": INBOX,
        },
        env_file=None,
    )
    return [
        Spikes(
            settings,
            db,
            Slack(make_web_client("xoxb-test", slack.url), coordinator=coordinator),
            coordinator,
            on_call,
        )
        for coordinator in coordinators
    ]


@pytest.fixture(params=["sqlite+memory", "postgres+redis"])
async def desk(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Desk]:
    slack = await FakeSlack().start()
    try:
        if request.param == "sqlite+memory":
            url = f"sqlite+aiosqlite:///{tmp_path / 'spikes.db'}"
            memory = MemoryCoordinator()  # one process's twin: its peer is itself
            db = Database(url)
            await db.migrate()
            yield Desk(db, slack, _processes(db, url, slack, [memory, memory]))
            await db.dispose()
            return
        redis_url = require_redis()
        prefix = f"relaydesk-test:{uuid.uuid4().hex[:12]}:"
        a = RedisCoordinator.from_url(redis_url, prefix=prefix)
        b = RedisCoordinator.from_url(redis_url, prefix=prefix)
        async with fresh_postgres() as url:
            db = Database(url)
            await db.migrate()
            try:
                yield Desk(db, slack, _processes(db, url, slack, [a, b]))
            finally:
                await db.dispose()
                await a.close()
                await b.close()
    finally:
        await slack.stop()


async def a_burst(db: Database) -> None:
    """25 messages in the last 15 minutes (15 Telegram, 10 WhatsApp), one a day before."""
    messages = Messages(db)
    await messages.add(NOW - timedelta(days=1, minutes=5))
    for n in range(15):
        await messages.add(
            NOW - timedelta(minutes=14) + n * timedelta(seconds=30),
            key=f"t{n % 5}",
            text=f"My parcel {n} is late, where is the parcel?",
        )
    for n in range(10):
        await messages.add(
            NOW - timedelta(minutes=10) + n * timedelta(seconds=30),
            network="whatsapp",
            key=f"w{n}",
            text="Tracking broken <!channel>",
        )
    async with db.session() as session:  # the oldest waiting conversation has a thread
        await session.execute(
            update(Conversation)
            .where(col(Conversation.id) == 1)
            .values(channel=INBOX, thread_ts="1700000000.000100")
        )


async def test_two_processes_page_once_and_say_once_that_it_is_over(desk: Desk) -> None:
    await a_burst(desk.db)
    first, second = desk.processes

    await asyncio.gather(first.check(NOW), second.check(NOW))
    await asyncio.gather(first.check(NOW + MINUTE), second.check(NOW + MINUTE))

    [page] = desk.posts("Volume spike")
    assert page["channel"] == INBOX and "thread_ts" not in page
    shown = json.dumps(page["blocks"])
    assert f"<@{ONCALL}>" in shown
    assert "25 customer messages in the last 15 minutes" in shown
    assert "against 0.1 on average" in shown  # one message a day before, over 7 days
    assert "telegram 15 \\u00b7 whatsapp 10" in shown
    assert "`parcel`" in shown and "`tracking`" in shown and "`late`" in shown
    assert "`the`" not in shown and "<!channel>" not in shown
    link = "app_redirect?channel=C0INBOX01&message_ts=1700000000.000100"
    assert f"{link}|#1 Ann (telegram), waiting 1 d 0 h>" in shown
    spike = await desk.processes[0].store.current()
    assert spike is not None and spike.paged_user == ONCALL and spike.count == 25
    assert spike.paged_ts in [m["ts"] for m in desk.slack.roots(INBOX)]

    # 40 minutes later the window is empty: the spike is over, said once, under the page.
    later = NOW + 40 * MINUTE
    await asyncio.gather(first.check(later), second.check(later))
    await asyncio.gather(first.check(later + MINUTE), second.check(later + MINUTE))
    [over] = desk.posts("is over")
    assert over["thread_ts"] == spike.paged_ts and over["reply_broadcast"] is True
    assert "0 customer messages in the last 15 minutes" in over["text"]
    assert len(desk.posts("Volume spike")) == 1
    assert await desk.processes[0].store.current() is None

    # Another burst right after is no new spike until a window has passed since the end.
    messages = Messages(desk.db)
    for n in range(20):
        await messages.add(later + 2 * MINUTE + n * timedelta(seconds=5), key=f"again{n}")
    soon = later + 4 * MINUTE
    await asyncio.gather(first.check(soon), second.check(soon))
    assert len(desk.posts("Volume spike")) == 1
    after_a_window = later + 15 * MINUTE + timedelta(seconds=30)
    await asyncio.gather(first.check(after_a_window), second.check(after_a_window))
    assert len(desk.posts("Volume spike")) == 2


async def test_a_page_slack_could_not_take_is_made_by_the_next_check(desk: Desk) -> None:
    await a_burst(desk.db)
    first, second = desk.processes
    desk.slack.fail("chat.postMessage", status=503, count=2)  # the call and its one retry
    await first.check(NOW)
    assert desk.posts("Volume spike") == []
    await asyncio.gather(first.check(NOW + MINUTE), second.check(NOW + MINUTE))
    assert len(desk.posts("Volume spike")) == 1


async def test_a_quiet_desk_pages_nobody_and_checks_once_a_minute(desk: Desk) -> None:
    first, _ = desk.processes
    messages = Messages(desk.db)
    for n in range(19):  # under SPIKE_MIN
        await messages.add(NOW - n * timedelta(seconds=20))
    await first.tick(NOW)
    await messages.add(NOW)
    await first.tick(NOW + timedelta(seconds=30))  # not checked again yet
    assert desk.posts("Volume spike") == []
    await first.tick(NOW + MINUTE)
    assert len(desk.posts("Volume spike")) == 1
