"""The hourly roll-ups (`storage.rollups`) give exactly the raw queries' figures.

A hypothesis property on SQLite and PostgreSQL: random conversations written
through the real Repository (late and out-of-order customer messages, replies
delivered, failed or written as notes, deliveries reported failed after they
had answered a turn, handoffs between teams), then windows around a DST change
in the reports' time zone, local days and windows not aligned to hours, with
and without the network, team and tag filters: `received` and `conversations`
from the roll-ups equal those counted from the raw messages, before and after
the deltas are folded and after a rebuild from the raw rows. `python -m bot
rebuild-rollups` is run as a subprocess.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text, update
from sqlmodel import col

from bot.services.stats import day_window
from storage import rollups, stats
from storage.core import ReplyState
from storage.db import Database
from storage.models import Conversation, StatsHour, TeamReply
from tests.stats.builder import Builder

ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Europe/Berlin")  # summer time starts 2026-03-29 at 02:00 local
START = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
SPAN_MINUTES = 2 * 24 * 60
KEYS = ("a", "b", "c")
NETWORKS = {"a": "telegram", "b": "telegram", "c": "whatsapp"}
TEAMS = ("support", "sales", None)
TAGS = ((), ("refund",), ("refund", "vip"))
TABLES = (
    "escalation",
    "turn",
    "team_reply",
    "customer_message",
    "handoff",
    "slack_thread",
    "conversation",
    "stats_conversation_hour",
    "stats_hour",
)

minutes = st.integers(0, SPAN_MINUTES)
events = st.lists(
    st.one_of(
        # a customer message sent at `minute`, arriving up to 10 hours later
        st.tuples(st.just("customer"), st.sampled_from(KEYS), minutes, st.integers(0, 600)),
        st.tuples(
            st.just("reply"),
            st.sampled_from(KEYS),
            minutes,
            st.sampled_from(("sent", "sent", "failed", "note")),
        ),
        st.tuples(st.just("team"), st.sampled_from(KEYS), st.sampled_from(TEAMS), st.just(0)),
        st.tuples(st.just("unanswer"), st.sampled_from(KEYS), st.just(0), st.just(0)),
        st.tuples(st.just("tags"), st.sampled_from(KEYS), st.sampled_from(TAGS), st.just(0)),
    ),
    max_size=40,
)
instants = st.integers(0, SPAN_MINUTES + 60).map(lambda m: START + timedelta(minutes=m, seconds=7))
windows = st.lists(
    st.one_of(
        st.tuples(instants, instants).map(lambda pair: tuple(sorted(pair))),
        st.dates(date(2026, 3, 28), date(2026, 3, 30)).map(
            lambda day: (day_window(day, TZ).since, day_window(day, TZ).until)
        ),
    ),
    min_size=1,
    max_size=6,
)
FILTERS = (
    (None, None, None),
    ("whatsapp", None, None),
    (None, "support", None),
    (None, stats.UNASSIGNED, None),
    (None, None, "refund"),
    ("telegram", "support", "vip"),
)


async def _reset(db: Database) -> None:
    async with db.session() as session:
        if db.dialect == "postgresql":
            await session.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        else:
            for table in TABLES:
                await session.execute(text(f"DELETE FROM {table}"))


async def _apply(db: Database, story: list[tuple[Any, ...]]) -> None:
    b = Builder(db)
    for index, (kind, key, value, extra) in enumerate(story):
        # a Slack ts is unique: replies in the same minute are a microsecond apart
        at = START + timedelta(minutes=value if isinstance(value, int) else 0, microseconds=index)
        if kind == "customer":
            await b.customer(key, at, network=NETWORKS[key], arrived=at + timedelta(minutes=extra))
        elif key not in b.ids:
            continue  # nothing to answer or hand off yet
        elif kind == "reply":
            await b.reply(key, at, outcome=extra)
        elif kind == "team":
            await b.set_team(key, value)
        elif kind == "tags":  # what routing rules gave the conversation
            async with db.session() as session:
                await session.execute(
                    update(Conversation)
                    .where(col(Conversation.id) == b.ids[key])
                    .values(tags=list(value))
                )
        else:
            await _fail_a_delivered_reply(b, key)


async def _fail_a_delivered_reply(b: Builder, key: str) -> None:
    """The network reports a failure for a reply that had answered a turn."""
    async with b.db.read() as session:
        reply = (
            await session.execute(
                select(TeamReply)
                .where(
                    col(TeamReply.conversation_id) == b.ids[key],
                    col(TeamReply.state) == ReplyState.SENT,
                )
                .order_by(col(TeamReply.id))
                .limit(1)
            )
        ).scalar_one_or_none()
    if reply is not None:
        await b.repo.apply_delivery_statuses(
            [{"network": reply.network, "message_id": reply.external_id, "status": "failed"}]
        )


async def _both(db: Database, since: datetime, until: datetime) -> list[tuple[Any, Any]]:
    """(roll-ups, raw) for every filter."""
    pairs = []
    for network, team, tag in FILTERS:
        async with db.read() as session:
            rolled = await stats._received(session, since, until, network, team, tag)
            raw = await stats.received_raw(session, since, until, network, team, tag)
        pairs.append((rolled, raw))
    return pairs


async def _check(
    db: Database, story: list[tuple[Any, ...]], spans: list[tuple[datetime, datetime]]
) -> None:
    await _reset(db)
    await _apply(db, story)
    for since, until in spans:
        for rolled, raw in await _both(db, since, until):
            assert rolled == raw, (since, until)
    await rollups.fold(db)
    async with db.read() as session:
        groups = (
            await session.execute(
                select(func.count()).select_from(
                    select(col(StatsHour.hour), col(StatsHour.network), col(StatsHour.team))
                    .group_by(col(StatsHour.hour), col(StatsHour.network), col(StatsHour.team))
                    .having(func.count() > 1)
                    .subquery()
                )
            )
        ).scalar_one()
    assert groups == 0  # folded: one row per group
    await rollups.rebuild(db)
    for since, until in spans:
        for rolled, raw in await _both(db, since, until):
            assert rolled == raw, (since, until)


async def test_rollups_equal_the_raw_counts(db: Database) -> None:
    loop = asyncio.get_running_loop()

    @settings(
        max_examples=30,  # with the fixed examples below, which random search had missed
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(events, windows)
    @example(  # a late message between two hours of a conversation
        [("customer", "a", 30, 0), ("customer", "a", 270, 0), ("customer", "a", 150, 0)],
        [(START + timedelta(hours=1), START + timedelta(hours=3))],
    )
    @example(  # a handoff moves the conversation's earlier hours to the new team
        [("customer", "a", 30, 0), ("team", "a", "support", 0), ("customer", "a", 2000, 0)],
        [(START, START + timedelta(hours=2))],
    )
    def check(story: list[tuple[Any, ...]], spans: list[tuple[datetime, datetime]]) -> None:
        asyncio.run_coroutine_threadsafe(_check(db, story, spans), loop).result(timeout=60)

    await asyncio.to_thread(check)


async def test_a_window_of_whole_hours_reads_the_rollups_only(db: Database) -> None:
    """Figures come from the roll-up tables: rows put there only are counted."""
    b = Builder(db)
    await b.customer("a", START + timedelta(hours=1, minutes=5))
    async with db.session() as session:
        await session.execute(
            text(
                "INSERT INTO stats_hour (hour, network, team, messages, lasts)"
                " VALUES (:hour, 'telegram', NULL, 2, 0)"
            ),
            {"hour": rollups.hour_of(START + timedelta(hours=2))},
        )
    figures = await stats.compute(db, START, START + timedelta(hours=3), now=START)
    assert (figures["received"], figures["conversations"]) == (3, 1)


def test_the_rebuild_command_recomputes_the_rollups(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/relay.db"

    async def prepare() -> None:
        db = Database(url)
        await db.migrate()
        b = Builder(db)
        await b.customer("a", START)
        await b.customer("a", START + timedelta(hours=2))
        await b.customer("b", START + timedelta(hours=2, minutes=3), network="whatsapp")
        async with db.session() as session:  # a roll-up gone wrong
            await session.execute(text("DELETE FROM stats_conversation_hour"))
            await session.execute(text("UPDATE stats_hour SET messages = 99"))
        await db.dispose()

    async def figures() -> dict[str, Any]:
        db = Database(url)
        try:
            return await stats.compute(db, START, START + timedelta(hours=4), now=START)
        finally:
            await db.dispose()

    asyncio.run(prepare())
    assert asyncio.run(figures())["received"] != 3
    done = subprocess.run(
        [sys.executable, "-m", "bot", "rebuild-rollups"],
        cwd=tmp_path,
        env={
            "PATH": os.environ["PATH"],
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": url,
            "SLACK_BOT_TOKEN": "xoxb-1-2-3",
            "SLACK_SIGNING_SECRET": "signing-secret",
            "SLACK_INBOX_CHANNEL": "C0INBOX01",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    after = asyncio.run(figures())
    assert (after["received"], after["conversations"]) == (3, 2)
    assert after["by_network"]["whatsapp"]["received"] == 1
