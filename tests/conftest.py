from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Generator
from pathlib import Path

import pytest

from tests.harness import Bot, start_bot
from tests.pg import fresh_postgres
from tests.services import require_redis


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> Generator[None, None, None]:
    """`make test` spreads the tests over several workers (`--dist loadgroup`). The tests
    that ask for one of our module- or session-scoped fixtures (a demo run, say) go to one
    worker, so that the fixture is built once rather than once per worker.

    Afterwards, fail loudly where xdist dropped the groups (pytest-xdist 3.8 does that
    silently under pytest 9.2): the chaos lanes depend on them too."""
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        for name, definitions in item._fixtureinfo.name2fixturedefs.items():
            shared = definitions[-1]
            if shared.baseid and shared.scope in ("module", "session"):  # baseid "": a plugin's
                item.add_marker(pytest.mark.xdist_group(f"{shared.baseid}::{name}"))
    yield
    if getattr(config.option, "loadgroup", False):  # set on xdist's workers
        for item in items:
            if item.get_closest_marker("xdist_group") and "@" not in item.nodeid:
                raise pytest.UsageError(f"pytest-xdist dropped the xdist_group of {item.nodeid}")


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
