"""Escalations: page whoever is on call when a customer waits too long, then further up.

Schedule (all from stored timestamps, so restarts and late ticks neither lose nor
shift a page): a turn's *anchor* is `turn.started_at + SLA_MINUTES` (`SLA_MINUTES_URGENT`
for a conversation a routing rule made urgent), or its first
level-1 page if that came earlier (a manual escalation starts the clock). Level `n`
is due at `anchor + (n - 1) * ESCALATION_REPEAT_MINUTES`, at most 3 levels. Every
`+` counts open time only (`BUSINESS_HOURS`): a message at 17:55 on a Friday with a
30-minute SLA is due at 09:25 on Monday; unset, it is wall-clock time.
Catch-up: a tick pages every level that is due and not yet paged, each once, in
order; a tick that was late by two repeats therefore sends levels 1, 2 and 3 at once,
and later ticks send nothing more.

Targets are taken at the level's due time: 1 = on call (overrides win; the manager
when there is no rotation), 2 = the next person in the rotation, 3 = the manager.
Level 2 or 3 is skipped when it has no target or would page someone this turn
already paged. With no target at level 1, the thread is told once that nobody is
on call. Stops: a delivered reply (the turn is answered), an ack on the turn,
resolve, or a handoff after the turn's first page.

Exactly once: a page is a row inserted under the conversation's row lock with
UNIQUE(turn_id, level, kind); only the inserting process sends it (under a
coordination lease per page), then sets `sent_at`. A row left unsent by a
process that stopped mid-page is sent by a later sweep after `RECOVER_AFTER`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.blocks import escalation as texts
from bot.blocks.conversation import slack_date
from bot.config import Settings
from bot.routing import URGENT
from bot.services.refusal import Refusal
from bot.services.relay import WAKE_TOPIC
from bot.services.rotation import (
    Override,
    Rotation,
    Shift,
    next_in_rotation,
    on_call_at,
    upcoming,
)
from bot.slack import Slack, SlackError, SlackTemporary
from storage.business_hours import ALWAYS_OPEN, BusinessHours
from storage.coordination import Coordinator
from storage.escalations import EscalationStore, Locked, TurnState
from storage.models import Conversation, Escalation, OncallOverride, Turn, utcnow
from storage.repo import Repository

log = logging.getLogger(__name__)

MAX_LEVEL = 3
RECOVER_AFTER = timedelta(minutes=5)  # an unsent page this old was abandoned by its process
RECOVER_WINDOW = timedelta(days=1)  # older abandoned pages are left alone
OVERRIDE_LOOKBACK = timedelta(days=7)  # catch-up targets use overrides that ended this recently
PAGE_LEASE_SECONDS = 120.0


def anchor(state: TurnState, sla: timedelta, hours: BusinessHours = ALWAYS_OPEN) -> datetime | None:
    """When level 1 was (or is) due for the latest turn; None without a turn."""
    if state.turn is None:
        return None
    due = hours.add(state.turn.started_at, sla)
    manual = [page.created_at for page in state.pages if page.level == 1]
    return min([due, *manual])


def stopped(state: TurnState) -> bool:
    """Nothing more to page: resolved, answered, acknowledged, or handed off after a page."""
    if state.conversation.status != "open" or state.turn is None:
        return True
    if state.turn.answered_at is not None:
        return True
    if any(page.acked_at is not None for page in state.pages):
        return True
    first_page = min((page.created_at for page in state.pages), default=None)
    return (
        first_page is not None
        and state.last_handoff_at is not None
        and state.last_handoff_at >= first_page
    )


def due_levels(
    state: TurnState,
    now: datetime,
    sla: timedelta,
    repeat: timedelta,
    hours: BusinessHours = ALWAYS_OPEN,
) -> list[tuple[int, datetime]]:
    """(level, due time) for every level due by `now` and not yet paged, in order."""
    start = anchor(state, sla, hours)
    if start is None or stopped(state):
        return []
    paged = {page.level for page in state.pages}
    due = ((level, hours.add(start, (level - 1) * repeat)) for level in range(1, MAX_LEVEL + 1))
    return [(level, at) for level, at in due if level not in paged and at <= now]


@dataclass(frozen=True)
class OnCall:
    current: Shift | None
    following: list[Shift]
    manager: str | None
    opens_at: datetime | None = None  # the desk is closed (BUSINESS_HOURS) until then


class Escalations:
    def __init__(
        self,
        *,
        settings: Settings,
        store: EscalationStore,
        repo: Repository,
        slack: Slack,
        coordinator: Coordinator,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._settings = settings
        self._store = store
        self._repo = repo
        self._slack = slack
        self._coordinator = coordinator
        self._clock = clock
        self._rotation = Rotation.from_settings(settings)
        self._sla = timedelta(minutes=float(settings.sla_minutes))
        self._sla_urgent = timedelta(minutes=float(settings.sla_urgent))
        self._repeat = timedelta(minutes=float(settings.escalation_repeat_minutes))

    @property
    def store(self) -> EscalationStore:
        return self._store

    # -- who is on call -----------------------------------------------------
    async def _overrides(self, since: datetime) -> list[Override]:
        rows = await self._store.overrides(ending_after=since)
        return [_override(row) for row in rows]

    def _level_one(self, overrides: Sequence[Override], at: datetime) -> str | None:
        shift = on_call_at(self._rotation, overrides, at)
        return shift.user if shift is not None else self._settings.escalation_manager

    def _target(self, level: int, overrides: Sequence[Override], at: datetime) -> str | None:
        if level == 1:
            return self._level_one(overrides, at)
        if level == 2:
            return next_in_rotation(self._rotation, at)
        return self._settings.escalation_manager

    async def on_call_user(self, now: datetime) -> str | None:
        """Whom a page goes to at `now`: the on-call person (overrides win), or the
        manager when there is no rotation."""
        return self._level_one(await self._overrides(now), now)

    async def on_call(self, now: datetime | None = None, count: int = 3) -> OnCall:
        now = now or self._clock()
        overrides = await self._overrides(now)
        return OnCall(
            current=on_call_at(self._rotation, overrides, now),
            following=upcoming(self._rotation, overrides, now, count),
            manager=self._settings.escalation_manager,
            opens_at=None
            if self._settings.hours.is_open(now)
            else self._settings.hours.next_open(now),
        )

    async def cover(
        self, user: str, duration: timedelta, by_user: str, now: datetime | None = None
    ) -> OncallOverride:
        """`user` is on call from now for `duration`, over the rotation (newest cover wins).

        Only the rotation's keepers (ONCALL_USERS, ESCALATION_MANAGER, ONCALL_ADMINS) may,
        and only for a person Slack knows: `Refusal` otherwise.
        """
        keepers = self._settings.rotation_keepers
        if by_user not in keepers:
            raise Refusal(
                "Only the people in ONCALL_USERS, ESCALATION_MANAGER or ONCALL_ADMINS may "
                f"change the rotation{_naming(keepers)}. Ask one of them, or an admin to "
                "add you to ONCALL_ADMINS."
            )
        try:
            person = await self._slack.is_person(user)
        except SlackError as exc:
            raise Refusal(
                f"Could not check <@{user}> with Slack ({exc.code}); try again in a minute."
            ) from exc
        if not person:
            raise Refusal(
                f"`{user}` is not an active person in this workspace: nobody to put on call."
            )
        now = now or self._clock()
        row = await self._store.add_override(user, now, now + duration, by_user, now)
        log.info("on-call cover: %s until %s (by %s)", user, row.ends_at.isoformat(), by_user)
        return row

    # -- the sweep ----------------------------------------------------------
    async def sweep(self, now: datetime | None = None) -> int:
        """Page every level that is due; returns how many pages this call sent."""
        now = now or self._clock()
        overrides = await self._overrides(now - OVERRIDE_LOOKBACK)
        sent = 0
        # open time never runs faster than the wall clock, and no SLA is shorter than the
        # shortest: a superset of the due turns
        shortest = min(self._sla, self._sla_urgent)
        for conversation_id in await self._store.waiting_conversations(now - shortest):
            async with self._store.locked(conversation_id) as locked:
                claimed = await self._claim_due(locked, overrides, now)
            for page in claimed:
                sent += await self._deliver(page, now)
        sent += await self._recover(now)
        if sent:
            await self._coordinator.publish(WAKE_TOPIC)  # re-render roots: "escalated to"
        return sent

    async def _claim_due(
        self, locked: Locked, overrides: Sequence[Override], now: datetime
    ) -> list[Escalation]:
        state = locked.state
        if state.conversation.thread_ts is None:
            return []  # its Slack thread is not posted yet: page once it is
        paged = {page.target_user for page in state.pages if page.target_user}
        claimed = []
        sla = self._sla_urgent if state.conversation.priority == URGENT else self._sla
        for level, at in due_levels(state, now, sla, self._repeat, self._settings.hours):
            target = self._target(level, overrides, at)
            if level > 1 and (target is None or target in paged):
                continue
            page = await locked.add_page(level=level, kind="auto", target=target, now=now)
            if page is not None:
                claimed.append(page)
                if target:
                    paged.add(target)
        return claimed

    async def _recover(self, now: datetime) -> int:
        """Send pages whose process stopped between claiming and sending them."""
        sent = 0
        for escalation_id in await self._store.unsent(now - RECOVER_WINDOW, now - RECOVER_AFTER):
            page = await self._store.page(escalation_id)
            if page is None:
                continue
            async with self._store.locked(page.conversation_id) as locked:
                state = locked.state
            current = state.turn is not None and page.turn_id == state.turn.id
            if not current or (page.kind == "auto" and stopped(state)):
                continue
            if state.conversation.status != "open":
                continue
            log.warning(
                "escalation %s of #%s: sending a page left unsent", page.id, page.conversation_id
            )
            sent += await self._deliver(page, now)
        return sent

    # -- manual escalation and ack --------------------------------------------
    async def escalate(
        self, conversation_id: int, by_user: str, reason: str | None, now: datetime | None = None
    ) -> str:
        """Page level 1 at once (kind manual); returns the answer for `by_user`, or `Refusal`."""
        now = now or self._clock()
        overrides = await self._overrides(now)
        async with self._store.locked(conversation_id) as locked:
            state = locked.state
            if state.conversation.status != "open":
                raise Refusal(f"#{conversation_id} is resolved; reopen it before escalating.")
            earlier = next((p for p in state.pages if p.kind == "manual"), None)
            if earlier is not None:
                raise Refusal(_already_escalated(conversation_id, earlier))
            page = await locked.add_page(
                level=1,
                kind="manual",
                target=self._level_one(overrides, now),
                now=now,
                reason=reason or None,
                by_user=by_user,
            )
        if page is None:
            raise Refusal(f"#{conversation_id} is being escalated already.")
        await self._deliver(page, now)
        await self._coordinator.publish(WAKE_TOPIC)
        if page.target_user is None:
            return f"Nobody is on call to page for #{conversation_id}. {texts.NOBODY_HOW_TO}"
        return f"Paged <@{page.target_user}> for #{conversation_id}."

    async def ack(self, conversation_id: int, user: str, now: datetime | None = None) -> str:
        """Acknowledge the latest turn's escalation: no further level is paged for it.

        Returns the answer for `user`; `Refusal` when there is nothing (left) to acknowledge.
        """
        now = now or self._clock()
        async with self._store.locked(conversation_id) as locked:
            state = locked.state
            if not state.pages:
                raise Refusal(f"#{conversation_id} has no escalation to acknowledge.")
            paged = [p.target_user for p in state.pages if p.target_user]
            manager = (
                [self._settings.escalation_manager] if self._settings.escalation_manager else []
            )
            if user not in {*paged, *self._settings.oncall_users, *manager}:
                raise Refusal(
                    f"Only the person paged for #{conversation_id}{_naming(paged)}, the people "
                    "in ONCALL_USERS or the ESCALATION_MANAGER may acknowledge it."
                )
            earlier = next((p for p in state.pages if p.acked_at is not None), None)
            if earlier is None:
                await locked.ack(user, now)
        if earlier is not None:
            assert earlier.acked_at is not None
            if earlier.acked_by == user:
                raise Refusal(f"You already acknowledged #{conversation_id}.")
            raise Refusal(
                f"<@{earlier.acked_by}> already acknowledged #{conversation_id} "
                f"{slack_date(earlier.acked_at)}."
            )
        log.info("escalation of #%s acknowledged by %s", conversation_id, user)
        conversation = state.conversation
        if conversation.channel and conversation.thread_ts:
            try:
                await self._slack.post(
                    conversation.channel,
                    texts.acked_note(conversation, user),
                    thread_ts=conversation.thread_ts,
                )
            except SlackError as exc:
                log.warning("ack note for #%s not posted: %s", conversation_id, exc.code)
        return f"You acknowledged #{conversation_id}: it will not escalate further."

    async def claimed(self, conversation_id: int, user: str) -> None:
        """`user` claimed the conversation from a page: it escalates no further.

        Unlike `ack`, nothing to say: a page acknowledged already is fine.
        """
        with contextlib.suppress(Refusal):
            await self.ack(conversation_id, user)

    # -- sending --------------------------------------------------------------
    async def _deliver(self, page: Escalation, now: datetime) -> int:
        """Send a claimed page once (lease + `sent_at` check); 1 if this call sent it."""
        assert page.id is not None
        lease = await self._coordinator.lock(f"escalation:page:{page.id}", PAGE_LEASE_SECONDS)
        if lease is None:
            return 0
        try:
            fresh = await self._store.page(page.id)
            if fresh is None or fresh.sent_at is not None:
                return 0
            conversation = await self._repo.conversation(fresh.conversation_id)
            assert conversation is not None
            turn = await self._turn(fresh)
            waited = now - turn.started_at if turn is not None else None
            if not await self._send(conversation, fresh, waited):
                return 0  # a temporary Slack failure: a later sweep recovers it
            await self._store.mark_sent(page.id, now)
            return 1
        finally:
            await self._coordinator.release(lease)

    async def _turn(self, page: Escalation) -> Turn | None:
        if page.turn_id is None:
            return None
        turns = await self._repo.turns(page.conversation_id)
        return next((turn for turn in turns if turn.id == page.turn_id), None)

    async def _send(
        self, conversation: Conversation, page: Escalation, waited: timedelta | None
    ) -> bool:
        """The thread mention, then the DM. False only when the DM failed temporarily."""
        link = None
        channel, thread_ts = conversation.channel, conversation.thread_ts
        if channel and thread_ts:
            try:
                link = await self._slack.permalink(channel, thread_ts)
            except SlackError as exc:
                log.warning(
                    "escalation %s: no permalink for #%s: %s", page.id, conversation.id, exc.code
                )
            if page.target_user is None:
                text, blocks = texts.nobody_on_call(conversation, waited), None
            else:
                text, blocks = texts.page_mention(conversation, page, waited)
            try:
                await self._slack.post(channel, text, blocks=blocks, thread_ts=thread_ts)
            except SlackError as exc:
                log.warning(
                    "escalation %s of #%s: thread %s/%s not told: %s",
                    page.id, conversation.id, channel, thread_ts, exc.code,
                )  # fmt: skip
        if page.target_user is None:
            log.warning("escalation %s of #%s: nobody is on call", page.id, conversation.id)
            return True
        try:
            dm = await self._slack.open_dm(page.target_user)
            messages = await self._repo.messages(conversation.id or 0)
            last = messages[-1].text if messages else None
            text, blocks = texts.page_dm(conversation, page, waited, link, last)
            await self._slack.post(dm, text, blocks=blocks)
        except SlackTemporary as exc:
            log.warning(
                "escalation %s of #%s: DM to %s failed for now: %s",
                page.id, conversation.id, page.target_user, exc.code,
            )  # fmt: skip
            return False
        except SlackError as exc:
            log.error(
                "escalation %s of #%s: cannot DM %s (Slack error %s from %s); "
                "check the user ID with `python -m bot check`",
                page.id, conversation.id, page.target_user, exc.code, exc.method,
            )  # fmt: skip
            return True
        log.info(
            "escalation %s of #%s: paged %s at level %s",
            page.id, conversation.id, page.target_user, page.level,
        )  # fmt: skip
        return True


def _override(row: OncallOverride) -> Override:
    return Override(row.user_id, row.starts_at, row.ends_at, row.created_at)


def _already_escalated(conversation_id: int, page: Escalation) -> str:
    target = f"<@{page.target_user}>" if page.target_user else "nobody (no one is on call)"
    return (
        f"#{conversation_id} was already escalated to {target} by <@{page.by_user}> "
        f"{slack_date(page.created_at)}."
    )


def _naming(users: list[str]) -> str:
    """` (<@U1>, <@U2>)`: who may, for a refusal; empty when nobody is configured."""
    named = list(dict.fromkeys(users))
    return f" ({', '.join(f'<@{u}>' for u in named)})" if named else ""
