"""Coordination between processes: de-duplication, locks, rate limits, wake-ups.

SQL stays the source of truth; this port is the fast path and the pacing.
`RedisCoordinator` (storage/redis_coordination.py) serves several processes;
`MemoryCoordinator` is its in-process twin for a single process. One contract
test suite runs against both.
"""

from __future__ import annotations

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
        """Wait for a publish on the topic; True if one came (coalesced since last wait)."""

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
        The slot is taken either way, so callers simply sleep that long.
        """

    async def publish(self, topic: str) -> None:
        """Wake every waiter on `topic`, in every process."""

    def waiter(self, topic: str) -> Waiter:
        """A subscription to `topic` that stays open between waits."""

    async def ping(self) -> None:
        """Raise `CoordinationUnavailable` if the backend does not answer."""

    async def close(self) -> None: ...
