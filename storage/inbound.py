"""Storing a batch of inbound customer messages in a fixed number of statements.

A group commit carries many webhooks. Storing its messages one by one cost about
eight round trips each; here a batch costs a few statements whatever its size
(on PostgreSQL, follow-ups in known conversations take five round trips: begin,
lock, write-and-read, update, commit), with the same outcome as storing the
messages one after the other in order: duplicates ignored, a resolved
conversation reopened by its first new message, and turns opened or extended
exactly as a single message would.

Every statement is built once per dialect with its lists as one parameter
(`= ANY(array)` on PostgreSQL, `IN json_each(...)` on SQLite), so it is compiled
once and, on asyncpg, prepared once per connection. The code is plain functions of
an `Execute` (storage.db): SQLite runs them in its writer thread, PostgreSQL on the
asyncpg connection itself.

Lock order (PostgreSQL, several processes): a batch first locks the conversations
that exist (in key order), then inserts the new ones (in key order), then inserts
messages (in arrival order) only into conversations it holds. Two batches can
therefore never wait for each other in a cycle.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    ARRAY,
    JSON,
    ColumnElement,
    Integer,
    String,
    Table,
    any_,
    bindparam,
    column,
    func,
    insert,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import Executable

from storage.core import (
    REOPENED,
    SPLITS_TURNS,
    ConversationStatus,
    MessageState,
    ReplyKind,
    TurnState,
    open_turns,
)
from storage.db import Execute
from storage.models import Conversation, CustomerMessage, TeamReply, Turn, UTCDateTime


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
    customer_id: str | None = None  # a team reply from the network's inbox: to whom


@dataclass(frozen=True)
class Routed:
    """What routing rules decided for a new conversation (`bot.routing`)."""

    team: str | None = None
    priority: str | None = None
    tags: list[str] = field(default_factory=list)


# Called once per conversation a batch creates, with its first message, inside the
# batch's transaction: it must be cheap and must not block (rules compiled beforehand).
Route = Callable[[NewCustomerMessage], Routed | None]


@dataclass(frozen=True)
class Stored:
    """What storing one inbound message did."""

    conversation_id: int
    message_id: int | None  # None: a duplicate delivery, ignored
    new_conversation: bool = False
    reopened: bool = False


Key = tuple[str, str]  # (network, conversation key or message id)

_CONVERSATION: Table = Conversation.__table__  # type: ignore[attr-defined]
_MESSAGE: Table = CustomerMessage.__table__  # type: ignore[attr-defined]
_TURN: Table = Turn.__table__  # type: ignore[attr-defined]
_REPLY: Table = TeamReply.__table__  # type: ignore[attr-defined]


@dataclass
class _Conversation:
    """What the batch reads and changes of a locked conversation row."""

    id: int
    network: str
    external_key: str
    team: str | None
    status: ConversationStatus  # a plain string as asyncpg reads it: compare with ==
    customer_name: str
    customer_handle: str | None
    reply_context: dict[str, Any]
    last_customer_at: datetime | None


@dataclass(frozen=True)
class _Turn:
    """A conversation's latest turn as the batch reads it."""

    conversation_id: int
    started_at: datetime
    answered_at: datetime | None
    id: int


