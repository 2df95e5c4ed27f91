"""The SLA clock counts open time only, on SQLite and PostgreSQL.

Business hours Mon-Fri 09:00-18:00 in Europe/Berlin (CET, UTC+1, until Sunday
2026-03-29; CEST, UTC+2, after). SLA 30 min, repeat 15 min (tests/escalation/support.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.escalation.support import MANAGER, B, C, running
from tests.pg import fresh_postgres

HOURS = {"BUSINESS_HOURS": "mon-fri 09:00-18:00", "TIMEZONE": "Europe/Berlin"}


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc,arg-type]


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'hours.db'}"
        return
    async with fresh_postgres() as url:
        yield url


async def test_friday_1755_escalates_on_monday_at_0925(database_url: str) -> None:
    async with running(database_url, HOURS) as env:
        await env.conversation(at=utc(2026, 3, 6, 16, 55))  # Friday 17:55 in Berlin
        assert await env.tick(utc(2026, 3, 6, 17, 25)) == 0  # 30 wall-clock minutes
        assert await env.tick(utc(2026, 3, 7, 12, 0)) == 0  # Saturday
        assert await env.tick(utc(2026, 3, 9, 8, 24, 59)) == 0  # Monday 09:24:59
        assert await env.tick(utc(2026, 3, 9, 8, 25)) == 1  # Monday 09:25
        assert await env.tick(utc(2026, 3, 9, 8, 39)) == 0
        assert await env.tick(utc(2026, 3, 9, 8, 40)) == 1  # the repeat is open time too
        assert await env.dmed() == [B, C]  # B's shift began Monday 09:00 Berlin


async def test_after_downtime_the_sweep_catches_up_once(database_url: str) -> None:
    async with running(database_url, HOURS) as env:
        await env.conversation(at=utc(2026, 3, 6, 16, 55))
        # down all weekend; back at Monday 09:50: levels 1 (09:25) and 2 (09:40) are due
        assert await env.tick(utc(2026, 3, 9, 8, 50)) == 2
        assert await env.tick(utc(2026, 3, 9, 8, 51)) == 0
        assert await env.tick(utc(2026, 3, 9, 8, 55)) == 1  # level 3 at 09:55, no drift
        assert await env.tick(utc(2026, 3, 10, 12, 0)) == 0
        assert await env.dmed() == [B, C, MANAGER]
        assert await env.pages(1) == [(1, "auto", B), (2, "auto", C), (3, "auto", MANAGER)]


@pytest.mark.parametrize(
    ("sent", "due", "extra"),
    [
        (utc(2026, 3, 27, 16, 55), utc(2026, 3, 30, 7, 25), {}),  # over the spring-forward
        (utc(2026, 3, 6, 16, 45), utc(2026, 3, 9, 8, 15), {}),  # 15 min Friday, 15 Monday
        (utc(2026, 3, 6, 16, 55), utc(2026, 3, 10, 8, 25), {"HOLIDAYS": "2026-03-09"}),
    ],
    ids=["spring-forward", "across-closing", "holiday-monday"],
)
async def test_due_times(
    database_url: str, sent: datetime, due: datetime, extra: dict[str, str]
) -> None:
    async with running(database_url, {**HOURS, **extra}) as env:
        await env.conversation(at=sent)
        assert await env.tick(due - timedelta(seconds=1)) == 0
        assert await env.tick(due) == 1
