"""How `serve` runs its event loop and treats start-up garbage (bot/__main__.py)."""

from __future__ import annotations

import gc
import importlib.util
from collections.abc import Iterator

import pytest
from aiohttp import web

from bot.__main__ import _event_loop, _freeze_startup_objects


def test_serve_uses_uvloop_when_installed() -> None:
    loop = _event_loop()
    try:
        if importlib.util.find_spec("uvloop") is None:
            assert type(loop).__module__.startswith("asyncio")
        else:
            assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """The test process must not keep its objects frozen afterwards."""
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("unfrozen")
async def test_start_up_objects_are_frozen_out_of_full_collections() -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    survivor = [object() for _ in range(100)]  # a start-up object still in use
    await _freeze_startup_objects(web.Application())
    assert gc.get_freeze_count() >= len(survivor)
    assert not any(obj is survivor for obj in gc.get_objects())  # out of the collector's sight
