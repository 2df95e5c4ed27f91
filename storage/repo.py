"""Repository: every read and write of conversations, messages, replies and turns.

Each public method runs in its own short transaction. Per-conversation state is
serialised by locking the conversation row (`FOR UPDATE` on PostgreSQL; SQLite
serialises writers anyway), so concurrent requests and processes agree.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    bindparam,
    delete,
    func,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage import actions, core
from storage.business_hours import ALWAYS_OPEN, BusinessHours
from storage.core import (
    ConversationPlan,
    ConversationStatus,
    MessageState,
    NetworkStatus,
    ReplyKind,
    ReplyState,
    TurnState,
    Unchanged,
)
from storage.db import Database, insert_ignore
from storage.inbound import NewCustomerMessage, Route, Stored, store_batch
from storage.models import (
    FAILED,
    PENDING,
    RETRYING,
    ROOTLESS,
    STALE_ROOT,
    Conversation,
    CustomerAction,
    CustomerMedia,
    CustomerMessage,
    Escalation,
    Handoff,
    SlackThread,
    TeamReply,
    Turn,
    UTCDateTime,
    conversation_by_key,
    utcnow,
)
from storage.out_of_hours import is_auto_reply


@dataclass(frozen=True)
class DueWork:
    """What the dispatcher has to do for one conversation now (read in one go)."""

    conversation: Conversation
    messages: list[CustomerMessage]  # to relay to Slack, in order
    replies: list[TeamReply]  # to send to the customer, in order
    echoes: list[TeamReply]  # inbox replies to show in Slack
    unwarned: list[TeamReply]  # failed (or in doubt), not yet explained in Slack
    actions: list[CustomerAction] = field(default_factory=list)  # reactions, edits...


@dataclass(frozen=True)
class ActionResult:
    """What an action on a conversation did: changed it, or why not."""

    conversation: Conversation
    unchanged: Unchanged | None = None

    @property
    def ok(self) -> bool:
        return self.unchanged is None


def _carry_out(conversation: Conversation, plan: ConversationPlan) -> None:
    """Apply a core plan to a conversation row (locked by the caller); re-render its root."""
    for name, value in plan.values.items():
        setattr(conversation, name, value)
    conversation.version += 1


# Reply states the thread must be told about (`warned` says it was).
UNWARNED = (ReplyState.FAILED, ReplyState.UNCERTAIN)


class Repository:
    def __init__(self, db: Database, hours: BusinessHours = ALWAYS_OPEN) -> None:
        self.db = db
        self.hours = hours  # a turn's business-hours response time is counted in them

    # -- inbound customer messages ------------------------------------------
    async def store_customer_messages(
        self, items: Sequence[NewCustomerMessage], route: Route | None = None
    ) -> list[Stored]:
        """Store a batch in one transaction (one commit for many webhooks); `route`
        decides the team, priority and tags of the conversations it opens."""
        return await self.db.run_unit(lambda execute: store_batch(execute, items, route))

    async def _conversation_for_update(self, session: AsyncSession, *where: Any) -> Conversation:
        statement = select(Conversation).where(*where).with_for_update()
        return (await session.execute(statement)).scalar_one()

    # -- reading ------------------------------------------------------------
    async def conversation(self, conversation_id: int) -> Conversation | None:
        async with self.db.read() as session:
            return await session.get(Conversation, conversation_id)

    async def conversation_by_thread(self, channel: str, thread_ts: str) -> Conversation | None:
        async with self.db.read() as session:
            statement = (
                select(Conversation)
                .join(SlackThread, col(SlackThread.conversation_id) == Conversation.id)
                .where(col(SlackThread.channel) == channel, col(SlackThread.thread_ts) == thread_ts)
            )
            return (await session.execute(statement)).scalar_one_or_none()

    async def conversation_by_message(self, channel: str, ts: str) -> Conversation | None:
        """The conversation a Slack message belongs to: a root, a relayed message or a reply."""
        found = await self.conversation_by_thread(channel, ts)
        if found is not None:
            return found
        async with self.db.read() as session:
            for model in (CustomerMessage, TeamReply):
                conversation_id = (
                    await session.execute(
                        select(col(model.conversation_id)).where(
                            col(model.slack_channel) == channel, col(model.slack_ts) == ts
                        )
                    )
                ).scalar_one_or_none()
                if conversation_id is not None:
                    return await session.get(Conversation, conversation_id)
        return None

    async def messages(self, conversation_id: int) -> list[CustomerMessage]:
        async with self.db.read() as session:
            statement = (
                select(CustomerMessage)
                .where(col(CustomerMessage.conversation_id) == conversation_id)
                .order_by(col(CustomerMessage.sent_at), col(CustomerMessage.id))
            )
            return list((await session.execute(statement)).scalars())

    async def replies(self, conversation_id: int) -> list[TeamReply]:
        async with self.db.read() as session:
            statement = (
                select(TeamReply)
                .where(col(TeamReply.conversation_id) == conversation_id)
                .order_by(col(TeamReply.sent_at), col(TeamReply.id))
            )
            return list((await session.execute(statement)).scalars())

    async def turns(self, conversation_id: int) -> list[Turn]:
        async with self.db.read() as session:
            statement = (
                select(Turn)
                .where(col(Turn.conversation_id) == conversation_id)
                .order_by(col(Turn.started_at))
            )
            return list((await session.execute(statement)).scalars())

    # -- the delivery queue -------------------------------------------------
    async def due_conversations(self, now: datetime, limit: int = 100) -> list[int]:
        """Conversations with something to relay, send or re-render now (lowest ids first)."""
        async with self.db.read() as session:
            rows = await session.execute(_DUE_CONVERSATIONS, {"now": now, "limit": limit})
            return [row[0] for row in rows]

    async def next_due_at(self) -> datetime | None:
        """The earliest retry time among pending work (None: nothing waits)."""
        async with self.db.read() as session:
            row = (await session.execute(_NEXT_DUE_AT)).one()
        return min((at for at in row if at is not None), default=None)

    async def gauges(self, now: datetime) -> dict[str, int]:
        """Counts for monitoring: pending deliveries, unanswered conversations, pages sent."""
        async with self.db.read() as session:
            pending = 0
            for model, where in (
                (CustomerMessage, text(PENDING)),
                (TeamReply, col(TeamReply.state) == ReplyState.PENDING),
            ):
                pending += (
                    await session.execute(select(func.count()).select_from(model).where(where))
                ).scalar_one()
            latest = (
                select(col(Turn.conversation_id), func.max(Turn.started_at).label("started"))
                .group_by(col(Turn.conversation_id))
                .subquery()
            )
            unanswered = (
                await session.execute(
                    select(func.count())
                    .select_from(Turn)
                    .join(
                        latest,
                        (latest.c.conversation_id == col(Turn.conversation_id))
                        & (latest.c.started == col(Turn.started_at)),
                    )
                    .join(Conversation, col(Conversation.id) == Turn.conversation_id)
                    .where(
                        col(Turn.answered_at).is_(None),
                        col(Conversation.status) != ConversationStatus.RESOLVED,
                    )
                )
            ).scalar_one()
            escalations = (
                await session.execute(
                    select(func.count())
                    .select_from(Escalation)
                    .where(col(Escalation.sent_at).is_not(None))
                )
            ).scalar_one()
        return {
            "pending": pending,
            "unanswered": unanswered,
            "escalations": escalations,
            **await self.delivery_gauges(now),
        }

    async def delivery_gauges(self, now: datetime) -> dict[str, int]:
        """Failed deliveries (messages Slack refused, replies not delivered) and how long
        the oldest pending one has waited (seconds, 0 when none waits)."""
        async with self.db.read() as session:
            failed = 0
            for model, where in (
                (CustomerMessage, text(FAILED)),  # the partial index's own predicate
                (TeamReply, col(TeamReply.state) == ReplyState.FAILED),
            ):
                failed += (
                    await session.execute(select(func.count()).select_from(model).where(where))
                ).scalar_one()
            oldest = [
                (
                    await session.execute(
                        select(func.min(CustomerMessage.received_at)).where(text(PENDING))
                    )
                ).scalar_one_or_none(),
                (
                    await session.execute(
                        select(func.min(TeamReply.sent_at)).where(
                            col(TeamReply.state) == ReplyState.PENDING
                        )
                    )
                ).scalar_one_or_none(),
            ]
        since = min((at for at in oldest if at is not None), default=None)
        if since is not None and since.tzinfo is None:  # min() over SQLite is naive UTC
            since = since.replace(tzinfo=now.tzinfo)
        age = 0 if since is None else max(0, int((now - since).total_seconds()))
        return {"failed": failed, "oldest_pending_seconds": age}

    async def due_work(self, conversation_id: int, now: datetime) -> DueWork | None:
        """Everything due in one conversation (None: no such conversation)."""
        async with self.db.read() as session:
            conversation = await session.get(Conversation, conversation_id)
            if conversation is None:
                return None
            messages = list(
                (
                    await session.execute(
                        select(CustomerMessage)
                        .where(
                            col(CustomerMessage.conversation_id) == conversation_id,
                            text(PENDING),
                        )
                        .order_by(col(CustomerMessage.sent_at), col(CustomerMessage.id))
                    )
                ).scalars()
            )
            replies = list(
                (
                    await session.execute(
                        select(TeamReply)
                        .where(
                            col(TeamReply.conversation_id) == conversation_id,
                            or_(
                                col(TeamReply.state).in_((ReplyState.PENDING, ReplyState.ECHO)),
                                col(TeamReply.state).in_(UNWARNED)
                                & col(TeamReply.warned).is_(False),
                            ),
                        )
                        .order_by(col(TeamReply.sent_at), col(TeamReply.id))
                    )
                ).scalars()
            )
            pending_actions = await actions.pending(session, conversation_id)
        # In order, and a message waiting for its retry holds back all the others.
        if any(m.next_attempt_at and m.next_attempt_at > now for m in messages):
            messages = []

        def due(reply: TeamReply) -> bool:
            return reply.next_attempt_at is None or reply.next_attempt_at <= now

        return DueWork(
            conversation=conversation,
            messages=messages,
            replies=[r for r in replies if r.state == ReplyState.PENDING and due(r)],
            echoes=[r for r in replies if r.state == ReplyState.ECHO and due(r)],
            unwarned=[r for r in replies if r.state in UNWARNED],
            actions=[
                a for a in pending_actions if a.next_attempt_at is None or a.next_attempt_at <= now
            ],
        )

    async def set_thread(
        self,
        conversation_id: int,
        channel: str,
        thread_ts: str,
        first_message_id: int | None = None,
    ) -> None:
        """Record a (new) root of the conversation: replies to it reach the conversation.

        `first_message_id`: the message the root quotes; it stays pending until what
        the root could not hold of it is posted in the thread.
        """
        async with self.db.session() as session:
            conversation = await self._conversation_for_update(
                session, Conversation.id == conversation_id
            )
            conversation.channel = channel
            conversation.thread_ts = thread_ts
            conversation.rendered_version = conversation.version
            conversation.root_attempt_at = None
            if first_message_id is not None:
                await session.execute(
                    update(CustomerMessage)
                    .where(col(CustomerMessage.id) == first_message_id)
                    .values(slack_channel=channel, slack_ts=thread_ts)
                )
            await insert_ignore(
                session,
                SlackThread,
                ("channel", "thread_ts"),
                channel=channel,
                thread_ts=thread_ts,
                conversation_id=conversation_id,
                created_at=utcnow(),
            )

    async def mark_posted(self, message_ids: Sequence[int], channel: str, ts: str) -> None:
        async with self.db.session() as session:
            await session.execute(
                update(CustomerMessage)
                .where(col(CustomerMessage.id).in_(message_ids))
                .values(
                    state=MessageState.POSTED,
                    slack_channel=channel,
                    slack_ts=ts,
                    last_error=None,
                    attempt_at=None,
                )
            )

    async def retry_messages_later(
        self, message_ids: Sequence[int], at: datetime, error: str, in_doubt: bool = False
    ) -> None:
        """`in_doubt`: Slack did not answer, so the post may exist (look before posting)."""
        values: dict[str, Any] = {
            "attempts": CustomerMessage.attempts + 1,
            "next_attempt_at": at,
            "last_error": error[:255],
        }
        if not in_doubt:
            values["attempt_at"] = None
        async with self.db.session() as session:
            await session.execute(
                update(CustomerMessage)
                .where(col(CustomerMessage.id).in_(message_ids))
                .values(**values)
            )

    async def mark_rendered(self, conversation_id: int, version: int) -> None:
        async with self.db.session() as session:
            await session.execute(
                update(Conversation)
                .where(
                    col(Conversation.id) == conversation_id,
                    col(Conversation.rendered_version) < version,
                )
                .values(rendered_version=version)
            )

    # -- team replies -------------------------------------------------------
    async def store_slack_reply(
        self,
        *,
        channel: str,
        thread_ts: str,
        ts: str,
        user_id: str,
        text: str,
        sent_at: datetime,
        kind: ReplyKind,
        state: ReplyState,
        message: str | None = None,
        not_before: datetime | None = None,
    ) -> tuple[Conversation, TeamReply] | None:
        """Store a thread message; None if the thread is no conversation's or a duplicate.

        `message` is the Slack message as JSON (what is converted when sending);
        `not_before` holds a pending reply back (the undo window)."""
        async with self.db.session() as session:
            conversation = (
                await session.execute(
                    select(Conversation)
                    .join(SlackThread, col(SlackThread.conversation_id) == Conversation.id)
                    .where(
                        col(SlackThread.channel) == channel, col(SlackThread.thread_ts) == thread_ts
                    )
                    .with_for_update(of=Conversation)
                )
            ).scalar_one_or_none()
            if conversation is None:
                return None
            conversation_id = conversation.id
            reply_id = await insert_ignore(
                session,
                TeamReply,
                ("slack_channel", "slack_ts"),
                conversation_id=conversation_id,
                network=conversation.network,
                source="slack",
                kind=kind,
                slack_channel=channel,
                slack_ts=ts,
                slack_thread_ts=thread_ts,
                user_id=user_id,
                text=text,
                sent_at=sent_at,
                state=state,
                attempts=0,
                warned=False,
                slack_message=message,
                next_attempt_at=not_before,
            )
            if reply_id is None:
                return None
            if (
                kind == ReplyKind.REPLY
                and state == ReplyState.PENDING
                and conversation.owner is None
            ):
                conversation.owner = user_id  # the first to reply owns it
                conversation.version += 1
            reply = await session.get(TeamReply, reply_id)
            assert reply is not None
            return conversation, reply

    async def store_network_replies(
        self,
        items: Sequence[NewCustomerMessage],
        hold_until: datetime,
        kind: ReplyKind = ReplyKind.REPLY,
    ) -> int:
        """Replies a colleague sent from the network's own inbox (echoes), or messages an
        automation on the business side sent (`kind=AUTOMATED`: shown, never an answer).

        Held as `echo` until `hold_until`: an echo of our own send may arrive before
        the send returns its id, and `mark_reply_sent` then drops the echo row.
        A person's reply naming its customer (`customer_id`) in a conversation not seen yet
        opens it: its root shows the customer, the thread the reply. Returns how many
        were new.
        """
        new = 0
        opening = [item for item in items if item.customer_id and kind == ReplyKind.REPLY]
        async with self.db.session() as session:
            # in key order, as a batch of customer messages creates conversations
            for item in sorted(opening, key=lambda i: (i.network, i.conversation_key)):
                await _open_for_reply(session, item)
            for item in items:
                conversation_id = (
                    await session.execute(conversation_by_key(item.network, item.conversation_key))
                ).scalar_one_or_none()
                if conversation_id is None:
                    continue  # not a conversation we relay
                if await is_auto_reply(session, item.network, item.external_id):
                    continue  # the echo of our out-of-hours auto-reply: nobody's reply
                inserted = await insert_ignore(
                    session,
                    TeamReply,
                    ("network", "external_id"),
                    conversation_id=conversation_id,
                    network=item.network,
                    source="network",
                    kind=kind,
                    external_id=item.external_id,
                    user_id=item.author_id,
                    user_name=item.author_name,
                    text=item.text,
                    sent_at=min(item.sent_at, item.received_at),
                    state=ReplyState.ECHO,
                    next_attempt_at=hold_until,
                    attempts=0,
                    warned=False,
                )
                new += inserted is not None
        return new

    async def confirm_echo(self, reply_id: int, channel: str, ts: str, now: datetime) -> None:
        """An inbox reply shown in Slack: it counts as a delivered team reply (an
        automated message does not)."""
        async with self.db.session() as session:
            reply = await session.get(TeamReply, reply_id)
            assert reply is not None
            conversation = await self._conversation_for_update(
                session, Conversation.id == reply.conversation_id
            )
            reply.state = ReplyState.SENT
            reply.delivered_at = now
            reply.slack_channel = channel
            reply.slack_ts = ts
            if reply.kind == ReplyKind.REPLY:
                await self._answer_turn(session, conversation, reply)

    async def mark_reply_sent(
        self, reply_id: int, external_id: str | None, now: datetime, sent_ids: Sequence[str] = ()
    ) -> Conversation:
        """A reply reached the customer: it answers the turn it was written in.

        `sent_ids` are the network ids of every message it was sent as (a long reply
        is several; `external_id` is the first)."""
        async with self.db.session() as session:
            reply = await session.get(TeamReply, reply_id)
            assert reply is not None
            conversation = await self._conversation_for_update(
                session, Conversation.id == reply.conversation_id
            )
            ours = {*sent_ids, *([external_id] if external_id is not None else [])}
            if ours:  # our own echoes, held back: not a colleague's replies
                await session.execute(
                    delete(TeamReply).where(
                        col(TeamReply.network) == reply.network,
                        col(TeamReply.external_id).in_(sorted(ours)),
                        col(TeamReply.state) == ReplyState.ECHO,
                    )
                )
            if sent_ids:
                reply.sent_ids = json.dumps(list(sent_ids))
            reply.state = ReplyState.SENT
            reply.delivered_at = now
            reply.external_id = external_id
            reply.last_error = None
            reply.attempt_at = None
            await self._answer_turn(session, conversation, reply)
            return conversation

    async def _answer_turn(
        self, session: AsyncSession, conversation: Conversation, reply: TeamReply
    ) -> None:
        turn = (
            await session.execute(
                select(Turn)
                .where(
                    col(Turn.conversation_id) == conversation.id,
                    col(Turn.started_at) <= reply.sent_at,
                )
                .order_by(col(Turn.started_at).desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        plan = core.answer_turn(
            TurnState(turn.started_at, turn.answered_at) if turn else None,
            _core_reply(reply),
            conversation.team,
            conversation.last_reply_at,
            self.hours,
        )
        if turn is not None and plan.turn is not None:
            _set_answer(turn, plan.turn)
            turn.team = plan.team
        _carry_out(conversation, plan.conversation)

    async def latest_customer_message_id(
        self, conversation_id: int, before: datetime
    ) -> str | None:
        """The network id of the customer's latest message up to `before` (the one a
        reply answers)."""
        async with self.db.read() as session:
            return (
                await session.execute(
                    select(col(CustomerMessage.external_id))
                    .where(
                        col(CustomerMessage.conversation_id) == conversation_id,
                        col(CustomerMessage.sent_at) <= before,
                    )
                    .order_by(col(CustomerMessage.sent_at).desc(), col(CustomerMessage.id).desc())
                    .limit(1)
                )
            ).scalar_one_or_none()

    async def reply(self, reply_id: int) -> TeamReply | None:
        async with self.db.read() as session:
            return await session.get(TeamReply, reply_id)

    async def slack_reply(self, channel: str, ts: str) -> TeamReply | None:
        async with self.db.read() as session:
            return (
                await session.execute(
                    select(TeamReply).where(
                        col(TeamReply.slack_channel) == channel, col(TeamReply.slack_ts) == ts
                    )
                )
            ).scalar_one_or_none()

    async def set_network_status(self, reply_id: int, status: NetworkStatus) -> None:
        """What became of the customer's copy of a reply (e.g. we deleted it)."""
        await self._set_reply(reply_id, network_status=status)

    async def _set_reply(self, reply_id: int, **values: Any) -> None:
        async with self.db.session() as session:
            await session.execute(
                update(TeamReply).where(col(TeamReply.id) == reply_id).values(**values)
            )

    async def cancel_pending_reply(self, reply_id: int) -> bool:
        """Forget a reply not sent yet (deleted in Slack); False when it was sent meanwhile."""
        async with self.db.session() as session:
            result = await session.execute(
                delete(TeamReply).where(
                    col(TeamReply.id) == reply_id, col(TeamReply.state) == ReplyState.PENDING
                )
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def rewrite_reply(
        self, reply_id: int, text: str, message: str, state: ReplyState
    ) -> bool:
        """A reply edited in Slack, if it is still in `state`; whether it was."""
        async with self.db.session() as session:
            result = await session.execute(
                update(TeamReply)
                .where(col(TeamReply.id) == reply_id, col(TeamReply.state) == state)
                .values(text=text, slack_message=message)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def mark_reply_internal(self, reply_id: int) -> None:
        """A pending reply became a note (edited before it was sent): never sent."""
        async with self.db.session() as session:
            await session.execute(
                update(TeamReply)
                .where(col(TeamReply.id) == reply_id, col(TeamReply.state) == ReplyState.PENDING)
                .values(kind=ReplyKind.NOTE, state=ReplyState.INTERNAL)
            )

    async def record_reply_parts(self, reply_id: int, sent_ids: Sequence[str]) -> None:
        """Part of a long reply was sent: a retry starts after these (and no send is in
        flight until the next part begins)."""
        async with self.db.session() as session:
            await session.execute(
                update(TeamReply)
                .where(col(TeamReply.id) == reply_id)
                .values(sent_ids=json.dumps(list(sent_ids)), attempt_at=None)
            )

    async def retry_reply_later(
        self, reply_id: int, at: datetime, error: str, warned: bool
    ) -> None:
        async with self.db.session() as session:
            await session.execute(
                update(TeamReply)
                .where(col(TeamReply.id) == reply_id)
                .values(
                    attempts=TeamReply.attempts + 1,
                    next_attempt_at=at,
                    last_error=error[:500],
                    warned=warned,
                    attempt_at=None,
                )
            )

    async def apply_delivery_statuses(self, statuses: Sequence[Mapping[str, Any]]) -> None:
        """A network's reports on our replies (WhatsApp `statuses[]`).

        `failed` after we thought a reply was sent makes it a failed delivery: it
        no longer answers its turn, and the dispatcher shows a warning in Slack.
        """
        async with self.db.session() as session:
            for status in statuses:
                reply = (
                    await session.execute(
                        select(TeamReply).where(
                            col(TeamReply.network) == status["network"],
                            col(TeamReply.external_id) == status["message_id"],
                        )
                    )
                ).scalar_one_or_none()
                if reply is None:
                    continue
                reply.network_status = NetworkStatus(status["status"])
                if reply.network_status == NetworkStatus.FAILED and reply.state == ReplyState.SENT:
                    conversation = await self._conversation_for_update(
                        session, Conversation.id == reply.conversation_id
                    )
                    reply.state = ReplyState.FAILED
                    reply.warned = False
                    reply.last_error = str(status.get("error") or "the network reported a failure")
                    await session.flush()
                    await self._unanswer(session, conversation, reply)

    async def _unanswer(
        self, session: AsyncSession, conversation: Conversation, reply: TeamReply
    ) -> None:
        """Re-derive the turn a failed reply had answered from the replies still delivered."""
        turn = (
            await session.execute(select(Turn).where(col(Turn.reply_id) == reply.id))
        ).scalar_one_or_none()
        if turn is None:
            return
        later_turn_start = (
            await session.execute(
                select(func.min(Turn.started_at)).where(
                    col(Turn.conversation_id) == conversation.id,
                    col(Turn.started_at) > turn.started_at,
                )
            )
        ).scalar_one_or_none()
        conditions = [
            col(TeamReply.conversation_id) == conversation.id,
            col(TeamReply.state) == ReplyState.SENT,
            col(TeamReply.kind) == ReplyKind.REPLY,
            col(TeamReply.sent_at) >= turn.started_at,
        ]
        if later_turn_start is not None:
            conditions.append(col(TeamReply.sent_at) < later_turn_start)
        other = (
            await session.execute(
                select(TeamReply).where(*conditions).order_by(col(TeamReply.sent_at)).limit(1)
            )
        ).scalar_one_or_none()
        answer = core.unanswer_turn(
            TurnState(turn.started_at, turn.answered_at),
            later_turn_start,
            [_core_reply(other)] if other else [],
            self.hours,
        )
        _set_answer(turn, answer)
        conversation.version += 1

    async def mark_reply_failed(self, reply_id: int, error: str) -> None:
        async with self.db.session() as session:
            await session.execute(
                update(TeamReply)
                .where(col(TeamReply.id) == reply_id)
                .values(
                    state=ReplyState.FAILED, last_error=error[:500], warned=False, attempt_at=None
                )
            )

    async def set_warned(self, reply_id: int) -> None:
        """The thread was told about the failure (set only after telling succeeded)."""
        await self._set_reply(reply_id, warned=True)

    # -- posting at most once -------------------------------------------------
    async def begin_root(self, conversation_id: int, now: datetime) -> None:
        """A root post starts: until it is recorded, it may exist in Slack."""
        async with self.db.session() as session:
            await session.execute(
                update(Conversation)
                .where(col(Conversation.id) == conversation_id)
                .values(root_attempt_at=now)
            )

    async def link_thread(self, conversation_id: int, channel: str, thread_ts: str) -> None:
        """Another root of the conversation (e.g. posted twice): replies to it count too."""
        async with self.db.session() as session:
            await insert_ignore(
                session,
                SlackThread,
                ("channel", "thread_ts"),
                channel=channel,
                thread_ts=thread_ts,
                conversation_id=conversation_id,
                created_at=utcnow(),
            )

    async def begin_post(self, message_ids: Sequence[int], now: datetime) -> None:
        """A thread post of these messages starts (kept until it is recorded)."""
        async with self.db.session() as session:
            await session.execute(
                update(CustomerMessage)
                .where(col(CustomerMessage.id).in_(message_ids))
                .values(attempt_at=now)
            )

    async def fail_messages(self, message_ids: Sequence[int], error: str) -> None:
        """Slack refused these for good (or for too long): later messages go on."""
        async with self.db.session() as session:
            await session.execute(
                update(CustomerMessage)
                .where(col(CustomerMessage.id).in_(message_ids))
                .values(state=MessageState.FAILED, last_error=error[:255], attempt_at=None)
            )

    async def begin_send(self, reply_id: int, now: datetime) -> None:
        """A send to the network starts: if nothing is recorded after it, it is in doubt."""
        await self._set_reply(reply_id, attempt_at=now)

    async def mark_reply_uncertain(self, reply_id: int) -> None:
        """Its send was cut short: not resent unless someone asks (Resend)."""
        async with self.db.session() as session:
            await session.execute(
                update(TeamReply)
                .where(col(TeamReply.id) == reply_id, col(TeamReply.state) == ReplyState.PENDING)
                .values(state=ReplyState.UNCERTAIN, warned=False, attempt_at=None)
            )

    async def resend(self, reply_id: int, conversation_id: int) -> TeamReply | None:
        """Send an uncertain reply of the conversation again; None if it is not (or no
        longer) uncertain, or belongs to another conversation."""
        async with self.db.session() as session:
            reply = await session.get(TeamReply, reply_id)
            if (
                reply is None
                or reply.conversation_id != conversation_id
                or reply.state != ReplyState.UNCERTAIN
            ):
                return None
            reply.state = ReplyState.PENDING
            reply.next_attempt_at = None
            reply.last_error = None
            await session.flush()
            return reply

    # -- actions on a conversation ------------------------------------------
    async def claim(self, conversation_id: int, user_id: str) -> ActionResult:
        return await self._act(conversation_id, lambda c: core.claim(c.owner, user_id))

    async def resolve(self, conversation_id: int, user_id: str, now: datetime) -> ActionResult:
        return await self._act(conversation_id, lambda c: core.resolve(c.status, user_id, now))

    async def reopen(self, conversation_id: int, user_id: str) -> ActionResult:
        return await self._act(conversation_id, lambda c: core.reopen(c.status))

    async def _act(
        self,
        conversation_id: int,
        decide: Callable[[Conversation], ConversationPlan | Unchanged],
    ) -> ActionResult:
        """Decide on the locked conversation and carry the plan out in one transaction."""
        async with self.db.session() as session:
            conversation = await self._conversation_for_update(
                session, Conversation.id == conversation_id
            )
            plan = decide(conversation)
            if isinstance(plan, Unchanged):
                return ActionResult(conversation, plan)
            _carry_out(conversation, plan)
            return ActionResult(conversation)


class HandoffRepository:
    """Handoffs between teams; kept apart from the relay's queries for readability."""

    def __init__(self, repo: Repository) -> None:
        self._repo = repo
        self.db = repo.db

    async def hand_off(
        self,
        conversation_id: int,
        *,
        team: str,
        channel: str,
        by_user: str,
        note: str | None,
        now: datetime,
    ) -> tuple[ActionResult, Handoff | None]:
        """Move the conversation to `team`; the dispatcher then posts its new root.

        Refused when it is already with that team, or while another handoff is still
        in flight, i.e. its new root is not posted yet (two people clicking at once:
        one handoff, and the second is told who won).
        """
        async with self.db.session() as session:
            conversation = await self._repo._conversation_for_update(
                session, Conversation.id == conversation_id
            )
            last = (
                await session.execute(
                    select(Handoff)
                    .where(col(Handoff.conversation_id) == conversation_id)
                    .order_by(col(Handoff.id).desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
            plan = core.hand_off(
                conversation.team,
                team,
                in_flight=last is not None and last.new_ts is None,
                by_user=by_user,
                channel=channel,
            )
            if isinstance(plan, Unchanged):
                return ActionResult(conversation, plan), last
            handoff = Handoff(
                conversation_id=conversation_id,
                from_team=conversation.team,
                to_team=team,
                by_user=by_user,
                note=note,
                created_at=now,
                old_channel=conversation.channel,
                old_ts=conversation.thread_ts,
            )
            session.add(handoff)
            _carry_out(conversation, plan)
            await session.flush()
            return ActionResult(conversation), handoff

    async def latest(self, conversation_id: int) -> Handoff | None:
        async with self.db.session() as session:
            return (
                await session.execute(
                    select(Handoff)
                    .where(col(Handoff.conversation_id) == conversation_id)
                    .order_by(col(Handoff.id).desc())
                    .limit(1)
                )
            ).scalar_one_or_none()

    async def all(self, conversation_id: int) -> list[Handoff]:
        async with self.db.session() as session:
            statement = (
                select(Handoff)
                .where(col(Handoff.conversation_id) == conversation_id)
                .order_by(col(Handoff.id))
            )
            return list((await session.execute(statement)).scalars())

    async def set_new_thread(self, handoff_id: int, channel: str, ts: str) -> None:
        async with self.db.session() as session:
            await session.execute(
                update(Handoff)
                .where(col(Handoff.id) == handoff_id)
                .values(new_channel=channel, new_ts=ts)
            )


def _core_reply(reply: TeamReply) -> core.Reply:
    assert reply.id is not None
    return core.Reply(reply.id, reply.sent_at, reply.user_id)


def _set_answer(turn: Turn, answer: core.TurnAnswer) -> None:
    turn.answered_at = answer.answered_at
    turn.reply_id = answer.reply_id
    turn.response_seconds = answer.response_seconds
    turn.business_response_seconds = answer.business_response_seconds


def backoff(attempts: int, retry_after: float | None = None) -> timedelta:
    """Delay before the next try: Retry-After when given, else exponential up to 5 min."""
    if retry_after is not None:
        return timedelta(seconds=max(retry_after, 0.5))
    return timedelta(seconds=min(2 ** min(attempts, 9), 300))


def _due_conversations() -> Select[int]:
    """Conversations with due work, lowest ids first, at most `:limit`.

    Each kind of work is read in conversation order from its own index and stops at the
    limit, so one look costs the same with a backlog of ten messages or 100,000 (the
    dispatcher looks up to ten times a second). Built once: building it cost more of a
    process's CPU than running it.
    """
    now = bindparam("now", type_=UTCDateTime)
    limit = bindparam("limit", type_=Integer)
    message_at, reply_at = col(CustomerMessage.next_attempt_at), col(TeamReply.next_attempt_at)
    action_at = col(CustomerAction.next_attempt_at)
    media_at = col(CustomerMedia.next_attempt_at)
    kinds: list[tuple[Any, tuple[Any, ...]]] = [  # (column, conditions)
        (
            col(CustomerMessage.conversation_id),
            (text(PENDING), or_(message_at.is_(None), message_at <= now)),
        ),
        (
            col(TeamReply.conversation_id),
            (col(TeamReply.state) == ReplyState.PENDING, or_(reply_at.is_(None), reply_at <= now)),
        ),
        (
            col(TeamReply.conversation_id),
            (col(TeamReply.state) == ReplyState.ECHO, reply_at <= now),
        ),
        (
            col(TeamReply.conversation_id),
            (col(TeamReply.state).in_(UNWARNED), col(TeamReply.warned).is_(False)),
        ),
        (
            col(CustomerAction.conversation_id),
            (text(PENDING), or_(action_at.is_(None), action_at <= now)),
        ),
        (col(Conversation.id), (text(STALE_ROOT),)),
        (col(Conversation.id), (text(ROOTLESS),)),
        (
            col(CustomerMedia.conversation_id),
            (text(PENDING), or_(media_at.is_(None), media_at <= now)),
        ),
    ]
    firsts = [
        select(column).where(*where).distinct().order_by(column).limit(limit).subquery()
        for column, where in kinds
    ]
    union = union_all(*(select(first.c[0].label("id")) for first in firsts)).subquery()
    return select(union.c.id).distinct().order_by(union.c.id).limit(limit)


def _next_due_at() -> Select[Any]:
    """The first retry time of each kind of waiting work (NULL: none), each one index entry."""
    message_at, reply_at = col(CustomerMessage.next_attempt_at), col(TeamReply.next_attempt_at)
    kinds: list[tuple[Any, Any]] = [  # (column, condition)
        (message_at, text(RETRYING)),
        (reply_at, col(TeamReply.state) == ReplyState.PENDING),
        (reply_at, col(TeamReply.state) == ReplyState.ECHO),
        (col(CustomerAction.next_attempt_at), text(RETRYING)),
        (col(CustomerMedia.next_attempt_at), text(RETRYING)),
    ]
    return select(
        *(
            select(column)
            .where(where, column.is_not(None))
            .order_by(column)
            .limit(1)
            .scalar_subquery()
            for column, where in kinds
        )
    )


_DUE_CONVERSATIONS = _due_conversations()
_NEXT_DUE_AT = _next_due_at()


async def _open_for_reply(session: AsyncSession, item: NewCustomerMessage) -> None:
    """The conversation a team reply from the network's inbox opens, when it is new (no
    customer message yet, so nothing waits for an answer). Looked for first: an insert
    that conflicts would still use up a conversation number on PostgreSQL."""
    assert item.customer_id is not None
    found = await session.execute(conversation_by_key(item.network, item.conversation_key))
    if found.scalar_one_or_none() is not None:
        return
    await insert_ignore(
        session,
        Conversation,
        ("network", "external_key"),
        network=item.network,
        external_key=item.conversation_key,
        customer_id=item.customer_id,
        customer_name=item.customer_id,
        reply_context=item.reply_context,
        root_text="",
        created_at=item.received_at,
        status=ConversationStatus.OPEN,
        version=1,
        rendered_version=0,
    )
