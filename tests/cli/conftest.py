from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes import FakeGraph, FakeSink, FakeSlack, FakeTelegram, FakeX
from tests.harness import base_environment


@dataclass
class Fakes:
    slack: FakeSlack
    telegram: FakeTelegram
    sink: FakeSink
    graph: FakeGraph
    x: FakeX
    tmp_path: Path

    def environment(self, **overrides: str) -> dict[str, str]:
        """Every network on and pointed at the fakes, SQLite in tmp_path; '' unsets a name."""
        env = base_environment(
            self.slack,
            self.telegram,
            self.sink,
            self.graph,
            self.x,
            f"sqlite+aiosqlite:///{self.tmp_path / 'relaydesk.db'}",
        )
        env.update(overrides)
        return {key: value for key, value in env.items() if value != ""}


@pytest.fixture
async def fakes(tmp_path: Path) -> AsyncIterator[Fakes]:
    started = Fakes(
        await FakeSlack().start(),
        await FakeTelegram().start(),
        await FakeSink().start(),
        await FakeGraph().start(),
        await FakeX().start(),
        tmp_path,
    )
    try:
        yield started
    finally:
        for fake in (started.slack, started.telegram, started.sink, started.graph, started.x):
            await fake.stop()
