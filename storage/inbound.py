"""Storing a batch of inbound customer messages in a fixed number of statements.

A group commit carries many webhooks. Storing its messages one by one cost about
eight round trips each; here a batch costs about seven statements whatever its
size, with the same outcome as storing the messages one after the other in order:
duplicates ignored, a resolved conversation reopened by its first new message,
and turns opened or extended exactly as a single message would.

Lock order (PostgreSQL, several processes): conversations are inserted and then
locked in key and id order, and messages are inserted (in arrival order) only
while their conversation is locked, so two batches never wait for each other in
a cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, ColumnElement, any_, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.models import Conversation, CustomerMessage, TeamReply, Turn


@dataclass(frozen=True)
class NewCustomerMessage:
    network: str
    conversation_key: str
    external_id: str
    author_id: str
    author_name: str
    text: str
    sent_at: datetime
    received_at: datetime
    author_handle: str | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    reply_context: dict[str, Any] = field(default_factory=dict)
    in_reply_to: str | None = None  # a network message id: join its conversation


@dataclass(frozen=True)
class Stored:
    """What storing one inbound message did."""

    conversation_id: int
    message_id: int | None  # None: a duplicate delivery, ignored
    new_conversation: bool = False
    reopened: bool = False


Key = tuple[str, str]  # (network, conversation key or message id)


def store_batch(session: Session, items: Sequence[NewCustomerMessage]) -> list[Stored]:
    """Store `items` in the session's transaction; one `Stored` per item, in order."""
    items = [_join_replied(session, item) if item.in_reply_to else item for item in items]
    created = _insert_conversations(session, items)
    conversations = _lock_conversations(session, items)
    message_ids = _insert_messages(session, items, conversations)

    results: list[Stored] = []
    new_sent: dict[int, list[datetime]] = {}  # conversation id -> its new messages' times
    touched: dict[int, Conversation] = {}
    broadcast: list[int] = []
    for item in items:
        conversation = conversations[(item.network, item.conversation_key)]
        assert conversation.id is not None
        # pop: a second copy of one message in the same batch is a duplicate too
        message_id = message_ids.pop((item.network, item.external_id), None)
        if message_id is None:
            results.append(Stored(conversation.id, None))
            continue
        sent_at = _capped(item)
        reopened = conversation.status == "resolved"
        if reopened:
            broadcast.append(message_id)  # shown in the channel too
            conversation.status = "open"
            conversation.resolved_by = None
            conversation.resolved_at = None
        conversation.customer_name = item.author_name
        conversation.customer_handle = item.author_handle or conversation.customer_handle
        conversation.reply_context = {**conversation.reply_context, **item.reply_context}
        if conversation.last_customer_at is None or sent_at > conversation.last_customer_at:
            conversation.last_customer_at = sent_at
        touched[conversation.id] = conversation
        new_sent.setdefault(conversation.id, []).append(sent_at)
        key = (item.network, item.conversation_key)
        results.append(Stored(conversation.id, message_id, key in created, reopened))
        created.discard(key)
    for conversation in touched.values():
        conversation.version += 1
    if broadcast:
        session.execute(
            update(CustomerMessage)
            .where(CustomerMessage.id.in_(broadcast))  # type: ignore[union-attr]
            .values(broadcast=True)
        )
    _open_turns(session, touched, new_sent)
    return results


def _capped(item: NewCustomerMessage) -> datetime:
    """A customer message's time is the network's, never later than its arrival."""
    return min(item.sent_at, item.received_at)


def _dialect_insert(session: Session) -> Any:
    bind = session.bind
    return postgresql.insert if bind.dialect.name == "postgresql" else sqlite.insert


