"""Volume spike alerts: page the on-call person once per spike, and say when it is over.

The rule (`is_spike`, pure): the customer messages of the last `SPIKE_WINDOW_MINUTES`
are a spike when there are at least `SPIKE_MIN` of them and more than `SPIKE_FACTOR`
times the baseline: the average count of the same window (same time of day) on
each of the previous 7 days (`storage.spikes`). The spike is over at the first check
where the rule no longer holds. A new spike starts no sooner than one window after the
last one ended, so a volume hovering at the threshold does not page every minute.

Exactly once across processes: a spike is a SQL row opened with ON CONFLICT DO
NOTHING (one open spike at a time) and closed by a conditional UPDATE; each post
(the page, then "it is over") is made under a coordination lease per spike after
re-reading whether it was made, and its ts is stored after it. A post that failed
for now is made by a later check.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta

from bot.blocks.conversation import slack_date
from bot.blocks.moments import spike_over, spike_page
from bot.blocks.stats import humanize_seconds, thread_link
from bot.config import Settings
from bot.slack import Slack, SlackPermanent, SlackTemporary
from storage.coordination import Coordinator
from storage.db import Database
from storage.models import Spike, utcnow
from storage.spikes import SpikeStore, Volume
from storage.stats import oldest_unanswered

log = logging.getLogger(__name__)

CHECK_EVERY = timedelta(minutes=1)  # the scheduler ticks more often; a check a minute is plenty
WORDS = 5  # the most frequent words shown, never more
TEXTS = 500  # the window's latest messages read for them
LEASE_SECONDS = 60.0
TELL_WITHIN = timedelta(days=1)  # posts still owed for spikes older than this are given up

_WORD = re.compile(r"[^\W\d_]{3,}")
STOP_WORDS = frozenset(
    """
    about after again all also and any are because been before but can cannot could did
    does doing don done for from get got had has have having hello her here hers him his
    how into its just know let like more most much need not now off once only other our
    out over please same she should some still such than thank thanks that the their them
    then there these they this those through too under until very was way were what when
    where which while who why will with would yes you your yours http https www com
    """.split()
)

OnCall = Callable[[datetime], Awaitable[str | None]]


def is_spike(count: int, baseline: float, factor: float, minimum: int) -> bool:
    """At least `minimum` messages, and more than `factor` times the baseline."""
    return count >= minimum and count > factor * baseline


def frequent_words(texts: Iterable[str], limit: int = WORDS) -> list[str]:
    """The words most messages use (each counted once per message), stop words, numbers
    and words under three letters dropped; ties in alphabetical order."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update({w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS})
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [word for word, _ in ranked[: min(limit, WORDS)]]


class Spikes:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        slack: Slack,
        coordinator: Coordinator,
        on_call: OnCall,
        clock: Callable[[], datetime] = utcnow,
        check_every: timedelta = CHECK_EVERY,
    ) -> None:
        """`on_call(at)`: who a page goes to then (`Escalations.on_call_user`)."""
        self._settings = settings
        self._db = db
        self._store = SpikeStore(db)
        self._slack = slack
        self._coordinator = coordinator
        self._on_call = on_call
        self._clock = clock
        self._check_every = check_every
        self._next_check: datetime | None = None
        self._window = timedelta(minutes=settings.spike_window_minutes)

    @property
    def store(self) -> SpikeStore:
        return self._store

    async def tick(self, now: datetime) -> None:
        """The scheduler's job: at most one check per `check_every` in this process."""
        if self._next_check is not None and now < self._next_check:
            return
        await self.check(now)
        self._next_check = now + self._check_every

    async def check(self, now: datetime) -> Volume:
        """Open or close the spike as the rule says, then make any post still owed."""
        settings = self._settings
        volume = await self._store.volume(now, self._window)
        spiking = is_spike(volume.count, volume.baseline, settings.spike_factor, settings.spike_min)
        current = await self._store.current()
        if current is None and spiking:
            # the last spike ended less than a window ago: no new one yet
            cooling = await self._store.ended_since(now - self._window)
            opened = None if cooling else await self._store.open(now, volume)
            if opened is not None:
                log.warning(
                    "volume spike %s: %s messages in %s, baseline %.1f",
                    opened, volume.count, self._window, volume.baseline,
                )  # fmt: skip
        elif current is not None and not spiking:
            if await self._store.close(current.id or 0, now):
                log.info("volume spike %s over: %s messages", current.id, volume.count)
        for spike_id in await self._store.untold(now - TELL_WITHIN):
            await self._tell(spike_id, now, volume)
        return volume

    async def _tell(self, spike_id: int, now: datetime, volume: Volume) -> None:
        lease = await self._coordinator.lock(f"spike:{spike_id}", LEASE_SECONDS)
        if lease is None:
            return  # another process is telling it
        try:
            spike = await self._store.get(spike_id)
            if spike is None:
                return
            if spike.paged_ts is None:
                if not await self._page(spike, now, volume):
                    return
                spike = await self._store.get(spike_id)
                assert spike is not None
            if spike.ended_at is not None and spike.ended_ts is None:
                await self._over(spike, volume)
        finally:
            await self._coordinator.release(lease)

    async def _page(self, spike: Spike, now: datetime, volume: Volume) -> bool:
        """Post the page in the inbox; False when Slack failed for now."""
        user = await self._on_call(now)
        texts = await self._store.texts(now, self._window, TEXTS)
        oldest = await oldest_unanswered(self._db, now, 1)
        waiting = None
        if oldest:
            item = oldest[0]
            label = (
                f"#{item['conversation_id']} {item['customer_name']} ({item['network']}), "
                f"waiting {humanize_seconds(item['waiting_seconds'] or 0)}"
            )
            posted = item["channel"] and item["thread_ts"]
            waiting = (label, thread_link(item["channel"], item["thread_ts"]) if posted else None)
        text, blocks = spike_page(
            user=user,
            count=spike.count,
            baseline=spike.baseline,
            window=self._window,
            by_network=volume.by_network,
            words=frequent_words(texts),
            oldest=waiting,
        )
        ts = await self._post(spike, text, blocks=blocks)
        if ts is None:
            return False
        await self._store.paged(spike.id or 0, user, ts)
        log.info("volume spike %s: paged %s", spike.id, user or "nobody (no one on call)")
        return True

    async def _over(self, spike: Spike, volume: Volume) -> None:
        text = spike_over(volume.count, self._window, slack_date(spike.started_at, "{time}"))
        ts = await self._post(spike, text, thread_ts=spike.paged_ts or None)
        if ts is not None:
            await self._store.told_over(spike.id or 0, ts)

    async def _post(
        self,
        spike: Spike,
        text: str,
        *,
        blocks: list[dict[str, object]] | None = None,
        thread_ts: str | None = None,
    ) -> str | None:
        """The post's ts ('' when Slack refuses it for good); None to try again later."""
        try:
            return await self._slack.post(
                self._settings.slack_inbox_channel,
                text,
                blocks=blocks,
                thread_ts=thread_ts,
                broadcast=thread_ts is not None,
            )
        except SlackTemporary as exc:
            log.warning("volume spike %s: not posted yet: %s", spike.id, exc.code)
            return None
        except SlackPermanent as exc:
            log.error("volume spike %s: Slack refuses the post: %s", spike.id, exc.code)
            return ""
