"""Inbound side of the relay: store customer messages, then wake the dispatcher.

Webhooks call `Relay.receive`; it returns only once the messages are in SQL,
so a 200 always means "stored". Concurrent requests are grouped into one
transaction (group commit) by `BatchWriter`, which is what lets one process
take hundreds of webhooks a second on SQLite.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta

from bot.networks.base import (
    CustomerEdit,
    CustomerRating,
    CustomerReaction,
    CustomerRemoval,
    DeliveryStatus,
    InboundEvent,
    InboundMessage,
    Notice,
    PayloadError,
    PublicMention,
)
from bot.services.csat import Csat
from storage.actions import ActionRepository, NewAction
from storage.coordination import CoordinationUnavailable, Coordinator
from storage.core import ActionKind, ReplyKind
from storage.inbound import Route
from storage.models import utcnow
from storage.repo import NewCustomerMessage, Repository, Stored

log = logging.getLogger(__name__)

WAKE_TOPIC = "relay"
WAKE_EVERY = 0.05  # seconds between two wake-up publishes of one process, at least
# An echo of our own send can beat the send's answer; wait this long before
# taking an echo for a colleague's reply from the network's own inbox.
ECHO_HOLD = timedelta(seconds=5)


class BatchWriter:
    """Group concurrent writes into one transaction; each caller awaits its own result.

    A batch that fails as a whole is retried item by item, so one bad message
    cannot fail its neighbours.
    """

    def __init__(self, repo: Repository, max_batch: int = 200, route: Route | None = None) -> None:
        self._repo = repo
        self._route = route
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[NewCustomerMessage, asyncio.Future[Stored]]] = (
            asyncio.Queue()
        )
        self._task: asyncio.Task[None] | None = None

    async def write(self, items: Sequence[NewCustomerMessage]) -> list[Stored]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="relaydesk-batch-writer")
        loop = asyncio.get_running_loop()
        futures = []
        for item in items:
            future: asyncio.Future[Stored] = loop.create_future()
            self._queue.put_nowait((item, future))
            futures.append(future)
        return list(await asyncio.gather(*futures))

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._flush(batch)

    async def _flush(self, batch: list[tuple[NewCustomerMessage, asyncio.Future[Stored]]]) -> None:
        try:
            results = await self._repo.store_customer_messages(
                [item for item, _ in batch], self._route
            )
        except Exception as exc:  # noqa: BLE001 - handed to each waiting caller below
            if len(batch) == 1:
                _settle(batch[0][1], exc)
                return
            for one in batch:
                await self._flush([one])
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def _settle(future: asyncio.Future[Stored], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class Waker:
    """Wake the dispatchers without making a webhook wait for Redis.

    A burst of webhooks becomes one publish in flight and at most one queued
    behind it, and publishes are at least `every` seconds apart: a dispatcher
    scans at most every 0.1 s anyway (`delivery.SCAN_EVERY`), and under load
    every stored batch wants a wake-up (one publish per batch had cost about 5%
    of a process's CPU at 1,500 webhooks/s). A wake-up that cannot be sent loses
    nothing: the work is in SQL and every dispatcher looks for due work at least
    every few seconds.
    """

    def __init__(
        self, coordinator: Coordinator, topic: str = WAKE_TOPIC, every: float = WAKE_EVERY
    ) -> None:
        self._coordinator = coordinator
        self._topic = topic
        self._every = every
        self._wanted = False
        self._last = -every
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wanted = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._publish(), name="relaydesk-wake")

    async def _publish(self) -> None:
        loop = asyncio.get_running_loop()
        while self._wanted:
            delay = self._last + self._every - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._wanted = False
            self._last = loop.time()
            try:
                await self._coordinator.publish(self._topic)
            except CoordinationUnavailable as exc:
                log.warning("wake-up not sent, the dispatchers' next pass finds the work: %s", exc)
                return

    async def close(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


class Relay:
    def __init__(
        self,
        repo: Repository,
        coordinator: Coordinator,
        *,
        clock: Callable[[], datetime] = utcnow,
        csat: Csat | None = None,
        route: Route | None = None,
        mentions: Callable[[list[PublicMention]], Awaitable[object]] | None = None,
    ) -> None:
        """`mentions` takes the public mentions a webhook reported (listening); without
        it they are dropped."""
        self._repo = repo
        self._csat = csat
        self._coordinator = coordinator
        self._clock = clock
        self._writer = BatchWriter(repo, route=route)
        self._actions = ActionRepository(repo.db)
        self._waker = Waker(coordinator)
        self.echo_hold = ECHO_HOLD
        self._mentions = mentions

    async def receive(self, events: Sequence[InboundEvent]) -> list[Stored]:
        """Store what a webhook delivered; duplicates come back with `message_id=None`."""
        received_at = self._clock()
        inbound = [event for event in events if isinstance(event, InboundMessage)]
        if self._csat is not None:  # ratings and their comments are no customer messages
            kept = await self._csat.take(events, inbound)
            if len(kept) < len(inbound) or any(isinstance(e, CustomerRating) for e in events):
                self._waker.wake()  # their notices are for the thread
            inbound = kept
        rows = _rows(inbound, received_at)
        messages = [row for event, row in rows if not event.from_team]
        echoes = [row for event, row in rows if event.from_team and not event.automated]
        automated = [row for event, row in rows if event.from_team and event.automated]
        statuses = [event for event in events if isinstance(event, DeliveryStatus)]
        actions = _actions(events, received_at)
        mentions = [event for event in events if isinstance(event, PublicMention)]
        if mentions and self._mentions is not None:
            await self._mentions(mentions)
        stored = await self._writer.write(messages) if messages else []
        new_echoes = 0
        hold = received_at + self.echo_hold
        if echoes:
            new_echoes += await self._repo.store_network_replies(echoes, hold)
        if automated:
            new_echoes += await self._repo.store_network_replies(
                automated, hold, kind=ReplyKind.AUTOMATED
            )
        if statuses:
            await self._repo.apply_delivery_statuses([asdict(status) for status in statuses])
        # After the messages: an action may refer to one delivered in the same request.
        new_actions = await self._actions.store(actions) if actions else 0
        fresh = [item for item in stored if item.message_id is not None]
        if fresh or statuses or new_echoes or new_actions:
            self._waker.wake()
        for item in fresh:
            log.info(
                "stored message %s in conversation %s%s",
                item.message_id,
                item.conversation_id,
                " (new)" if item.new_conversation else "",
            )
        return stored

    async def close(self) -> None:
        await self._writer.close()
        await self._waker.close()


MAX_ID = 255  # the id columns' width


def _rows(
    inbound: Sequence[InboundMessage], received_at: datetime
) -> list[tuple[InboundMessage, NewCustomerMessage]]:
    """Rows for the storable messages; a bad one in a batch is logged and skipped,
    and a request whose every message is bad is refused (400)."""
    rows, refused = [], []
    for event in inbound:
        try:
            rows.append((event, _to_row(event, received_at)))
        except PayloadError as exc:
            log.warning("%s message skipped: %s", event.network, exc.message)
            refused.append(exc)
    if refused and not rows:
        raise refused[0]
    return rows


def _actions(events: Sequence[InboundEvent], received_at: datetime) -> list[NewAction]:
    """Rows for the customer's non-message events; one with an unusable id is skipped."""
    actions = []
    for event in events:
        if isinstance(event, InboundMessage | DeliveryStatus | CustomerRating | PublicMention):
            continue
        try:
            actions.append(_to_action(event, received_at))
        except PayloadError as exc:
            log.warning("%s %s skipped: %s", event.network, type(event).__name__, exc.message)
    return actions


def _to_action(
    event: CustomerReaction | CustomerRemoval | CustomerEdit | Notice, received_at: datetime
) -> NewAction:
    target = None if isinstance(event, Notice) else _id(event.target_id, "the target id")
    payload: dict[str, object] = {}
    if isinstance(event, CustomerReaction):
        kind = ActionKind.UNREACTION if event.removed else ActionKind.REACTION
        payload["emoji"] = _clean(event.emoji, 64)
    elif isinstance(event, CustomerRemoval):
        kind = ActionKind.REMOVAL
    elif isinstance(event, CustomerEdit):
        kind = ActionKind.EDIT
        payload["text"] = _clean(event.text)
        payload["attachments"] = [asdict(attachment) for attachment in event.attachments]
    else:
        kind = ActionKind.NOTICE
        payload["text"] = _clean(event.text, 1000)
    return NewAction(
        network=event.network,
        conversation_key=_id(event.conversation_key, "the conversation id"),
        event_id=_id(event.event_id, "the event id"),
        kind=kind,
        at=min(event.at, received_at),
        received_at=received_at,
        target_id=target,
        payload=payload,
    )


def _id(value: str, what: str) -> str:
    if len(value) > MAX_ID or "\x00" in value:
        raise PayloadError(f"{what} is not a valid id (at most {MAX_ID} characters)")
    return value


def _clean(value: str, limit: int | None = None) -> str:
    """PostgreSQL refuses NUL in text; display names are cut to their column."""
    value = value.replace("\x00", "")
    return value[:limit] if limit else value


def _to_row(message: InboundMessage, received_at: datetime) -> NewCustomerMessage:
    """The SQL row for a message; ids that cannot be stored are the sender's mistake (400)."""
    return NewCustomerMessage(
        network=message.network,
        conversation_key=_id(message.conversation_key, "the conversation id"),
        external_id=_id(message.message_id, "the message id"),
        author_id=_id(message.author_id, "the author id"),
        author_name=_clean(message.author_name, MAX_ID),
        author_handle=_clean(message.author_handle, MAX_ID) if message.author_handle else None,
        text=_clean(message.text),
        sent_at=message.sent_at,
        received_at=received_at,
        attachments=[asdict(attachment) for attachment in message.attachments],
        reply_context=dict(message.reply_context),
        in_reply_to=message.in_reply_to,
        customer_id=_id(message.customer_id, "the customer id") if message.customer_id else None,
    )
