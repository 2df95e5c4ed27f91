"""A fresh PostgreSQL database, our own redis-server and the fakes, for every chaos test."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.chaos.cluster import Cluster, Fakes, RedisServer, TcpProxy
from tests.pg import fresh_postgres

# Each chaos test runs serve processes and keeps timing promises (a take-over within
# 30 s, an exit within 10 s). Under `make test` they run in two lanes, one test at a time
# in each, beside the rest of the suite: the modules with three-process clusters in one,
# those with one or two processes in the other, so that at most five serve processes (and
# their PostgreSQL pools) run at once. The longer lane bounds the suite's wall time: each
# took 180-190 s of the short suite on 2026-12-07 (`--durations`).
LANES = {
    "test_three_processes.py": "chaos-3",
    "test_kill.py": "chaos-3",
    "test_kill_burst.py": "chaos-3",
    "test_redis.py": "chaos-3",
    "test_postgres_outage.py": "chaos-2",
    "test_slack_outage.py": "chaos-2",
    "test_slack_timeout.py": "chaos-2",
    "test_sql_writes.py": "chaos-2",
    "test_sigterm.py": "chaos-2",
    "test_burst.py": "chaos-2",
}


@pytest.hookimpl(tryfirst=True)  # before xdist turns the marks into work units
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if item.path.parent == here:
            item.add_marker(pytest.mark.xdist_group(LANES.get(item.path.name, "chaos-3")))


@dataclass
class Stack:
    workdir: Path
    fakes: Fakes
    redis: RedisServer
    database_url: str
    clusters: list[Cluster]
    proxies: list[TcpProxy]

    def cluster(self, size: int, **kwargs: object) -> Cluster:
        """`size` serve processes on this database and Redis (stopped by the fixture)."""
        cluster = Cluster(
            self.workdir,
            self.fakes,
            str(kwargs.pop("database_url", self.database_url)),
            self.redis.url,
            size,
            **kwargs,  # type: ignore[arg-type]
        )
        self.clusters.append(cluster)
        return cluster

    async def proxied_database(self, latency: float = 0.0) -> tuple[TcpProxy, str]:
        """A proxy to PostgreSQL (closed by the fixture) and the database URL through it."""
        url = make_url(self.database_url)
        proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432, latency)
        await proxy.up()
        self.proxies.append(proxy)
        return proxy, url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)


def require_redis_server() -> None:
    if shutil.which("redis-server"):
        return
    if os.environ.get("CI") == "true":
        pytest.fail("redis-server is not installed (CI=true: a missing service fails the run)")
    pytest.skip("redis-server is not installed")


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    require_redis_server()
    async with fresh_postgres() as database_url:
        fakes = await Fakes.start()
        redis = await RedisServer(tmp_path / "redis").start()
        running = Stack(tmp_path, fakes, redis, database_url, [], [])
        try:
            yield running
        finally:
            for cluster in running.clusters:
                await cluster.close()
            for proxy in running.proxies:
                await proxy.down()
            await redis.stop()
            await fakes.stop()
