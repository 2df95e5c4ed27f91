"""Listening on X: poll the recent search for the brand terms.

One process polls at a time (a lease). Each poll reads every page after the stored
`since_id` (newest first, `next_token` for the next page) and hands the posts to
listening, then stores the first page's `newest_id` as the next `since_id`: in SQL, so a
restart resumes where the last complete poll stopped (a poll cut short is read again;
the mentions' unique key makes that harmless). A 429 or 5xx waits until X's
`x-rate-limit-reset`; a spent window (`x-rate-limit-remaining: 0`) waits for its reset
before the next page. The very first poll reads one page: the latest posts, not a week.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from bot.networks.base import DeliveryError
from bot.networks.x import XNetwork
from bot.services.listen_terms import Term, x_query
from bot.services.listening import Listening
from storage.coordination import CoordinationUnavailable, Coordinator
from storage.db import DatabaseUnavailable
from storage.listening import Mentions

log = logging.getLogger(__name__)

CURSOR = "x_recent_search"
LEASE_SECONDS = 120.0
MAX_WAIT = 900.0  # X's rate-limit windows are 15 minutes


class XSearch:
    def __init__(
        self,
        x: XNetwork,
        terms: tuple[Term, ...],
        listening: Listening,
        mentions: Mentions,
        coordinator: Coordinator,
        every: float,
        clock: Callable[[], datetime],
    ) -> None:
        self._x = x
        self._query = x_query(terms)
        self._listening = listening
        self._mentions = mentions
        self._coordinator = coordinator
        self._every = every
        self._clock = clock

    async def run(self) -> None:
        """Background task of every process; the lease holder polls."""
        while True:
            wait = self._every
            try:
                lease = await self._coordinator.lock("listening:x-search", LEASE_SECONDS)
                if lease is not None:
                    try:
                        wait = await self.poll()
                    finally:
                        await self._coordinator.release(lease)
            except (DatabaseUnavailable, CoordinationUnavailable) as exc:
                log.warning("X search: storage unavailable, will retry: %s", exc)
            except Exception:
                log.exception("X search: unexpected error; will retry")  # a supervisor boundary
            await asyncio.sleep(wait)

    async def poll(self) -> float:
        """One poll of every new page; the seconds to wait before the next."""
        since = await self._mentions.cursor(CURSOR)
        newest: str | None = None
        token: str | None = None
        while True:
            try:
                page = await self._x.search_recent(self._query, since, token)
            except DeliveryError as exc:
                wait = min(MAX_WAIT, max(self._every, exc.retry_after or 0.0))
                log.warning("X search: %s; next try in %.0f s", exc.message, wait)
                return wait
            newest = newest or page.newest_id
            await self._listening.receive(page.mentions)
            token = page.next_token if since is not None else None
            if token is None:
                break
            if page.pause:
                await asyncio.sleep(min(MAX_WAIT, page.pause))
        if newest is not None:
            await self._mentions.set_cursor(CURSOR, newest, self._clock())
        return max(self._every, min(MAX_WAIT, page.pause or 0.0))
