"""Coordination between processes: de-duplication, locks, rate limits, wake-ups.

SQL stays the source of truth; this port is the fast path and the pacing.
`RedisCoordinator` (storage/redis_coordination.py) serves several processes;
`MemoryCoordinator` is its in-process twin for a single process. One contract
test suite runs against both.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class CoordinationUnavailable(Exception):
    """The coordination backend (Redis) cannot be reached."""


@dataclass(frozen=True)
class Lease:
    """A held lock: `token` proves ownership on release/extend."""

    key: str
    token: str


class Waiter(Protocol):
    async def wait(self, timeout: float) -> bool:
        """Wait for a publish on the topic; True if one came (coalesced since last wait).

        A publish made after the waiter was created is never lost, even if nobody was
        waiting at that moment. True may be spurious (Redis: right after (re)subscribing,
        or while disconnected), so callers re-check the source of truth after every wake-up.
        """

    async def close(self) -> None: ...


class Coordinator(Protocol):
    async def first_seen(self, key: str, ttl: float) -> bool:
        """SET NX: True only for the first caller within `ttl` seconds."""

    async def forget(self, key: str) -> None:
        """Drop a `first_seen` key (the work it guarded failed and must be redone)."""

    async def lock(self, key: str, ttl: float, wait: float = 0.0) -> Lease | None:
        """Take an exclusive lease for `ttl` seconds, waiting up to `wait`; None if busy."""

    async def extend(self, lease: Lease, ttl: float) -> bool:
        """Extend a lease we still hold; False if it was lost."""

    async def release(self, lease: Lease) -> None:
        """Release a lease if we still hold it (never someone else's)."""

    async def reserve(self, key: str, rate: float, burst: int) -> float:
        """Reserve one action under a `rate`/second limit with `burst` (GCRA).

        Returns how many seconds the caller must wait before acting (0.0: now).
        The slot is taken either way, so callers simply sleep that long. While `key`
        is paused no slot is given before the pause ends, and the pace then restarts
        without a burst.
        """

    async def pause(self, key: str, seconds: float) -> None:
        """Nobody may act on `key` for `seconds` (e.g. Slack's Retry-After).

        A pause already running longer is kept, never shortened.
        """

    async def paused(self, key: str) -> float:
        """Seconds left of the pause on `key` (0.0: not paused)."""

    async def publish(self, topic: str) -> None:
        """Wake every waiter on `topic`, in every process."""

    def waiter(self, topic: str) -> Waiter:
        """A subscription to `topic` that stays open between waits."""

    async def ping(self) -> None:
        """Raise `CoordinationUnavailable` if the backend does not answer."""

    async def close(self) -> None: ...


DEFAULT_PREFIX = "relaydesk:"

Clock = Callable[[], float]

# Expired entries are swept whenever a table has doubled since the last sweep (amortised O(1)).
_SWEEP_MIN = 1024


def validate_ttl(ttl: float) -> None:
    if ttl <= 0:
        raise ValueError(f"ttl must be positive, got {ttl!r}")


def gcra_params(rate: float, burst: int) -> tuple[float, float]:
    """GCRA emission interval and burst tolerance, in seconds, for `rate`/s and `burst`."""
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate!r}")
    if burst < 1:
        raise ValueError(f"burst must be at least 1, got {burst!r}")
    interval = 1.0 / rate
    return interval, (burst - 1) * interval


class _Expiring:
    """Keys whose value is also the instant after which they are useless."""

    def __init__(self) -> None:
        self._data: dict[str, float] = {}
        self._sweep_at = _SWEEP_MIN

    def get(self, key: str, now: float) -> float | None:
        value = self._data.get(key)
        return value if value is not None and value > now else None

    def set(self, key: str, value: float, now: float) -> None:
        self._data[key] = value
        if len(self._data) >= self._sweep_at:
            self._data = {k: v for k, v in self._data.items() if v > now}
            self._sweep_at = max(_SWEEP_MIN, 2 * len(self._data))

    def pop(self, key: str) -> None:
        self._data.pop(key, None)


