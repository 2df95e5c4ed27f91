"""Timers: every `SWEEP_SECONDS` run each registered job, one process at a time per job.

A job runs under a coordination lease named after it, so with several `serve`
processes only one runs a given job at any moment; the others skip that round.
The lease is kept alive while the job runs and released when it ends. Jobs must
be idempotent (their effects are guarded in SQL), because a lease can still be
lost, e.g. when Redis restarts. Jobs get the scheduler's clock reading, which
tests inject.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from bot.slack import SlackError
from storage.coordination import CoordinationUnavailable, Coordinator, Lease
from storage.db import DatabaseUnavailable
from storage.models import utcnow

log = logging.getLogger(__name__)

Job = Callable[[datetime], Awaitable[object]]

# A job's failure that says a dependency is down: logged, and the job runs again next round.
OUTAGES = (DatabaseUnavailable, CoordinationUnavailable, SlackError)


class Scheduler:
    def __init__(
        self,
        coordinator: Coordinator,
        *,
        interval: float,
        clock: Callable[[], datetime] = utcnow,
        lease_seconds: float | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval!r}")
        self._coordinator = coordinator
        self._interval = interval
        self._clock = clock
        self._lease_seconds = lease_seconds or max(60.0, 4 * interval)
        self._jobs: dict[str, Job] = {}

    def add(self, name: str, job: Job) -> None:
        """Run `job(now)` every round; `name` is its lease key across processes."""
        if name in self._jobs:
            raise ValueError(f"a job named {name!r} is already registered")
        self._jobs[name] = job

    async def run(self) -> None:
        """Run rounds every `interval` seconds until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self.tick()
            await asyncio.sleep(max(0.0, self._interval - (loop.time() - started)))

    async def tick(self) -> list[str]:
        """One round: each job whose lease this process gets; returns the names it ran."""
        ran = []
        for name, job in self._jobs.items():
            try:
                if await self._run_job(name, job):
                    ran.append(name)
            except OUTAGES as exc:
                log.warning("job %s failed, retrying next round: %s", name, exc)
        return ran

    async def _run_job(self, name: str, job: Job) -> bool:
        lease = await self._coordinator.lock(f"scheduler:{name}", self._lease_seconds)
        if lease is None:
            return False
        keepalive = asyncio.create_task(self._keep(lease, name), name=f"lease:{name}")
        try:
            await job(self._clock())
        finally:
            keepalive.cancel()  # not awaited: awaiting it could swallow our own cancellation
            with contextlib.suppress(CoordinationUnavailable):  # it expires by itself
                await self._coordinator.release(lease)
        return True

    async def _keep(self, lease: Lease, name: str) -> None:
        while True:
            await asyncio.sleep(self._lease_seconds / 3)
            try:
                held = await self._coordinator.extend(lease, self._lease_seconds)
            except CoordinationUnavailable as exc:
                log.warning("job %s: cannot extend its lease: %s", name, exc)
                continue
            if not held:
                log.warning("job %s lost its lease; another process may run it too", name)
                return