def store_batch(
    execute: Execute, items: Sequence[NewCustomerMessage], route: Route | None = None
) -> list[Stored]:
    """Store `items` in `execute`'s transaction; one `Stored` per item, in order.

    `route`: the team, priority and tags of each conversation created here."""
    sql = _statements(execute.dialect)
    items = [_join_replied(execute, sql, item) if item.in_reply_to else item for item in items]
    conversations, created = _conversations(execute, sql, items, route)
    message_ids, latest, replies = _insert_messages(execute, sql, items, conversations)

    results: list[Stored] = []
    new_sent: dict[int, list[datetime]] = {}  # conversation id -> its new messages' times
    touched: dict[int, _Conversation] = {}
    broadcast: list[int] = []
    for item in items:
        key = (item.network, item.conversation_key)
        conversation = conversations[key]
        # pop: a second copy of one message in the same batch is a duplicate too
        message_id = message_ids.pop((item.network, item.external_id), None)
        if message_id is None:
            results.append(Stored(conversation.id, None))
            continue
        sent_at = _capped(item)
        reopened = conversation.status == ConversationStatus.RESOLVED
        if reopened:
            broadcast.append(message_id)  # shown in the channel too
            conversation.status = ConversationStatus.OPEN
        if item.author_name != item.author_id:  # a bare id never hides a name found before
            conversation.customer_name = item.author_name
        conversation.customer_handle = item.author_handle or conversation.customer_handle
        conversation.reply_context = {**conversation.reply_context, **item.reply_context}
        if conversation.last_customer_at is None or sent_at > conversation.last_customer_at:
            conversation.last_customer_at = sent_at
        touched[conversation.id] = conversation
        new_sent.setdefault(conversation.id, []).append(sent_at)
        results.append(Stored(conversation.id, message_id, key in created, reopened))
        created.discard(key)
    if touched:
        execute(
            sql.update_conversations,
            [
                {
                    "row_id": c.id,
                    "name": c.customer_name,
                    "handle": c.customer_handle,
                    "context": c.reply_context,
                    "last": c.last_customer_at,
                }
                for c in touched.values()
            ],
        )
    if broadcast:
        execute(sql.broadcast, {"ids": broadcast})
    _open_turns(execute, sql, touched, new_sent, latest, replies)
    return results


def _capped(item: NewCustomerMessage) -> datetime:
    """A customer message's time is the network's, never later than its arrival."""
    return min(item.sent_at, item.received_at)


