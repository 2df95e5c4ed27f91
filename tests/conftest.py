from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.harness import Bot, start_bot


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    """The whole bot on SQLite and in-memory coordination, against the fakes."""
    running, stop = await start_bot(tmp_path)
    try:
        yield running
    finally:
        await stop()
