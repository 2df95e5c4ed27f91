"""The relay's wake-ups: a burst is coalesced, and Redis being down loses nothing."""

from __future__ import annotations

import asyncio

from bot.services.relay import WAKE_TOPIC, Waker
from storage.coordination import CoordinationUnavailable, MemoryCoordinator


class CountingCoordinator(MemoryCoordinator):
    """The in-memory coordinator, counting publishes (optionally refusing them)."""

    def __init__(self, down: bool = False) -> None:
        super().__init__()
        self.published = 0
        self.down = down

    async def publish(self, topic: str) -> None:
        self.published += 1
        if self.down:
            raise CoordinationUnavailable("Redis is unreachable (test)")
        await asyncio.sleep(0.01)  # a publish takes a round trip
        await super().publish(topic)


async def test_a_burst_of_wake_ups_is_one_publish_and_one_behind_it() -> None:
    coordinator = CountingCoordinator()
    waiter = coordinator.waiter(WAKE_TOPIC)
    waker = Waker(coordinator)
    for _ in range(50):  # before the publish has started: one publish covers them all
        waker.wake()
    await asyncio.sleep(0)  # now a publish is in flight
    for _ in range(50):  # one more publish, after it, covers these
        waker.wake()
    await waker.close()
    assert coordinator.published == 2
    await asyncio.wait_for(waiter.wait(1.0), 1.0)  # the dispatcher was woken
    waker.wake()  # later wake-ups publish again
    await waker.close()
    assert coordinator.published == 3
    await waiter.close()


async def test_wake_up_when_redis_is_down_does_not_fail_the_caller() -> None:
    coordinator = CountingCoordinator(down=True)
    waker = Waker(coordinator)
    waker.wake()
    waker.wake()
    await waker.close()  # raises nothing: the stored work waits for the next scan
    assert coordinator.published == 1


async def test_wake_ups_spread_over_time_publish_at_most_once_per_interval() -> None:
    coordinator = CountingCoordinator()
    waker = Waker(coordinator, every=0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    while loop.time() - started < 0.5:  # a stored batch every 5 ms for half a second
        waker.wake()
        await asyncio.sleep(0.005)
    await waker.close()
    # at 0, 0.2 and 0.4 s, plus the last wanted one at 0.6 s: not one per batch (100)
    assert 3 <= coordinator.published <= 4
