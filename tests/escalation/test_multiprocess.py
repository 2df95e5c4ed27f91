"""Three "processes" (independent Services) on one PostgreSQL and one Redis, all ticking.

Each process runs the sweep through its Scheduler (lease per job) and also calls
`sweep()` directly at the same moment, bypassing the lease, so the database's
row lock and unique page rows alone must keep every page to exactly one DM.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from bot.app import build_services
from bot.config import load_settings
from bot.scheduler import Scheduler
from tests.escalation.support import INBOX, MANAGER, A, B, Clock, Env, environment, minutes
from tests.fakes import FakeSlack
from tests.services import require_postgres, require_redis


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    """A fresh, uniquely named database, dropped afterwards."""
    url = make_url(require_postgres())
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"relaydesk_esc_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(admin)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.close()


async def test_three_processes_send_exactly_one_dm_per_level(database_url: str) -> None:
    redis_url = require_redis()
    prefix = f"relaydesk-test-{uuid.uuid4().hex[:8]}:"
    slack = await FakeSlack().start()
    clock = Clock()
    settings = load_settings(environment(slack, database_url, REDIS_URL=redis_url), env_file=None)
    processes = []
    try:
        for _ in range(3):
            services = build_services(settings, clock=clock, coordination_prefix=prefix)
            escalations = services.escalations
            scheduler = Scheduler(services.coordinator, interval=1, clock=clock)
            scheduler.add("escalation", escalations.sweep)
            processes.append((Env(slack, services, escalations, clock), scheduler))
        first = processes[0][0]
        await first.services.db.migrate()
        for index in range(5):
            await first.conversation(f"c{index}", at=minutes(index * 0.1))

        for at in (29, 30.5, 31, 45.5, 70, 90):
            clock.now = minutes(at)
            await asyncio.gather(
                *(scheduler.tick() for _, scheduler in processes),
                *(env.escalations.sweep(clock.now) for env, _ in processes),
            )

        dms = first.dm_posts()
        assert len(dms) == 15  # 5 conversations x 3 levels
        by_user = {user: await first.dm_channel(user) for user in (A, B, MANAGER)}
        for user, channel in by_user.items():
            texts = sorted(str(post["text"]) for post in dms if post["channel"] == channel)
            level = {A: 1, B: 2, MANAGER: 3}[user]
            assert texts == sorted(
                f"Escalation level {level}: #{n} needs an answer" for n in range(1, 6)
            )
        for conversation_id in range(1, 6):
            assert await first.pages(conversation_id) == [
                (1, "auto", A),
                (2, "auto", B),
                (3, "auto", MANAGER),
            ]
        mentions = [m for m in slack.messages(INBOX) if "escalation level" in m["text"]]
        assert len(mentions) == 15
    finally:
        for env, _ in processes:
            await env.services.close()
        await slack.stop()