class _MemoryWaiter:
    def __init__(self, coordinator: MemoryCoordinator, topic: str) -> None:
        self._coordinator = coordinator
        self._topic = topic
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        if not self._event.is_set():
            try:
                async with asyncio.timeout(timeout):
                    await self._event.wait()
            except TimeoutError:
                return False
        self._event.clear()
        return True

    async def close(self) -> None:
        self._coordinator._drop_waiter(self._topic, self)


class MemoryCoordinator:
    """In-process twin of `RedisCoordinator`, for a single process.

    `clock` measures TTLs and rate-limit state, so tests can move time by hand;
    waiting (`lock(wait=...)`, `Waiter.wait`) always happens in real time on the event loop.
    """

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._seen = _Expiring()
        self._tats = _Expiring()  # GCRA theoretical arrival times
        self._pauses = _Expiring()  # key -> instant the pause ends
        self._locks: dict[str, tuple[str, float]] = {}  # key -> (token, expiry)
        # Set and replaced on every release, so lock waiters wake without polling.
        self._released = asyncio.Event()
        self._waiters: dict[str, set[_MemoryWaiter]] = {}

    async def first_seen(self, key: str, ttl: float) -> bool:
        validate_ttl(ttl)
        now = self._clock()
        if self._seen.get(key, now) is not None:
            return False
        self._seen.set(key, now + ttl, now)
        return True

    async def forget(self, key: str) -> None:
        self._seen.pop(key)

    def _try_lock(self, key: str, ttl: float) -> Lease | None:
        now = self._clock()
        held = self._locks.get(key)
        if held is not None and held[1] > now:
            return None
        token = secrets.token_hex(16)
        self._locks[key] = (token, now + ttl)
        return Lease(key, token)

    async def lock(self, key: str, ttl: float, wait: float = 0.0) -> Lease | None:
        validate_ttl(ttl)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while (lease := self._try_lock(key, ttl)) is None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            # Sleep until any release, the holder's expiry or our deadline, whichever is first.
            released = self._released
            holder_left = self._locks[key][1] - self._clock()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, holder_left)):
                    await released.wait()
        return lease

    async def extend(self, lease: Lease, ttl: float) -> bool:
        validate_ttl(ttl)
        now = self._clock()
        held = self._locks.get(lease.key)
        if held is None or held[0] != lease.token or held[1] <= now:
            return False
        self._locks[lease.key] = (lease.token, now + ttl)
        return True

    async def release(self, lease: Lease) -> None:
        held = self._locks.get(lease.key)
        if held is None or held[0] != lease.token:
            return
        del self._locks[lease.key]
        self._released.set()
        self._released = asyncio.Event()

    async def reserve(self, key: str, rate: float, burst: int) -> float:
        interval, tolerance = gcra_params(rate, burst)
        now = self._clock()
        stored = self._tats.get(key, now)
        tat = now if stored is None else stored
        pause_ends = self._pauses.get(key, now)
        if pause_ends is not None:
            tat = max(tat, pause_ends + tolerance)
        self._tats.set(key, tat + interval, now)
        return max(0.0, tat - tolerance - now)

    async def pause(self, key: str, seconds: float) -> None:
        validate_ttl(seconds)
        now = self._clock()
        ends = now + seconds
        if ends > (self._pauses.get(key, now) or now):
            self._pauses.set(key, ends, now)

    async def paused(self, key: str) -> float:
        now = self._clock()
        ends = self._pauses.get(key, now)
        return 0.0 if ends is None else ends - now

    async def publish(self, topic: str) -> None:
        for waiter in self._waiters.get(topic, ()):
            waiter.wake()

    def waiter(self, topic: str) -> Waiter:
        waiter = _MemoryWaiter(self, topic)
        self._waiters.setdefault(topic, set()).add(waiter)
        return waiter

    def _drop_waiter(self, topic: str, waiter: _MemoryWaiter) -> None:
        waiters = self._waiters.get(topic)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del self._waiters[topic]

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._waiters.clear()


def make_coordinator(redis_url: str | None, *, prefix: str = DEFAULT_PREFIX) -> Coordinator:
    """`RedisCoordinator` when a URL is configured (several processes), else in-memory."""
    if redis_url is None:
        return MemoryCoordinator()
    from storage.redis_coordination import RedisCoordinator

    return RedisCoordinator.from_url(redis_url, prefix=prefix)