def _among(dialect: str, column: Any, name: str) -> ColumnElement[bool]:
    """`column` is one of the list bound as `name`, in a statement text of fixed length."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    values = func.json_each(bindparam(name, type_=JSON)).table_valued("value")
    return column.in_(select(values.c.value))  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _Statements:
    lock: Executable
    insert_conversations: Executable
    insert_routed_conversations: Executable  # with team, priority and tags
    insert_messages: Executable
    update_conversations: Executable
    broadcast: Executable
    latest_turns: Executable
    replies_since: Executable
    write_and_read: Executable | None  # PostgreSQL: the three above in one round trip
    move_turns: Executable
    insert_turns: Executable
    replied: tuple[Executable, Executable]


@cache
def _statements(dialect: str) -> _Statements:
    c, m, t, r = _CONVERSATION.c, _MESSAGE.c, _TURN.c, _REPLY.c
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    conversation_columns = (
        c.id,
        c.network,
        c.external_key,
        c.team,
        c.status,
        c.customer_name,
        c.customer_handle,
        c.reply_context,
        c.last_customer_at,
    )
    newest = (
        select(t.conversation_id, func.max(t.started_at).label("started"))
        .where(_among(dialect, t.conversation_id, "ids"))
        .group_by(t.conversation_id)
        .subquery()
    )
    insert_conversations = (
        dialect_insert(_CONVERSATION)
        .on_conflict_do_nothing(index_elements=["network", "external_key"])
        .returning(*conversation_columns)
    )
    return _Statements(
        lock=_lock_statement(dialect, conversation_columns),
        insert_conversations=_insert_conversations_at_once(routed=False)
        if dialect == "postgresql"
        else insert_conversations,
        # SQLite: the same statement, compiled for the parameters' keys
        insert_routed_conversations=_insert_conversations_at_once(routed=True)
        if dialect == "postgresql"
        else insert_conversations,
        insert_messages=dialect_insert(_MESSAGE)
        .on_conflict_do_nothing(index_elements=["network", "external_id"])
        .returning(m.id, m.network, m.external_id),
        # New customer messages: the conversation is open (reopened if it was resolved),
        # shows the customer's latest name, and its root is due for re-rendering.
        update_conversations=update(_CONVERSATION)
        .where(c.id == bindparam("row_id"))
        .values(
            **REOPENED,
            customer_name=bindparam("name"),
            customer_handle=bindparam("handle"),
            reply_context=bindparam("context"),
            last_customer_at=bindparam("last"),
            version=c.version + 1,
        ),
        broadcast=update(_MESSAGE).where(_among(dialect, m.id, "ids")).values(broadcast=True),
        latest_turns=select(t.conversation_id, t.started_at, t.answered_at, t.id)
        .join(
            newest,
            (newest.c.conversation_id == t.conversation_id) & (newest.c.started == t.started_at),
        )
        .order_by(t.id),
        replies_since=select(r.conversation_id, r.sent_at).where(
            _among(dialect, r.conversation_id, "ids"),
            r.kind == ReplyKind.REPLY,
            r.state.in_(SPLITS_TURNS),
            r.sent_at >= bindparam("since", type_=UTCDateTime),
        ),
        write_and_read=_write_and_read() if dialect == "postgresql" else None,
        move_turns=update(_TURN)
        .where(t.id == bindparam("row_id"))
        .values(started_at=bindparam("start")),
        insert_turns=insert(_TURN),
        replied=tuple(  # type: ignore[arg-type]
            select(c.external_key)
            .join(table, table.c.conversation_id == c.id)
            .where(
                table.c.network == bindparam("network"),
                table.c.external_id == bindparam("external_id"),
            )
            for table in (_MESSAGE, _REPLY)
        ),
    )


def _lock_statement(dialect: str, columns: Sequence[Any]) -> Executable:
    """The conversations of one network among a sorted list of keys, locked in that order.

    On PostgreSQL each key is one lookup on the unique (network, key) index, whatever
    the planner knows of the table: with `= ANY(keys)` a fresh, unanalysed table was
    read whole under the network's index entry on every batch.
    """
    c = _CONVERSATION.c
    if dialect != "postgresql":
        return select(*columns).where(
            c.network == bindparam("network"), _among(dialect, c.external_key, "keys")
        )
    keys = (
        func.unnest(bindparam("keys", type_=ARRAY(String))).table_valued("key").render_derived("k")
    )
    locked = (
        select(*columns)
        .where(c.network == bindparam("network"), c.external_key == keys.c.key)
        .with_for_update()
        .lateral("locked")
    )
    return select(*locked.c).select_from(keys).join(locked, true())


_NEW_CONVERSATION = (
    "network",
    "external_key",
    "customer_id",
    "customer_name",
    "customer_handle",
    "reply_context",
    "root_text",
    "created_at",
)
# Written only when routing rules decided something for one of the batch's conversations.
_ROUTING = ("team", "priority", "tags")


def _insert_conversations_at_once(*, routed: bool) -> Executable:
    """PostgreSQL: insert a batch's new conversations from arrays, in key order, in one
    round trip (asyncpg's executemany returns no rows). `routed`: with the routing
    columns (tags as JSON text: a list in an array parameter reads as a dimension)."""
    columns, values, arrays, names = "", "", "", ""
    if routed:
        columns = ", team, priority, tags"
        values = ", team, priority, CAST(tags AS json)"
        arrays = (
            ",\n    CAST(:team AS varchar[]), CAST(:priority AS varchar[]), CAST(:tags AS text[])"
        )
        names = ", team, priority, tags"
    return text(
        f"""
INSERT INTO conversation (network, external_key, customer_id, customer_name, customer_handle,
    reply_context, root_text, created_at{columns}, status, version, rendered_version)
SELECT network, external_key, customer_id, customer_name, customer_handle, reply_context,
    root_text, created_at{values}, 'open', 1, 0
FROM unnest(
    CAST(:network AS varchar[]), CAST(:external_key AS varchar[]),
    CAST(:customer_id AS varchar[]), CAST(:customer_name AS varchar[]),
    CAST(:customer_handle AS varchar[]), CAST(:reply_context AS json[]),
    CAST(:root_text AS text[]), CAST(:created_at AS timestamptz[]){arrays}
) WITH ORDINALITY AS i(network, external_key, customer_id, customer_name, customer_handle,
                       reply_context, root_text, created_at{names}, n)
ORDER BY n
ON CONFLICT (network, external_key) DO NOTHING
RETURNING id, network, external_key, team, status, customer_name, customer_handle,
    reply_context, last_customer_at
"""
    ).bindparams(
        *(
            bindparam(name, type_=ARRAY(String))
            for name in (*_NEW_CONVERSATION, *(_ROUTING if routed else ()))
            if name not in ("reply_context", "created_at")
        ),
        bindparam("reply_context", type_=ARRAY(JSON)),
        bindparam("created_at", type_=ARRAY(UTCDateTime)),
    )


def _join_replied(
    execute: Execute, sql: _Statements, item: NewCustomerMessage
) -> NewCustomerMessage:
    """A reply to a known message (an X mention answering our post) joins its conversation."""
    for statement in sql.replied:
        rows = execute(statement, {"network": item.network, "external_id": item.in_reply_to})
        if rows:
            return replace(item, conversation_key=rows[0][0])
    return item


def _conversations(
    execute: Execute, sql: _Statements, items: Sequence[NewCustomerMessage], route: Route | None
) -> tuple[dict[Key, _Conversation], set[Key]]:
    """Lock the batch's conversations, creating the new ones; returns them by key, and the
    keys created now."""
    first: dict[Key, NewCustomerMessage] = {}
    for item in items:
        first.setdefault((item.network, item.conversation_key), item)
    found = _lock(execute, sql, list(first))
    missing = sorted(key for key in first if key not in found)
    if not missing:
        return found, set()
    routes = {key: route(first[key]) for key in missing} if route is not None else {}
    routed = any(routes.values())
    rows = [_new_conversation(first[key], routes.get(key), routed) for key in missing]
    parameters: list[dict[str, Any]] | dict[str, Any] = rows
    if execute.dialect == "postgresql":  # one statement over arrays, in key order
        names = (*_NEW_CONVERSATION, *(_ROUTING if routed else ()))
        parameters = {name: [row[name] for row in rows] for name in names}
        if routed:
            parameters["tags"] = [json.dumps(tags) for tags in parameters["tags"]]
    statement = sql.insert_routed_conversations if routed else sql.insert_conversations
    inserted = [_Conversation(*row) for row in execute(statement, parameters)]
    created = {(c.network, c.external_key): c for c in inserted}
    found.update(created)
    raced = [key for key in missing if key not in created]  # created by another process
    if raced:
        found.update(_lock(execute, sql, raced))
    return found, set(created)


def _new_conversation(
    item: NewCustomerMessage, routed: Routed | None, with_routing: bool
) -> dict[str, Any]:
    """A conversation row; `with_routing`: with the routing columns (None: nothing decided)."""
    row: dict[str, Any] = {
        "network": item.network,
        "external_key": item.conversation_key,
        "customer_id": item.author_id,
        "customer_name": item.author_name,
        "customer_handle": item.author_handle,
        "reply_context": item.reply_context,
        "root_text": item.text,
        "created_at": item.received_at,
        "status": ConversationStatus.OPEN,
        "version": 1,
        "rendered_version": 0,
    }
    if with_routing:
        routed = routed or Routed()
        row.update(team=routed.team, priority=routed.priority, tags=routed.tags)
    return row


def _lock(execute: Execute, sql: _Statements, keys: Sequence[Key]) -> dict[Key, _Conversation]:
    """The existing conversations among `keys`, locked (PostgreSQL) in key order."""
    by_network: dict[str, list[str]] = {}
    for network, key in sorted(keys):
        by_network.setdefault(network, []).append(key)
    found: dict[Key, _Conversation] = {}
    for network, ids in by_network.items():
        for row in execute(sql.lock, {"network": network, "keys": ids}):
            conversation = _Conversation(*row)
            found[(conversation.network, conversation.external_key)] = conversation
    return found


def _insert_messages(
    execute: Execute,
    sql: _Statements,
    items: Sequence[NewCustomerMessage],
    conversations: dict[Key, _Conversation],
) -> tuple[dict[Key, int], dict[int, _Turn], list[tuple[int, datetime]]]:
    """Insert the messages not stored before and read what turns are made of.

    Returns (network, external id) -> new row id; each batch conversation's latest turn
    (conversations are locked, so no turn changes under us); and (conversation id, time)
    of the team replies that may split turns: pending or delivered, written since the
    earliest of the batch's messages and of those turns' starts (a superset: the caller
    compares each with its own conversation's bound).
    """
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
                "state": MessageState.PENDING,
                "broadcast": False,
                "attempts": 0,
            },
        )
    ids = sorted({conversation.id for conversation in conversations.values()})
    earliest = min(row["sent_at"] for row in rows.values())
    if sql.write_and_read is not None:
        return _write_and_read_at_once(
            execute, sql.write_and_read, list(rows.values()), ids, earliest
        )
    # in arrival order: the row id orders messages that share a timestamp
    inserted = execute(sql.insert_messages, list(rows.values()))
    message_ids = {(network, external_id): id_ for id_, network, external_id in inserted}
    latest = _latest(execute(sql.latest_turns, {"ids": ids}))
    since = min([earliest, *(turn.started_at for turn in latest.values())])
    replies = execute(sql.replies_since, {"ids": ids, "since": since})
    return message_ids, latest, [(cid, at) for cid, at in replies]


def _latest(rows: Any) -> dict[int, _Turn]:
    """Each conversation's latest turn; on a tie in start time the newest row wins."""
    turns = sorted((_Turn(*row) for row in rows), key=lambda turn: turn.id)
    return {turn.conversation_id: turn for turn in turns}


def _write_and_read() -> Executable:
    """PostgreSQL: insert the batch's messages (from arrays, in arrival order) and read
    the latest turns and the replies in the same statement, one round trip instead of
    three. Its snapshot is taken after the conversations were locked, so it sees every
    turn and reply committed by whoever held them before."""
    return (
        text(
            """
WITH item AS (
    SELECT * FROM unnest(
        CAST(:conversation_id AS integer[]), CAST(:network AS varchar[]),
        CAST(:external_id AS varchar[]), CAST(:author_id AS varchar[]),
        CAST(:author_name AS varchar[]), CAST(:text AS text[]),
        CAST(:sent_at AS timestamptz[]), CAST(:received_at AS timestamptz[])
    ) WITH ORDINALITY AS i(conversation_id, network, external_id, author_id, author_name,
                           text, sent_at, received_at, n)
), attachment AS (
    SELECT value, n FROM json_array_elements(CAST(:attachments AS json))
        WITH ORDINALITY AS a(value, n)
), inserted AS (
    INSERT INTO customer_message (conversation_id, network, external_id, author_id,
        author_name, text, attachments, sent_at, received_at, state, broadcast, attempts)
    SELECT i.conversation_id, i.network, i.external_id, i.author_id, i.author_name, i.text,
        a.value, i.sent_at, i.received_at, 'pending', false, 0
    FROM item AS i JOIN attachment AS a USING (n)
    ORDER BY i.n
    ON CONFLICT (network, external_id) DO NOTHING
    RETURNING id, network, external_id
), newest AS (
    SELECT conversation_id, max(started_at) AS started FROM turn
    WHERE conversation_id = ANY(CAST(:ids AS integer[])) GROUP BY conversation_id
), latest AS (
    SELECT t.conversation_id, t.started_at, t.answered_at, t.id FROM turn AS t
    JOIN newest ON newest.conversation_id = t.conversation_id
        AND newest.started = t.started_at
)
SELECT 'message' AS kind, id, network, external_id,
    NULL::integer AS conversation_id, NULL::timestamptz AS at, NULL::timestamptz AS until
FROM inserted
UNION ALL
SELECT 'turn', id, NULL, NULL, conversation_id, started_at, answered_at FROM latest
UNION ALL
SELECT 'reply', NULL, NULL, NULL, conversation_id, sent_at, NULL FROM team_reply
WHERE conversation_id = ANY(CAST(:ids AS integer[])) AND kind = 'reply'
    AND state IN ('pending', 'sent')
    AND sent_at >= LEAST(CAST(:since AS timestamptz), (SELECT min(started_at) FROM latest))
"""
        )
        .bindparams(
            bindparam("conversation_id", type_=ARRAY(Integer)),
            *(bindparam(name, type_=ARRAY(String)) for name in _TEXT_ARRAYS),
            bindparam("sent_at", type_=ARRAY(UTCDateTime)),
            bindparam("received_at", type_=ARRAY(UTCDateTime)),
            bindparam("attachments", type_=JSON),
            bindparam("ids", type_=ARRAY(Integer)),
            bindparam("since", type_=UTCDateTime),
        )
        .columns(
            column("kind", String),
            column("id", Integer),
            column("network", String),
            column("external_id", String),
            column("conversation_id", Integer),
            column("at", UTCDateTime),
            column("until", UTCDateTime),
        )
    )


_TEXT_ARRAYS = ("network", "external_id", "author_id", "author_name", "text")


def _write_and_read_at_once(
    execute: Execute,
    statement: Executable,
    rows: list[dict[str, Any]],
    ids: list[int],
    since: datetime,
) -> tuple[dict[Key, int], dict[int, _Turn], list[tuple[int, datetime]]]:
    parameters: dict[str, Any] = {
        name: [row[name] for row in rows]
        for name in ("conversation_id", *_TEXT_ARRAYS, "sent_at", "received_at", "attachments")
    }
    parameters.update(ids=ids, since=since)
    message_ids: dict[Key, int] = {}
    turns, replies = [], []
    for kind, id_, network, external_id, conversation_id, at, until in execute(
        statement, parameters
    ):
        if kind == "message":
            message_ids[(network, external_id)] = id_
        elif kind == "turn":
            turns.append((conversation_id, at, until, id_))
        else:
            replies.append((conversation_id, at))
    return message_ids, _latest(turns), replies


def _open_turns(
    execute: Execute,
    sql: _Statements,
    conversations: dict[int, _Conversation],
    new_sent: dict[int, list[datetime]],
    latest: dict[int, _Turn],
    replies_read: list[tuple[int, datetime]],
) -> None:
    """Open or extend each conversation's turn for its new messages, in arrival order
    (`storage.core.open_turns` decides), then apply every conversation's plan in bulk."""
    if not new_sent:
        return
    replies: dict[int, list[datetime]] = {}
    for conversation_id, sent_at in replies_read:
        replies.setdefault(conversation_id, []).append(sent_at)
    moved: list[dict[str, Any]] = []
    opened: list[dict[str, Any]] = []
    for conversation_id, times in new_sent.items():
        turn = latest.get(conversation_id)
        plan = open_turns(
            TurnState(turn.started_at, turn.answered_at) if turn else None,
            times,
            replies.get(conversation_id, ()),
        )
        if turn is not None and plan.moved_to is not None:
            moved.append({"row_id": turn.id, "start": plan.moved_to})
        conversation = conversations[conversation_id]
        opened.extend(
            {
                "conversation_id": conversation_id,
                "network": conversation.network,
                "team": conversation.team,
                "is_first": new.is_first,
                "started_at": new.started_at,
            }
            for new in plan.opened
        )
    if moved:
        execute(sql.move_turns, moved)
    if opened:
        execute(sql.insert_turns, opened)
