"""Benchmark of storage.stats on 1,000,000 customer messages in 100,000 conversations.

    .venv/bin/python -m tests.bench.bench_stats [--quick | --large] [--runs N]
        [--only sqlite|postgresql]

Generates 90 days of history (turns, replies, notes and failed deliveries in
proportion), bulk-loads it into a fresh SQLite file and a fresh PostgreSQL
database (dropped at the end), then times `compute()` for the last 30 days, the
daily summary's reads (`summary_report`: one local day, the day before, the five
oldest waits), `/social-stats today` (`stats_report`: figures and the five
oldest waits) and the `/reports` page for the last 30 days, and, side by side,
the window's `received` and `conversations` from the roll-ups and from the raw
messages. Prints the median of several runs. `--quick` uses 1/20 of the data;
`--large` 10,000,000 messages in 1,000,000 conversations over 365 days.

The load writes the raw tables with their secondary indexes and the roll-up
triggers set aside (COPY on PostgreSQL, one transaction of executemany on SQLite),
then builds the indexes and the roll-ups set-based, as `rebuild-rollups` does.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from sqlalchemy.engine import make_url

from bot.reports.page import render
from bot.services.reports import ReportFilters, build_report
from bot.services.stats import StatsRequest, period_window, stats_report, summary_report
from storage import rollups, stats
from storage.db import Database
from storage.stats import compute
from tests.services import POSTGRES_URL

NOW = datetime(2026, 6, 1, tzinfo=UTC)
TZ = ZoneInfo("Asia/Tokyo")  # NOW is 09:00 there
DAYS = 90
NETWORKS = ("telegram", "meta", "whatsapp", "x", "generic")
TEAMS = ("support", "sales", None)
TARGETS_MS = {"postgresql": 50.0, "sqlite": 150.0}  # compute 30 days
SUMMARY_TARGET_MS = 30.0
REPORTS_TARGET_MS = 300.0


@dataclass
class Data:
    conversations: list[tuple[Any, ...]] = field(default_factory=list)
    messages: list[tuple[Any, ...]] = field(default_factory=list)
    replies: list[tuple[Any, ...]] = field(default_factory=list)
    turns: list[tuple[Any, ...]] = field(default_factory=list)


CONVERSATION_COLUMNS = (
    "id",
    "network",
    "external_key",
    "customer_id",
    "customer_name",
    "status",
    "team",
    "channel",
    "thread_ts",
    "root_text",
    "created_at",
    "last_customer_at",
    "last_reply_at",
    "resolved_at",
    "version",
    "rendered_version",
)
MESSAGE_COLUMNS = (
    "id",
    "conversation_id",
    "network",
    "external_id",
    "author_id",
    "author_name",
    "text",
    "sent_at",
    "received_at",
    "broadcast",
    "state",
    "attempts",
)
REPLY_COLUMNS = (
    "id",
    "conversation_id",
    "network",
    "source",
    "kind",
    "slack_channel",
    "slack_ts",
    "user_id",
    "text",
    "sent_at",
    "state",
    "delivered_at",
    "attempts",
    "warned",
)
TURN_COLUMNS = (
    "id",
    "conversation_id",
    "network",
    "team",
    "is_first",
    "started_at",
    "answered_at",
    "reply_id",
    "response_seconds",
)


def generate(conversations: int, messages: int, days: int = DAYS, seed: int = 6) -> Data:
    """Conversations of ~10 messages in 1-6 turns; 90% end answered, a quarter resolved.

    Each conversation is laid out from offset 0, then placed uniformly so that it
    ends before NOW: the message rate stays even up to the last day.
    """
    rng = random.Random(seed)
    data = Data()
    start = NOW - timedelta(days=days)
    span = days * 86400.0
    per_conversation = messages // conversations
    reply_id = 0
    for conversation_id in range(1, conversations + 1):
        network = NETWORKS[conversation_id % len(NETWORKS)]
        team = TEAMS[rng.randrange(len(TEAMS))]
        count = per_conversation + (1 if conversation_id <= messages % conversations else 0)
        turn_count = rng.randint(1, min(6, count))
        cuts = sorted(rng.sample(range(1, count), turn_count - 1))
        sizes = [b - a for a, b in zip([0, *cuts], [*cuts, count], strict=True)]
        offset = 0.0
        sent: list[float] = []
        team_messages: list[tuple[str, float, str]] = []
        turns: list[tuple[float, float | None]] = []
        for index, size in enumerate(sizes):
            turn_start = offset
            for _ in range(size):
                sent.append(offset)
                offset += rng.uniform(5, 180)
            for kind, state in (("note", "internal"), ("reply", "failed")):
                if rng.random() < 0.05:
                    team_messages.append((kind, offset, state))
            answered: float | None = None
            if not (index == len(sizes) - 1 and rng.random() < 0.1):
                wait = min(rng.lognormvariate(6.5, 1.4), 3 * 86400.0)
                answered = max(offset, turn_start + wait)
                team_messages.append(("reply", answered, "sent"))
                offset = answered + rng.uniform(60, 86400)
            turns.append((turn_start, answered))
        last = max([*sent, *(at for _, at, _ in team_messages)])
        base = start + timedelta(seconds=rng.uniform(0, span - last - 60))

        def at(seconds: float, base: datetime = base) -> datetime:
            return base + timedelta(seconds=seconds)

        data.messages.extend((conversation_id, network, at(seconds)) for seconds in sent)
        reply_ids: dict[float, int] = {}
        for kind, seconds, state in team_messages:
            reply_id += 1
            reply_ids[seconds] = reply_id
            data.replies.append((reply_id, conversation_id, network, kind, at(seconds), state))
        for index, (turn_start, answered) in enumerate(turns):
            data.turns.append(
                (
                    conversation_id,
                    network,
                    team if answered is not None else None,
                    index == 0,
                    at(turn_start),
                    None if answered is None else at(answered),
                    None if answered is None else reply_ids[answered],
                )
            )
        answers = [seconds for _, seconds in turns if seconds is not None]
        last_reply = at(answers[-1]) if answers else None
        resolved_at = None
        if last_reply is not None and rng.random() < 0.25:
            resolved_at = min(last_reply + timedelta(hours=1), NOW - timedelta(seconds=1))
        data.conversations.append(
            (conversation_id, network, team, at(0), at(sent[-1]), last_reply, resolved_at)
        )
    return data


def rows(data: Data) -> dict[str, tuple[tuple[str, ...], list[tuple[Any, ...]]]]:
    """Full table rows, each table in time order (as production writes them)."""
    conversations = [
        (
            cid,
            network,
            f"k{cid}",
            f"u{cid}",
            f"Customer {cid}",
            "resolved" if resolved else "open",
            team,
            "C0INBOX01",
            f"{1700000000 + cid}.000100",
            "hello",
            created,
            last_customer,
            last_reply,
            resolved,
            1,
            1,
        )
        for cid, network, team, created, last_customer, last_reply, resolved in data.conversations
    ]
    messages = [
        (
            index,
            cid,
            network,
            f"m{index}",
            f"u{cid}",
            f"Customer {cid}",
            "hello",
            sent,
            sent,
            False,
            "posted",
            0,
        )
        for index, (cid, network, sent) in enumerate(
            sorted(data.messages, key=lambda message: message[2]), start=1
        )
    ]
    replies = [
        (
            rid,
            cid,
            network,
            "slack",
            kind,
            "C0INBOX01",
            f"{sent.timestamp():.6f}.{rid}",
            "U0AGENT01",
            "hi",
            sent,
            state,
            sent if state == "sent" else None,
            0,
            False,
        )
        for rid, cid, network, kind, sent, state in sorted(data.replies, key=lambda r: r[4])
    ]
    turns = [
        (
            index,
            cid,
            network,
            team,
            first,
            started,
            answered,
            rid,
            (answered - started).total_seconds() if answered else None,
        )
        for index, (cid, network, team, first, started, answered, rid) in enumerate(
            sorted(data.turns, key=lambda turn: turn[4]), start=1
        )
    ]
    return {
        "conversation": (CONVERSATION_COLUMNS, conversations),
        "customer_message": (MESSAGE_COLUMNS, messages),
        "team_reply": (REPLY_COLUMNS, replies),
        "turn": (TURN_COLUMNS, turns),
    }


def _sqlite_value(value: Any) -> Any:
    """What `UTCDateTime` stores on SQLite: naive UTC text."""
    if isinstance(value, datetime):
        return (
            value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        )
    return value


def load_sqlite(
    path: Path, tables: dict[str, tuple[tuple[str, ...], list[tuple[Any, ...]]]]
) -> None:
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA synchronous=OFF")
        names = ", ".join(f"'{table}'" for table in tables)
        aside = connection.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger')"
            f" AND sql IS NOT NULL AND tbl_name IN ({names})"
        ).fetchall()
        for kind, name, _ in aside:
            connection.execute(f"DROP {kind.upper()} {name}")
        for table, (columns, values) in tables.items():
            placeholders = ", ".join("?" for _ in columns)
            connection.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})",
                ([_sqlite_value(value) for value in row] for row in values),
            )
        for _, _, sql in aside:
            connection.execute(sql)
        for statement in rollups.rebuild_statements("sqlite"):
            connection.execute(statement)
        connection.commit()
        connection.execute("ANALYZE")
        connection.commit()
    finally:
        connection.close()


async def load_postgres(
    dsn: str, tables: dict[str, tuple[tuple[str, ...], list[tuple[Any, ...]]]]
) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        async with connection.transaction():
            aside = await connection.fetch(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY($1::text[])"
                " AND indexname NOT IN (SELECT conname FROM pg_constraint)",
                list(tables),
            )
            for name, _ in aside:
                await connection.execute(f'DROP INDEX "{name}"')
            for table in tables:  # the roll-up triggers and the foreign key checks
                await connection.execute(f"ALTER TABLE {table} DISABLE TRIGGER ALL")
            for table, (columns, values) in tables.items():
                await connection.copy_records_to_table(table, records=values, columns=columns)
                await connection.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {len(values) + 1})"
                )
            await connection.execute("SET LOCAL maintenance_work_mem = '512MB'")
            for _, definition in aside:
                await connection.execute(definition)
            for table in tables:
                await connection.execute(f"ALTER TABLE {table} ENABLE TRIGGER ALL")
            for statement in rollups.rebuild_statements("postgresql"):
                await connection.execute(statement)
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(POSTGRES_URL))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def _stopwatch(label: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    print(f"  {label}: {time.perf_counter() - started:.1f} s", flush=True)


async def _median_ms(work: Callable[[], Awaitable[object]], runs: int) -> float:
    await work()  # warm the caches and the connection pool
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        await work()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


async def measure(db: Database, runs: int) -> dict[str, float]:
    # NOW is 09:00 in TZ: the summary of the day before is posted then.
    yesterday = NOW.astimezone(TZ).date() - timedelta(days=1)
    today_request = StatsRequest("today", period_window("today", NOW, TZ))

    async def month() -> object:
        return await compute(db, NOW - timedelta(days=30), NOW, now=NOW)

    async def summary() -> object:
        return await summary_report(db, yesterday, TZ, NOW)

    async def today() -> object:
        return await stats_report(db, today_request, NOW)

    since = NOW - timedelta(days=30)

    async def reports() -> object:
        report = await build_report(db, ReportFilters("30d"), NOW, TZ)
        return render(report, lambda _: "?", networks=NETWORKS, teams=("support", "sales"))

    async def part(query: Any, *args: object) -> object:
        return await stats._read(db, query, *args)

    rolled = await part(stats._received, since, NOW, None, None)
    raw = await part(stats.received_raw, since, NOW, None, None)
    assert rolled == raw, "the roll-ups disagree with the raw messages"
    figures = await compute(db, since, NOW, now=NOW)
    print(
        f"  30 days: received {figures['received']}, turns {figures['turns']}, "
        f"answered {figures['answered_turns']}, unanswered {figures['unanswered']}, "
        f"median {figures['median_response_seconds']} s",
        flush=True,
    )
    works: dict[str, Callable[[], Awaitable[object]]] = {
        "compute 30 days": month,
        "daily summary (2 days + oldest 5)": summary,
        "/social-stats today (+ oldest 5)": today,
        "/reports 30 days (HTML)": reports,
        "  received, roll-ups (30 days)": lambda: part(stats._received, since, NOW, None, None),
        "  received, raw messages (30 days)": lambda: part(
            stats.received_raw, since, NOW, None, None
        ),
        "  answered turns (30 days)": lambda: part(
            stats._answered_turns, since, NOW, NOW, None, None
        ),
        "  unanswered (as of now)": lambda: part(stats._unanswered, NOW, None, None),
    }
    results = {}
    for label, work in works.items():
        results[label] = await _median_ms(work, runs)
        print(f"  {label.strip()}: {results[label]:.1f} ms", flush=True)
    return results


async def bench(dialect: str, tables: dict[str, Any], runs: int) -> dict[str, float]:
    print(f"{dialect}:", flush=True)
    if dialect == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite+aiosqlite:///{folder}/bench.db"
            db = Database(url)
            await db.migrate()
            with _stopwatch("bulk load"):
                load_sqlite(Path(folder) / "bench.db", tables)
            try:
                return await measure(db, runs)
            finally:
                await db.dispose()
    name = f"relaydesk_bench_{secrets.token_hex(4)}"
    await _admin(f'CREATE DATABASE "{name}"')
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    db = Database(url)
    try:
        await db.migrate()
        with _stopwatch("bulk load (COPY)"):
            await load_postgres(_asyncpg_dsn(url), tables)
        return await measure(db, runs)
    finally:
        await db.dispose()
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def print_table(results: dict[str, dict[str, float]], scale: str) -> None:
    print(f"\nmedian ms ({scale})")
    dialects = list(results)
    labels = list(next(iter(results.values())))
    print(f"{'query':<36}" + "".join(f"{dialect:>12}" for dialect in dialects))
    for label in labels:
        print(f"{label:<36}" + "".join(f"{results[d][label]:>12.1f}" for d in dialects))
    for dialect, figures in results.items():
        checks = (
            ("compute 30 days", figures["compute 30 days"], TARGETS_MS[dialect]),
            ("daily summary", figures["daily summary (2 days + oldest 5)"], SUMMARY_TARGET_MS),
            ("/reports", figures["/reports 30 days (HTML)"], REPORTS_TARGET_MS),
        )
        print(
            f"{dialect}: "
            + ", ".join(
                f"{label} {value:.0f} ms < {target:.0f}: {'PASS' if value < target else 'MISS'}"
                for label, value, target in checks
            )
        )


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="1/20 of the data")
    size.add_argument(
        "--large", action="store_true", help="10,000,000 messages, 1,000,000 conversations, a year"
    )
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    args = parser.parse_args(argv)
    conversations, messages, days = 100_000, 1_000_000, DAYS
    if args.quick:
        conversations, messages = conversations // 20, messages // 20
    if args.large:
        conversations, messages, days = 1_000_000, 10_000_000, 365
    print(f"generating {messages} messages in {conversations} conversations over {days} days")
    with _stopwatch("generate"):
        data = generate(conversations, messages, days)
        turns, team_messages = len(data.turns), len(data.replies)
        tables = rows(data)
        del data
    print(f"  {turns} turns, {team_messages} team messages (replies, notes, failed deliveries)")
    results = {}
    for dialect in ("postgresql", "sqlite"):
        if args.only in (None, dialect):
            results[dialect] = await bench(dialect, tables, args.runs)
    print_table(results, f"{messages} messages, {conversations} conversations, {days} days")


if __name__ == "__main__":
    asyncio.run(main())
