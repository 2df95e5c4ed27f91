"""What `/healthz` and `/metrics` report: SQL and Redis answering, and delivery figures.

Each dependency gets two seconds to answer; a slow one counts as down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from bot.config import Settings
from storage.coordination import CoordinationUnavailable, Coordinator
from storage.db import Database, DatabaseUnavailable
from storage.repo import Repository

ANSWER_WITHIN = 2.0  # seconds


@dataclass(frozen=True)
class HealthReport:
    healthy: bool
    status: dict[str, str]  # dependency -> "ok", "down: why", or a note
    figures: dict[str, int] = field(default_factory=dict)  # informative only


class Health:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        repo: Repository,
        coordinator: Coordinator,
        clock: Callable[[], datetime],
    ) -> None:
        self._settings = settings
        self._db = db
        self._repo = repo
        self._coordinator = coordinator
        self._clock = clock

    async def check(self) -> HealthReport:
        """SQL answers and takes writes, Redis answers (when configured); with SQL up, the
        age of the oldest pending delivery and how many failed for good (the status does
        not depend on those)."""
        status: dict[str, str] = {}
        try:
            await asyncio.wait_for(self._db.ping(), ANSWER_WITHIN)
            await asyncio.wait_for(self._db.check_writes(), ANSWER_WITHIN)
            status["sql"] = "ok"
        except (DatabaseUnavailable, TimeoutError) as exc:
            status["sql"] = f"down: {exc or 'timeout'}"
        if self._settings.redis_url is None:
            status["redis"] = "not configured (single process)"
        else:
            try:
                await asyncio.wait_for(self._coordinator.ping(), ANSWER_WITHIN)
                status["redis"] = "ok"
            except (CoordinationUnavailable, TimeoutError) as exc:
                status["redis"] = f"down: {exc or 'timeout'}"
        healthy = all(not value.startswith("down") for value in status.values())
        figures = await self._deliveries() if status["sql"] == "ok" else {}
        return HealthReport(healthy, status, figures)

    async def _deliveries(self) -> dict[str, int]:
        try:
            return await asyncio.wait_for(self._repo.delivery_gauges(self._clock()), ANSWER_WITHIN)
        except (DatabaseUnavailable, TimeoutError):
            return {}

    async def gauges(self) -> dict[str, int]:
        """The SQL-derived gauges of `/metrics`, read at scrape time ({} while SQL is down)."""
        try:
            return await self._repo.gauges(self._clock())
        except DatabaseUnavailable:
            return {}