def _among(session: Session, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """`column IN values`; on PostgreSQL `column = ANY(array)`: one statement text for any
    count, so asyncpg prepares it once per connection instead of once per list length."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)  # type: ignore[no-any-return]


def _join_replied(session: Session, item: NewCustomerMessage) -> NewCustomerMessage:
    """A reply to a known message (an X mention answering our post) joins its conversation."""
    assert item.in_reply_to is not None
    for model in (CustomerMessage, TeamReply):
        key = (
            session.execute(
                select(Conversation.external_key)
                .join(model, model.conversation_id == Conversation.id)  # type: ignore[arg-type]
                .where(model.network == item.network, model.external_id == item.in_reply_to)
            )
        ).scalar_one_or_none()
        if key is not None:
            return replace(item, conversation_key=key)
    return item


def _insert_conversations(session: Session, items: Sequence[NewCustomerMessage]) -> set[Key]:
    """Create the conversations not seen before; returns the keys created now."""
    first: dict[Key, NewCustomerMessage] = {}
    for item in items:
        first.setdefault((item.network, item.conversation_key), item)
    rows = [
        {
            "network": item.network,
            "external_key": item.conversation_key,
            "customer_id": item.author_id,
            "customer_name": item.author_name,
            "customer_handle": item.author_handle,
            "reply_context": item.reply_context,
            "root_text": item.text,
            "created_at": item.received_at,
            "status": "open",
            "version": 1,
            "rendered_version": 0,
        }
        for _, item in sorted(first.items())
    ]
    table = Conversation.__table__  # type: ignore[attr-defined]
    statement = (
        _dialect_insert(session)(table)
        .on_conflict_do_nothing(index_elements=["network", "external_key"])
        .returning(table.c.network, table.c.external_key)
    )
    return {(network, key) for network, key in session.execute(statement, rows)}


def _lock_conversations(
    session: Session, items: Sequence[NewCustomerMessage]
) -> dict[Key, Conversation]:
    keys: dict[str, set[str]] = {}
    for item in items:
        keys.setdefault(item.network, set()).add(item.conversation_key)
    # one IN list per network: SQLite uses the unique index for that, not for row values
    statement = (
        select(Conversation)
        .where(
            or_(
                *(
                    (Conversation.network == network)
                    & _among(session, Conversation.external_key, sorted(ids))
                    for network, ids in sorted(keys.items())
                )
            )
        )
        .order_by(Conversation.id)  # type: ignore[arg-type]
        .with_for_update()
    )
    found = (session.execute(statement)).scalars()
    return {(c.network, c.external_key): c for c in found}


def _insert_messages(
    session: Session,
    items: Sequence[NewCustomerMessage],
    conversations: dict[Key, Conversation],
) -> dict[Key, int]:
    """Insert the messages not stored before; returns (network, external id) -> row id."""
    rows: dict[Key, dict[str, Any]] = {}
    for item in items:
        rows.setdefault(
            (item.network, item.external_id),
            {
                "conversation_id": conversations[(item.network, item.conversation_key)].id,
                "network": item.network,
                "external_id": item.external_id,
                "author_id": item.author_id,
                "author_name": item.author_name,
                "text": item.text,
                "attachments": item.attachments,
                "sent_at": _capped(item),
                "received_at": item.received_at,
                "state": "pending",
                "broadcast": False,
                "attempts": 0,
            },
        )
    table = CustomerMessage.__table__  # type: ignore[attr-defined]
    statement = (
        _dialect_insert(session)(table)
        .on_conflict_do_nothing(index_elements=["network", "external_id"])
        .returning(table.c.id, table.c.network, table.c.external_id)
    )
    # in arrival order: the row id orders messages that share a timestamp
    inserted = session.execute(statement, list(rows.values()))
    return {(network, external_id): id_ for id_, network, external_id in inserted}


def _open_turns(
    session: Session,
    conversations: dict[int, Conversation],
    new_sent: dict[int, list[datetime]],
) -> None:
    """Open or extend each conversation's turn for its new messages, in arrival order.

    A message extends the open turn unless a team reply (pending or delivered) was
    written between the turn's start and the message: then that reply answers the
    turn once delivered, and the message starts the next one. A message written
    before the latest turn's answer (or before a reply that precedes the open turn)
    belongs to an earlier turn and changes nothing.
    """
    latest = _latest_turns(session, list(new_sent))
    since = {cid: min(*new_sent[cid], turn.started_at) for cid, turn in latest.items()}
    replies = _replies_since(session, since)
    for conversation_id, times in new_sent.items():
        conversation = conversations[conversation_id]
        turn = latest.get(conversation_id)
        for sent_at in times:
            if turn is not None and turn.answered_at is None:
                start = turn.started_at
                low, high = min(start, sent_at), max(start, sent_at)
                if not any(low <= at <= high for at in replies.get(conversation_id, ())):
                    turn.started_at = low
                    continue
                if sent_at < start:
                    continue  # written before a reply that precedes this turn: an earlier turn's
            if turn is not None and turn.answered_at is not None and sent_at < turn.answered_at:
                continue
            fresh = Turn(
                conversation_id=conversation_id,
                network=conversation.network,
                team=conversation.team,
                is_first=turn is None,
                started_at=sent_at,
            )
            session.add(fresh)
            turn = fresh


def _latest_turns(session: Session, conversation_ids: list[int]) -> dict[int, Turn]:
    newest = (
        select(Turn.conversation_id, func.max(Turn.started_at).label("started"))
        .where(_among(session, Turn.conversation_id, conversation_ids))
        .group_by(Turn.conversation_id)  # type: ignore[arg-type]
        .subquery()
    )
    statement = (
        select(Turn)
        .join(
            newest,
            (newest.c.conversation_id == Turn.conversation_id)
            & (newest.c.started == Turn.started_at),
        )
        .order_by(Turn.id)  # type: ignore[arg-type]
    )
    # ties on started_at: the newest row wins
    return {turn.conversation_id: turn for turn in (session.execute(statement)).scalars()}


def _replies_since(session: Session, since: dict[int, datetime]) -> dict[int, list[datetime]]:
    """Times of team replies (pending or delivered) written since `since[conversation]`."""
    if not since:
        return {}
    statement = select(TeamReply.conversation_id, TeamReply.sent_at).where(
        _among(session, TeamReply.conversation_id, list(since)),
        TeamReply.kind == "reply",
        TeamReply.state.in_(("pending", "sent")),  # type: ignore[attr-defined]
        TeamReply.sent_at >= min(since.values()),
    )
    found: dict[int, list[datetime]] = {}
    for conversation_id, sent_at in session.execute(statement):
        if sent_at >= since[conversation_id]:
            found.setdefault(conversation_id, []).append(sent_at)
    return found
