"""Customer actions: what a customer does that is not a message (`customer_action`).

Reactions, removals, edits and system notices never open, reopen or answer a
conversation and are never customer messages: they are stored here, against a
conversation that already exists, and carried out in Slack by the dispatcher.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.core import ActionKind, ActionState, Mark, later_mark
from storage.db import Database, insert_ignore
from storage.models import (
    PENDING,
    CustomerAction,
    CustomerMessage,
    TeamReply,
    conversation_by_key,
    lock_conversation,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewAction:
    network: str
    conversation_key: str
    event_id: str
    kind: ActionKind
    at: datetime
    received_at: datetime
    target_id: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """The message an action refers to: a customer message or a team reply."""

    message: CustomerMessage | None = None
    reply: TeamReply | None = None

    @property
    def slack(self) -> tuple[str, str] | None:
        row = self.message or self.reply
        if row is None or not (row.slack_channel and row.slack_ts):
            return None
        return row.slack_channel, row.slack_ts


class ActionRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def store(self, items: Sequence[NewAction]) -> int:
        """Store actions of known conversations; returns how many were new.

        An action about a conversation we do not relay is dropped here: a notice or
        a reaction never creates one.
        """
        new = 0
        async with self.db.session() as session:
            for item in items:
                conversation_id = (
                    await session.execute(conversation_by_key(item.network, item.conversation_key))
                ).scalar_one_or_none()
                if conversation_id is None:
                    log.info("%s %s: no such conversation; ignored", item.network, item.kind)
                    continue
                inserted = await insert_ignore(
                    session,
                    CustomerAction,
                    ("network", "event_id"),
                    conversation_id=conversation_id,
                    network=item.network,
                    event_id=item.event_id,
                    kind=item.kind,
                    target_id=item.target_id,
                    payload=item.payload,
                    at=item.at,
                    received_at=item.received_at,
                    state=ActionState.PENDING,
                    attempts=0,
                )
                new += inserted is not None
        return new

    async def target(self, action: CustomerAction) -> Target:
        """The customer message (or else the team reply) the action refers to, if known."""
        async with self.db.read() as session:
            message = (
                await session.execute(
                    select(CustomerMessage).where(
                        col(CustomerMessage.network) == action.network,
                        col(CustomerMessage.external_id) == action.target_id,
                        col(CustomerMessage.conversation_id) == action.conversation_id,
                    )
                )
            ).scalar_one_or_none()
            if message is not None:
                return Target(message=message)
            reply = (
                await session.execute(
                    select(TeamReply).where(
                        col(TeamReply.network) == action.network,
                        col(TeamReply.external_id) == action.target_id,
                        col(TeamReply.conversation_id) == action.conversation_id,
                    )
                )
            ).scalar_one_or_none()
            return Target(reply=reply)

    async def same_post(self, message: CustomerMessage) -> list[CustomerMessage]:
        """The messages posted together with `message` in one Slack message, in order."""
        async with self.db.read() as session:
            rows = await session.execute(
                select(CustomerMessage)
                .where(
                    col(CustomerMessage.slack_channel) == message.slack_channel,
                    col(CustomerMessage.slack_ts) == message.slack_ts,
                )
                .order_by(col(CustomerMessage.sent_at), col(CustomerMessage.id))
            )
            return list(rows.scalars())

    async def is_first(self, message: CustomerMessage) -> bool:
        """Whether `message` is its conversation's first: the one its root shows."""
        async with self.db.read() as session:
            return await _first_id(session, message.conversation_id) == message.id

    async def last_reaction(self, action: CustomerAction, emoji: str) -> str | None:
        """The Slack reaction shown for the customer's latest reaction on the same target
        (with the same emoji, when the network says which one is removed)."""
        async with self.db.read() as session:
            rows = await session.execute(
                select(CustomerAction)
                .where(
                    col(CustomerAction.conversation_id) == action.conversation_id,
                    col(CustomerAction.target_id) == action.target_id,
                    col(CustomerAction.kind) == ActionKind.REACTION,
                    col(CustomerAction.state) == ActionState.DONE,
                )
                .order_by(col(CustomerAction.at).desc(), col(CustomerAction.id).desc())
            )
            for shown in rows.scalars():
                if shown.payload.get("shown") and (
                    not emoji or shown.payload.get("emoji") == emoji
                ):
                    return str(shown.payload["shown"])
        return None

    async def progress(self, action_id: int, **values: Any) -> None:
        """Record a step already carried out (kept in the payload), so a retry skips it."""
        async with self.db.session() as session:
            action = await session.get(CustomerAction, action_id)
            assert action is not None
            action.payload = {**action.payload, **values}

    async def finish(
        self, action_id: int, state: ActionState = ActionState.DONE, **values: Any
    ) -> None:
        async with self.db.session() as session:
            action = await session.get(CustomerAction, action_id)
            assert action is not None
            action.state = state
            action.next_attempt_at = None
            if values:
                action.payload = {**action.payload, **values}

    async def later(self, action_id: int, at: datetime) -> None:
        async with self.db.session() as session:
            await session.execute(
                update(CustomerAction)
                .where(col(CustomerAction.id) == action_id)
                .values(attempts=CustomerAction.attempts + 1, next_attempt_at=at)
            )

    async def apply(
        self,
        action_id: int,
        message_id: int,
        mark: Mark,
        new_text: str | None = None,
        attachments: list[dict[str, Any]] | None = None,
    ) -> None:
        """Carry an edit or a removal into SQL and finish the action, in one transaction.

        The message keeps its time (turns and stats do not move); an edit of the
        conversation's first message changes its root, which is then re-rendered.
        """
        async with self.db.session() as session:
            message = await session.get(CustomerMessage, message_id)
            action = await session.get(CustomerAction, action_id)
            assert message is not None and action is not None
            conversation = await lock_conversation(session, message.conversation_id)
            first = await _first_id(session, message.conversation_id)
            if new_text is not None:
                message.text = new_text
                if attachments:
                    message.attachments = attachments
            message.mark = later_mark(message.mark, mark)
            if first == message.id:
                if new_text is not None:
                    conversation.root_text = new_text
                conversation.root_mark = message.mark
                conversation.version += 1
            action.state = ActionState.DONE
            action.next_attempt_at = None


async def pending(session: AsyncSession, conversation_id: int) -> list[CustomerAction]:
    """A conversation's pending actions, in the order the customer made them."""
    rows = await session.execute(
        select(CustomerAction)
        .where(col(CustomerAction.conversation_id) == conversation_id, text(PENDING))
        .order_by(col(CustomerAction.at), col(CustomerAction.id))
    )
    return list(rows.scalars())


async def _first_id(session: AsyncSession, conversation_id: int) -> int | None:
    return (
        await session.execute(
            select(col(CustomerMessage.id))
            .where(col(CustomerMessage.conversation_id) == conversation_id)
            .order_by(col(CustomerMessage.id))
            .limit(1)
        )
    ).scalar_one_or_none()
