"""Stopping background tasks on shutdown survives a lost cancellation."""

from __future__ import annotations

import asyncio

from bot.web import stop_task


async def test_a_task_that_lost_its_cancellation_is_cancelled_again() -> None:
    rounds = []

    async def scheduler_like() -> None:
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                rounds.append("cancellation lost")  # as asyncio.wait_for can on 3.11
                if len(rounds) > 1:
                    raise
            await asyncio.sleep(10)  # the next round

    task = asyncio.create_task(scheduler_like())
    await asyncio.sleep(0)
    await asyncio.wait_for(stop_task(task), 5)
    assert task.cancelled()
    assert rounds == ["cancellation lost"]


async def test_a_task_that_ends_on_its_first_cancellation_stops_at_once() -> None:
    task = asyncio.create_task(asyncio.sleep(10))
    await asyncio.sleep(0)
    await asyncio.wait_for(stop_task(task), 0.2)
    assert task.cancelled()
