"""The scheduler's rounds and leases, and the conversation reference parser."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import pytest

from bot.scheduler import Scheduler
from bot.services.refs import ConversationRef, parse_conversation_ref, split_ref
from storage.coordination import MemoryCoordinator
from storage.db import DatabaseUnavailable
from tests.escalation.support import T0, Clock


async def test_a_round_runs_each_job_with_the_clock_reading() -> None:
    clock = Clock(T0)
    seen: list[tuple[str, datetime]] = []

    async def job(name: str, now: datetime) -> None:
        seen.append((name, now))

    scheduler = Scheduler(MemoryCoordinator(), interval=15, clock=clock)
    scheduler.add("a", lambda now: job("a", now))
    scheduler.add("b", lambda now: job("b", now))
    assert await scheduler.tick() == ["a", "b"]
    assert seen == [("a", T0), ("b", T0)]
    with pytest.raises(ValueError, match="already registered"):
        scheduler.add("a", lambda now: job("a", now))


async def test_a_job_runs_in_one_process_at_a_time() -> None:
    shared = MemoryCoordinator()  # what Redis is to several processes
    started, release = asyncio.Event(), asyncio.Event()
    runs = 0

    async def slow(now: datetime) -> None:
        nonlocal runs
        runs += 1
        started.set()
        await release.wait()

    first, second = (Scheduler(shared, interval=15, clock=Clock()) for _ in range(2))
    first.add("sweep", slow)
    second.add("sweep", slow)
    running = asyncio.create_task(first.tick())
    await started.wait()
    assert await second.tick() == []  # the lease is held
    release.set()
    assert await running == ["sweep"]
    assert await second.tick() == ["sweep"]  # released when the job ended
    assert runs == 2


async def test_an_outage_is_logged_and_the_other_jobs_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran: list[str] = []

    async def down(now: datetime) -> None:
        raise DatabaseUnavailable("connection refused")

    async def fine(now: datetime) -> None:
        ran.append("fine")

    scheduler = Scheduler(MemoryCoordinator(), interval=15)
    scheduler.add("down", down)
    scheduler.add("fine", fine)
    with caplog.at_level(logging.WARNING, logger="bot.scheduler"):
        assert await scheduler.tick() == ["fine"]
    assert ran == ["fine"]
    assert [r.getMessage() for r in caplog.records] == [
        "job down failed, retrying next round: connection refused"
    ]


async def test_run_repeats_every_interval_and_stops_cleanly_when_cancelled() -> None:
    coordinator = MemoryCoordinator()
    rounds = 0
    third = asyncio.Event()

    async def job(now: datetime) -> None:
        nonlocal rounds
        rounds += 1
        if rounds == 3:
            third.set()
        await asyncio.sleep(0)

    scheduler = Scheduler(coordinator, interval=0.01)
    scheduler.add("job", job)
    task = asyncio.create_task(scheduler.run())
    await asyncio.wait_for(third.wait(), 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await coordinator.lock("scheduler:job", 1) is not None  # no lease left behind


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("#12", ConversationRef(number=12)),
        ("12", ConversationRef(number=12)),
        (
            "https://acme.slack.com/archives/C0INBOX01/p1712345678123456",
            ConversationRef(channel="C0INBOX01", ts="1712345678.123456"),
        ),
        (
            "<https://acme.slack.com/archives/C0INBOX01/p1712345678123456|link>",
            ConversationRef(channel="C0INBOX01", ts="1712345678.123456"),
        ),
        (
            "https://acme.enterprise.slack.com/archives/C0INBOX01/p1712345699000001"
            "?thread_ts=1712345678.123456&cid=C0INBOX01",
            ConversationRef(
                channel="C0INBOX01", ts="1712345699.000001", thread_ts="1712345678.123456"
            ),
        ),
        ("#", None),
        ("#-1", None),
        ("#1234567890", None),
        ("<#C0INBOX01|inbox>", None),
        ("https://evil.example/archives/C0INBOX01/p1712345678123456", None),
        ("https://acme.slack.com/archives/C0INBOX01/", None),
    ],
)
def test_parse_conversation_ref(text: str, expected: ConversationRef | None) -> None:
    assert parse_conversation_ref(text) == expected


def test_split_ref() -> None:
    assert split_ref("  #3   angry  customer ") == ("#3", "angry  customer")
    assert split_ref("#3") == ("#3", "")
    assert split_ref("   ") == ("", "")
