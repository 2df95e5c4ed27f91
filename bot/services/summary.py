"""The daily summary: posted once per local day at SUMMARY_TIME, or on demand."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import suppress
from datetime import date, datetime, timedelta

from bot.blocks.stats import escalations_sent, summary_blocks
from bot.config import Settings
from bot.services.stats import day_window, summary_report
from bot.slack import Slack
from storage.db import Database, DatabaseUnavailable
from storage.models import utcnow
from storage.summaries import SummaryRepository

log = logging.getLogger(__name__)


class DailySummary:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        slack: Slack,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._settings = settings
        self._db = db
        self._slack = slack
        self._clock = clock
        self._posts = SummaryRepository(db)

    def day_due(self, now: datetime) -> date | None:
        """Yesterday (local) once today's SUMMARY_TIME has passed; posting late is fine."""
        local = now.astimezone(self._settings.tz)
        if local.time() < self._settings.summary_time:
            return None
        return local.date() - timedelta(days=1)

    async def tick(self, now: datetime) -> bool:
        """The scheduler's job: post the due day's summary unless it was posted already."""
        day = self.day_due(now)
        if day is None or not await self._posts.claim(day, now):
            return False
        try:
            channel, ts = await self.post(day, now)
        except Exception:
            # Slack or SQL failed before anything was posted: the next tick tries again
            # (a claim left behind when even the release fails goes stale in 10 minutes).
            with suppress(DatabaseUnavailable):
                await self._posts.release(day)
            raise
        await self._posts.posted(day, channel, ts, now)
        return True

    async def post(self, day: date | None = None, now: datetime | None = None) -> tuple[str, str]:
        """Post `day`'s summary (default: yesterday, local) and return (channel, ts)."""
        now = now or self._clock()
        tz = self._settings.tz
        day = day or now.astimezone(tz).date() - timedelta(days=1)
        report = await summary_report(self._db, day, tz, now)
        window = day_window(day, tz)
        pages = await self._posts.escalations(window.since, window.until)
        blocks = [
            *summary_blocks(
                report,
                tz,
                business_hours=self._settings.business_hours is not None,
                rate_target=self._settings.response_rate_target,
            ),
            escalations_sent(pages),
        ]
        figures = report.figures
        text = (
            f"Daily summary for {day.isoformat()}: {figures['received']} messages, "
            f"{figures['unanswered']} unanswered"
        )
        channel = self._settings.summary_channel
        ts = await self._slack.post(channel, text, blocks=blocks)
        log.info("daily summary for %s posted to %s", day, channel)
        return channel, ts
