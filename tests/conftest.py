from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.harness import Bot, start_bot
from tests.pg import fresh_postgres
from tests.services import require_redis


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    """The whole bot on SQLite and in-memory coordination, against the fakes."""
    running, stop = await start_bot(tmp_path)
    try:
        yield running
    finally:
        await stop()


@pytest.fixture(params=["sqlite+memory", "postgres+redis"])
async def any_bot(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bot]:
    """The whole bot on the embedded defaults, and on PostgreSQL with Redis."""
    if request.param == "sqlite+memory":
        running, stop = await start_bot(tmp_path)
        try:
            yield running
        finally:
            await stop()
        return
    redis_url = require_redis()
    async with fresh_postgres() as database_url:
        running, stop = await start_bot(
            tmp_path,
            database_url=database_url,
            env={"REDIS_URL": redis_url},
            coordination_prefix=f"test-{uuid.uuid4().hex[:8]}:",
        )
        try:
            yield running
        finally:
            await stop()
