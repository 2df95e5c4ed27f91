"""The Repository (storage/repo.py) on SQLite and PostgreSQL.

Every test runs on both: SQLite in a temporary file, PostgreSQL in a database
created for this module (through an admin connection to the shared `test`
database) and dropped afterwards; its tables are emptied between tests. "Two
processes" are two `Database` objects (two engines, two connection pools).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import Connection, make_url
from sqlmodel import SQLModel

from storage.core import ReplyKind, ReplyState
from storage.db import Database, DatabaseUnavailable
from storage.models import Conversation, CustomerMessage, TeamReply, Turn
from storage.repo import DueWork, NewCustomerMessage, Repository, Stored, backoff
from tests.harness import until
from tests.services import require_postgres

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CHANNEL = "C0INBOX01"
AGENT = "U0AGENT01"

# -- databases -------------------------------------------------------------------


def _dsn(url: str, database: str) -> str:
    return (
        make_url(url)
        .set(drivername="postgresql", database=database)
        .render_as_string(hide_password=False)
    )


def _run(work: Coroutine[Any, Any, None]) -> None:
    """Run set-up work on a loop of its own (fixtures may be built inside a test's loop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, work).result()


async def _admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(_dsn(url, make_url(url).database or "postgres"))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def _migrate(url: str) -> None:
    db = Database(url)
    try:
        await db.migrate()
    finally:
        await db.dispose()


# Sessions of this test's database waiting on a lock (another session's row lock).
LOCK_WAITS = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A database of our own for this module; others use `test` at the same time."""
    base = require_postgres()
    name = f"relaydesk_repo_{secrets.token_hex(4)}"
    _run(_admin(base, f'CREATE DATABASE "{name}"'))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        _run(_migrate(url))
        yield url
    finally:
        _run(_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _all_tables() -> str:
    return ", ".join(f'"{table.name}"' for table in SQLModel.metadata.sorted_tables)


@dataclass
class Store:
    """A database URL and a factory for more `Database` objects on it ("processes")."""

    url: str
    dialect: str
    opened: list[Database]

    def database(self) -> Database:
        db = Database(self.url)
        self.opened.append(db)
        return db


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'repo.db'}"
        created = Store(url, "sqlite", [])
        await created.database().migrate()
    else:
        url = request.getfixturevalue("postgres_url")
        created = Store(url, "postgresql", [])
        async with created.database().session() as session:
            await session.execute(text(f"TRUNCATE {_all_tables()} RESTART IDENTITY CASCADE"))
    try:
        yield created
    finally:
        for db in created.opened:
            await db.dispose()


@pytest.fixture
def repo(store: Store) -> Repository:
    return Repository(store.database())


# -- builders ----------------------------------------------------------------------


def message(
    key: str,
    external_id: str,
    at: datetime,
    *,
    text: str = "hello",
    network: str = "telegram",
    received: datetime | None = None,
) -> NewCustomerMessage:
    return NewCustomerMessage(
        network=network,
        conversation_key=key,
        external_id=external_id,
        author_id=f"cust-{key}",
        author_name="Ada",
        author_handle="ada",
        text=text,
        sent_at=at,
        received_at=received or at + timedelta(seconds=1),
        reply_context={"chat_id": key},
    )


async def store_one(repo: Repository, item: NewCustomerMessage) -> Stored:
    (stored,) = await repo.store_customer_messages([item])
    return stored


def slack_ts(at: datetime) -> str:
    return f"{at.timestamp():.6f}"


async def due_work(repo: Repository, conversation_id: int, now: datetime) -> DueWork:
    work = await repo.due_work(conversation_id, now)
    assert work is not None
    return work


async def threaded(repo: Repository, key: str = "chat-1", at: datetime = T0) -> int:
    """A conversation with its first message at `at` and a Slack root."""
    stored = await store_one(repo, message(key, f"{key}:1", at))
    await repo.set_thread(stored.conversation_id, CHANNEL, slack_ts(at + timedelta(seconds=2)))
    return stored.conversation_id


async def reply(
    repo: Repository,
    conversation_id: int,
    at: datetime,
    *,
    kind: str = "reply",
    state: str = "pending",
    user: str = AGENT,
) -> TeamReply:
    conversation = await repo.conversation(conversation_id)
    assert conversation is not None and conversation.thread_ts is not None
    stored = await repo.store_slack_reply(
        channel=CHANNEL,
        thread_ts=conversation.thread_ts,
        ts=slack_ts(at),
        user_id=user,
        text=f"{kind} at {at.isoformat()}",
        sent_at=at,
        kind=ReplyKind(kind),
        state=ReplyState(state),
    )
    assert stored is not None
    return stored[1]


async def delivered(repo: Repository, conversation_id: int, at: datetime, ext: str) -> TeamReply:
    written = await reply(repo, conversation_id, at)
    assert written.id is not None
    await repo.mark_reply_sent(written.id, ext, at + timedelta(seconds=1))
    return written


def summary(turns: list[Turn]) -> list[tuple[datetime, float | None, bool]]:
    return [(t.started_at, t.response_seconds, t.is_first) for t in turns]


async def count(db: Database, model: type[SQLModel]) -> int:
    async with db.session() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


# -- inbound messages ------------------------------------------------------------------


async def test_duplicate_inbound_message_is_stored_once(repo: Repository) -> None:
    first = await store_one(repo, message("chat-1", "chat-1:7", T0, text="hi"))
    assert first.message_id is not None and first.new_conversation
    again = await store_one(repo, message("chat-1", "chat-1:7", T0, text="hi"))
    assert again == Stored(first.conversation_id, None)
    # ...also when both copies come in one batch (group commit)
    batch = await repo.store_customer_messages(
        [message("chat-1", "chat-1:8", T0), message("chat-1", "chat-1:8", T0)]
    )
    assert batch[0].message_id is not None and batch[1].message_id is None
    assert len(await repo.messages(first.conversation_id)) == 2
    assert await count(repo.db, Conversation) == 1
    conversation = await repo.conversation(first.conversation_id)
    assert conversation is not None and conversation.version == 3  # created, +1, +1


async def _batch_scene(repo: Repository, *, batched: bool) -> list[Stored]:
    """Conversations in every state, then one group of messages into all of them."""
    # each root and reply at its own Slack ts
    answered = await threaded(repo, "answered")
    await delivered(repo, answered, T0 + timedelta(seconds=60), "tg-1")
    in_flight = await threaded(repo, "in-flight", T0 + timedelta(seconds=3))
    await reply(repo, in_flight, T0 + timedelta(seconds=40))  # written, still being delivered
    resolved = await threaded(repo, "resolved", T0 + timedelta(seconds=6))
    await delivered(repo, resolved, T0 + timedelta(seconds=30), "tg-2")
    await repo.resolve(resolved, AGENT, T0 + timedelta(minutes=1))
    await threaded(repo, "open", T0 + timedelta(seconds=9))
    later = T0 + timedelta(minutes=5)
    items = [
        message("new", "new:1", later),
        message("answered", "answered:2", later),
        message("answered", "answered:3", T0 + timedelta(seconds=20), received=later),  # late
        message("in-flight", "in-flight:2", later),
        message("resolved", "resolved:2", later),
        message("resolved", "resolved:3", later + timedelta(seconds=1)),
        message("open", "open:0", T0 - timedelta(seconds=30), received=later),  # earlier
        message("open", "open:2", later),
        message("new", "new:1", later),  # the same delivery twice
        message("new", "new:2", later + timedelta(seconds=2), network="generic"),
    ]
    if batched:
        return await repo.store_customer_messages(items)
    return [await store_one(repo, item) for item in items]


async def test_a_batch_ends_exactly_as_the_same_messages_stored_one_by_one(
    store: Store,
) -> None:
    """Group commit stores many webhooks at once; the outcome must not depend on it."""
    outcomes = []
    for batched in (False, True):
        if store.dialect == "postgresql":
            async with store.database().session() as session:
                await session.execute(text(f"TRUNCATE {_all_tables()} RESTART IDENTITY CASCADE"))
        else:
            store.url = store.url.replace(".db", "-b.db") if batched else store.url
            await store.database().migrate()
        repo = Repository(store.database())
        stored = await _batch_scene(repo, batched=batched)
        rows = []
        for cid in sorted({s.conversation_id for s in stored}):
            conversation = await repo.conversation(cid)
            assert conversation is not None
            rows.append(
                (
                    (conversation.network, conversation.external_key),
                    conversation.status,
                    conversation.last_customer_at,
                    [(m.external_id, m.broadcast, m.sent_at) for m in await repo.messages(cid)],
                    summary(await repo.turns(cid)),
                )
            )
        # ids may be handed out in another order; what each delivery did may not differ
        did = [(s.message_id is None, s.new_conversation, s.reopened) for s in stored]
        outcomes.append((did, sorted(rows)))
    assert outcomes[1] == outcomes[0]
    did, rows = outcomes[1]
    assert [duplicate for duplicate, _, _ in did] == [False] * 8 + [True, False]
    assert [new for _, new, _ in did] == [True] + [False] * 8 + [True]  # "new" on two networks
    assert [reopened for _, _, reopened in did].count(True) == 1  # by its first message only
    by_key = {row[0][1]: row for row in rows}
    assert [m[1] for m in by_key["resolved"][3]] == [False, True, False]
    later = T0 + timedelta(minutes=5)
    assert by_key["in-flight"][4] == [(T0 + timedelta(seconds=3), None, True), (later, None, False)]
    assert by_key["open"][4] == [(T0 - timedelta(seconds=30), None, True)]
    assert by_key["answered"][4] == [(T0, 60.0, True), (later, None, False)]


async def test_same_message_id_on_another_network_is_another_message(repo: Repository) -> None:
    a = await store_one(repo, message("k", "42", T0, network="telegram"))
    b = await store_one(repo, message("k", "42", T0, network="generic"))
    assert a.message_id is not None and b.message_id is not None
    assert a.conversation_id != b.conversation_id


async def test_sent_at_is_never_later_than_received_at(repo: Repository) -> None:
    future = T0 + timedelta(hours=3)  # a sender's clock running ahead
    stored = await store_one(repo, message("chat-1", "chat-1:1", future, received=T0))
    (row,) = await repo.messages(stored.conversation_id)
    assert row.sent_at == T0 and row.received_at == T0


async def test_two_processes_storing_a_new_conversation_make_one_row(store: Store) -> None:
    a, b = Repository(store.database()), Repository(store.database())
    for round_ in range(8):
        key = f"race-{round_}"
        first, second = await asyncio.gather(
            a.store_customer_messages([message(key, f"{key}:1", T0, text="one")]),
            b.store_customer_messages([message(key, f"{key}:2", T0, text="two")]),
        )
        assert first[0].conversation_id == second[0].conversation_id
        assert [first[0].new_conversation, second[0].new_conversation].count(True) == 1
        turns = await a.turns(first[0].conversation_id)
        assert len(turns) == 1 and turns[0].is_first
    assert await count(a.db, Conversation) == 8
    assert await count(a.db, CustomerMessage) == 16


async def test_two_processes_storing_overlapping_batches_never_deadlock(store: Store) -> None:
    """Batches that share conversations, new and known, in opposite orders: all stored."""
    a, b = Repository(store.database()), Repository(store.database())
    for round_ in range(6):
        keys = [f"k{n}" for n in range(round_, round_ + 5)]  # 4 known, 1 new each round
        first, second = await asyncio.gather(
            a.store_customer_messages([message(k, f"{k}:a{round_}", T0) for k in keys]),
            b.store_customer_messages([message(k, f"{k}:b{round_}", T0) for k in keys[::-1]]),
        )
        assert all(s.message_id is not None for s in first + second)
        assert [s.conversation_id for s in first] == [s.conversation_id for s in second][::-1]
    assert await count(a.db, Conversation) == 10
    assert await count(a.db, CustomerMessage) == 60


async def test_two_processes_storing_the_same_message_store_it_once(store: Store) -> None:
    a, b = Repository(store.database()), Repository(store.database())
    results = await asyncio.gather(
        *(repo.store_customer_messages([message("dup", "dup:1", T0)]) for repo in (a, b, a, b))
    )
    assert sorted(r[0].message_id is None for r in results) == [False, True, True, True]
    assert await count(a.db, CustomerMessage) == 1


# -- turns ------------------------------------------------------------------------------


async def test_messages_before_a_reply_form_one_turn(repo: Repository) -> None:
    cid = await threaded(repo)
    await store_one(repo, message("chat-1", "chat-1:2", T0 + timedelta(seconds=30)))
    await store_one(repo, message("chat-1", "chat-1:3", T0 + timedelta(seconds=50)))
    assert summary(await repo.turns(cid)) == [(T0, None, True)]


async def test_delivered_reply_answers_the_turn_from_its_first_message(repo: Repository) -> None:
    cid = await threaded(repo)
    await store_one(repo, message("chat-1", "chat-1:2", T0 + timedelta(seconds=30)))
    answer = await delivered(repo, cid, T0 + timedelta(seconds=100), "tg-1")
    (turn,) = await repo.turns(cid)
    assert turn.response_seconds == 100.0
    assert turn.answered_at == T0 + timedelta(seconds=100)
    assert turn.reply_id == answer.id
    conversation = await repo.conversation(cid)
    assert conversation is not None
    assert conversation.last_reply_at == T0 + timedelta(seconds=100)
    assert conversation.last_replier == AGENT


async def test_a_message_after_a_delivered_reply_opens_a_new_turn(repo: Repository) -> None:
    cid = await threaded(repo)
    await delivered(repo, cid, T0 + timedelta(seconds=60), "tg-1")
    later = T0 + timedelta(minutes=5)
    await store_one(repo, message("chat-1", "chat-1:2", later))
    await store_one(repo, message("chat-1", "chat-1:3", later + timedelta(seconds=5)))
    await delivered(repo, cid, later + timedelta(seconds=42), "tg-2")
    assert summary(await repo.turns(cid)) == [(T0, 60.0, True), (later, 42.0, False)]


async def test_a_late_message_written_before_the_answer_joins_the_answered_turn(
    repo: Repository,
) -> None:
    cid = await threaded(repo)
    await delivered(repo, cid, T0 + timedelta(seconds=60), "tg-1")
    late = message(
        "chat-1", "chat-1:2", T0 + timedelta(seconds=20), received=T0 + timedelta(minutes=2)
    )
    await store_one(repo, late)
    assert summary(await repo.turns(cid)) == [(T0, 60.0, True)]


async def test_a_late_message_with_an_earlier_time_moves_the_open_turns_start(
    repo: Repository,
) -> None:
    cid = await threaded(repo, at=T0 + timedelta(seconds=30))
    await store_one(repo, message("chat-1", "chat-1:0", T0, received=T0 + timedelta(minutes=1)))
    assert summary(await repo.turns(cid)) == [(T0, None, True)]


async def test_notes_and_failed_replies_do_not_answer(repo: Repository) -> None:
    cid = await threaded(repo)
    await reply(repo, cid, T0 + timedelta(seconds=10), kind="note", state="internal")
    failed = await reply(repo, cid, T0 + timedelta(seconds=20))
    assert failed.id is not None
    await repo.mark_reply_failed(failed.id, "Forbidden: bot was blocked by the user")
    await reply(repo, cid, T0 + timedelta(seconds=30), state="refused", user="U0NOTALLOWED")
    (turn,) = await repo.turns(cid)
    assert (turn.answered_at, turn.response_seconds, turn.reply_id) == (None, None, None)
    conversation = await repo.conversation(cid)
    assert conversation is not None and conversation.last_reply_at is None
    # The first real reply makes its author the owner; a note or refused message does not.
    assert conversation.owner == AGENT
    rows = {r.slack_ts: (r.kind, r.state) for r in await repo.replies(cid)}
    assert sorted(rows.values()) == [
        ("note", "internal"),
        ("reply", "failed"),
        ("reply", "refused"),
    ]
    # Not yet explained in the thread: the dispatcher tells, then marks it warned.
    assert [r.id for r in (await due_work(repo, cid, T0)).unwarned] == [failed.id]
    await repo.set_warned(failed.id)
    assert (await due_work(repo, cid, T0)).unwarned == []


async def test_a_note_does_not_make_its_writer_the_owner(repo: Repository) -> None:
    cid = await threaded(repo)
    await reply(repo, cid, T0 + timedelta(seconds=10), kind="note", state="internal")
    conversation = await repo.conversation(cid)
    assert conversation is not None and conversation.owner is None


async def test_the_earliest_delivered_reply_answers_even_if_delivered_last(
    repo: Repository,
) -> None:
    cid = await threaded(repo)
    slow = await reply(repo, cid, T0 + timedelta(seconds=60))  # delivery is retried
    await delivered(repo, cid, T0 + timedelta(seconds=90), "tg-2")
    assert summary(await repo.turns(cid)) == [(T0, 90.0, True)]
    assert slow.id is not None
    await repo.mark_reply_sent(slow.id, "tg-1", T0 + timedelta(seconds=200))
    (turn,) = await repo.turns(cid)
    assert (turn.response_seconds, turn.reply_id) == (60.0, slow.id)


async def test_a_message_after_a_reply_still_being_delivered_opens_a_new_turn(
    repo: Repository,
) -> None:
    cid = await threaded(repo)
    pending = await reply(repo, cid, T0 + timedelta(seconds=60))  # Telegram 429: retrying
    after = T0 + timedelta(seconds=90)
    await store_one(repo, message("chat-1", "chat-1:2", after, text="are you there?"))
    assert pending.id is not None
    await repo.mark_reply_sent(pending.id, "tg-1", T0 + timedelta(seconds=120))
    assert summary(await repo.turns(cid)) == [(T0, 60.0, True), (after, None, False)]


async def test_a_failed_delivery_status_un_answers_its_turn(repo: Repository) -> None:
    cid = await threaded(repo)
    await delivered(repo, cid, T0 + timedelta(seconds=60), "wamid.A")
    await repo.apply_delivery_statuses(
        [
            {"network": "telegram", "message_id": "wamid.A", "status": "failed", "error": "131047"},
            {"network": "telegram", "message_id": "unknown", "status": "failed"},
        ]
    )
    (turn,) = await repo.turns(cid)
    assert (turn.answered_at, turn.response_seconds, turn.reply_id) == (None, None, None)
    (row,) = await repo.replies(cid)
    assert (row.state, row.warned, row.network_status) == ("failed", False, "failed")
    assert row.last_error == "131047"
    assert [r.id for r in (await due_work(repo, cid, T0)).unwarned] == [row.id]
    assert cid in await repo.due_conversations(T0)  # the dispatcher will say so in Slack


async def test_a_failed_status_falls_back_to_the_next_delivered_reply(repo: Repository) -> None:
    cid = await threaded(repo)
    first = await delivered(repo, cid, T0 + timedelta(seconds=60), "wamid.A")
    second = await delivered(repo, cid, T0 + timedelta(seconds=75), "wamid.B")
    later = T0 + timedelta(minutes=10)
    await store_one(repo, message("chat-1", "chat-1:2", later))
    await delivered(repo, cid, later + timedelta(seconds=5), "wamid.C")
    assert (await repo.turns(cid))[0].reply_id == first.id

    await repo.apply_delivery_statuses(
        [{"network": "telegram", "message_id": "wamid.A", "status": "failed"}]
    )
    turns = await repo.turns(cid)
    assert summary(turns) == [(T0, 75.0, True), (later, 5.0, False)]
    assert turns[0].reply_id == second.id


async def test_delivered_and_read_statuses_change_nothing_but_the_status(
    repo: Repository,
) -> None:
    cid = await threaded(repo)
    await delivered(repo, cid, T0 + timedelta(seconds=60), "wamid.A")
    for status in ("delivered", "read"):
        await repo.apply_delivery_statuses(
            [{"network": "telegram", "message_id": "wamid.A", "status": status}]
        )
    (row,) = await repo.replies(cid)
    assert (row.state, row.network_status) == ("sent", "read")
    assert summary(await repo.turns(cid)) == [(T0, 60.0, True)]


async def test_a_connection_the_server_dropped_is_replaced_or_refused_once(store: Store) -> None:
    """PostgreSQL batches run on the pooled asyncpg connection itself. One the server
    terminated is replaced before use when asyncpg has already noticed, else its batch
    is refused as unavailable (503: the sender retries); either way it is never handed
    out again, and nothing is stored twice or lost."""
    if store.dialect != "postgresql":
        pytest.skip("SQLite has no server to drop a connection")
    db = store.database()
    repo = Repository(db)
    await store_one(repo, message("a", "a:1", T0))  # the pool now holds a connection
    async with store.database().engine.connect() as connection:
        await connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    second = message("a", "a:2", T0 + timedelta(seconds=1))
    try:
        stored = await store_one(repo, second)
    except DatabaseUnavailable:
        stored = await store_one(repo, second)  # the network's retry
    assert stored.message_id is not None
    await store_one(repo, message("a", "a:3", T0 + timedelta(seconds=2)))
    messages = await repo.messages(stored.conversation_id)
    assert [m.external_id for m in messages] == ["a:1", "a:2", "a:3"]


async def test_a_batch_cancelled_mid_statement_stores_nothing_and_harms_no_one(
    store: Store,
) -> None:
    """Shutting down cancels a batch that waits on a row lock: nothing of it is stored,
    and the connection it held is not handed out half-way through a statement."""
    if store.dialect != "postgresql":
        pytest.skip("SQLite batches run in a thread that finishes its transaction")
    repo = Repository(store.database())
    first = await store_one(repo, message("a", "a:1", T0))
    blocker = await asyncpg.connect(_dsn(store.url, make_url(store.url).database or ""))
    try:
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute(
            "SELECT id FROM conversation WHERE id = $1 FOR UPDATE", first.conversation_id
        )
        waiting = asyncio.create_task(store_one(repo, message("a", "a:2", T0)))

        async def blocked_or_done() -> bool:
            return waiting.done() or bool(await blocker.fetchval(LOCK_WAITS))

        await until(blocked_or_done, what="the batch to wait on the row lock")
        assert not waiting.done()  # held by the row lock
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await transaction.rollback()
    finally:
        await blocker.close()
    later = await store_one(repo, message("a", "a:3", T0 + timedelta(seconds=2)))
    assert later.message_id is not None
    stored = [m.external_id for m in await repo.messages(first.conversation_id)]
    assert stored == ["a:1", "a:3"]


# -- the delivery queue ----------------------------------------------------------------


async def test_due_conversations_and_pending_messages_in_order(repo: Repository) -> None:
    a = await store_one(repo, message("a", "a:2", T0 + timedelta(seconds=10), text="a second"))
    await store_one(repo, message("a", "a:1", T0, text="a first", received=T0 + timedelta(1)))
    b = await store_one(repo, message("b", "b:1", T0, text="b first"))
    assert await repo.due_conversations(T0) == sorted([a.conversation_id, b.conversation_id])
    assert await repo.due_conversations(T0, limit=1) == [min(a.conversation_id, b.conversation_id)]
    pending = (await due_work(repo, a.conversation_id, T0)).messages
    assert [m.text for m in pending] == ["a first", "a second"]  # by the network's time

    await repo.mark_posted([m.id or 0 for m in pending], CHANNEL, "1.000001")
    assert (await due_work(repo, a.conversation_id, T0)).messages == []
    assert await repo.due_conversations(T0) == [b.conversation_id]


async def test_a_message_waiting_for_its_retry_holds_back_later_ones(repo: Repository) -> None:
    now = T0 + timedelta(minutes=1)
    stored = await store_one(repo, message("a", "a:1", T0, text="first"))
    cid = stored.conversation_id
    (first,) = (await due_work(repo, cid, now)).messages
    retry_at = now + backoff(1)
    await repo.retry_messages_later([first.id or 0], retry_at, "ratelimited")
    assert await repo.due_conversations(now) == []
    assert await repo.next_due_at() == retry_at

    await store_one(repo, message("a", "a:2", T0 + timedelta(seconds=5), text="second"))
    assert (await due_work(repo, cid, now)).messages == []  # not before the first one
    due = (await due_work(repo, cid, retry_at)).messages
    assert [(m.text, m.attempts) for m in due] == [("first", 1), ("second", 0)]
    assert due[0].last_error == "ratelimited"


async def test_a_late_earlier_message_does_not_skip_anothers_backoff(repo: Repository) -> None:
    now = T0 + timedelta(minutes=1)
    stored = await store_one(repo, message("a", "a:2", T0 + timedelta(seconds=10)))
    cid = stored.conversation_id
    (held,) = (await due_work(repo, cid, now)).messages
    await repo.retry_messages_later([held.id or 0], now + timedelta(seconds=30), "ratelimited")
    await store_one(repo, message("a", "a:1", T0, received=now))  # delivered late
    assert held.id not in [m.id for m in (await due_work(repo, cid, now)).messages]


async def test_the_look_for_due_work_stops_at_its_limit_whatever_the_backlog(
    repo: Repository,
) -> None:
    ids = []
    for chat in range(12):
        items = [message(f"c{chat}", f"c{chat}:{n}", T0 + timedelta(seconds=n)) for n in range(4)]
        stored = await repo.store_customer_messages(items)
        ids.append(stored[0].conversation_id)
    assert await repo.due_conversations(T0, limit=5) == sorted(ids)[:5]
    first = (await due_work(repo, min(ids), T0)).messages
    await repo.mark_posted([m.id or 0 for m in first], CHANNEL, "1.000001")
    assert await repo.due_conversations(T0, limit=5) == sorted(ids)[1:6]
    assert await repo.next_due_at() is None  # nothing waits for a retry


async def test_the_dispatchers_looks_read_the_partial_indexes(store: Store) -> None:
    """The scan of every pending row they replace cost 17 ms per look at a backlog of
    15,000 messages. PostgreSQL's generic plan of a prepared statement (asyncpg
    prepares every statement) can use a partial index only if the query states its
    predicate literally: a bound `state = $1` proves nothing there."""
    db = store.database()
    repo = Repository(db)
    seen: list[tuple[str, Any]] = []

    def capture(_c: object, _cursor: object, statement: str, parameters: Any, *_: object) -> None:
        seen.append((statement, parameters))

    event.listen(db.read_engine.sync_engine, "before_cursor_execute", capture)
    try:
        await repo.due_conversations(T0)
        await repo.next_due_at()
    finally:
        event.remove(db.read_engine.sync_engine, "before_cursor_execute", capture)
    (due, due_parameters), (earliest, earliest_parameters) = seen
    plans = []
    async with db.engine.connect() as connection:
        for n, (statement, parameters) in enumerate(
            ((due, due_parameters), (earliest, earliest_parameters))
        ):
            if store.dialect == "sqlite":
                rows = await connection.exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + statement, parameters
                )
            else:  # the plan asyncpg's prepared statement settles on; empty tables
                for setting in ("enable_seqscan = off", "plan_cache_mode = force_generic_plan"):
                    await connection.exec_driver_sql(f"SET {setting}")
                await connection.exec_driver_sql(f"PREPARE look{n} AS {statement}")
                values = ", ".join(f"'{value}'" for value in parameters)
                rows = await connection.exec_driver_sql(
                    f"EXPLAIN EXECUTE look{n}({values})" if values else f"EXPLAIN EXECUTE look{n}"
                )
            plans.append(" ".join(str(value) for row in rows for value in row))
        await connection.invalidate()  # settings and prepared statements go with it
    assert "ix_customer_message_due" in plans[0]
    assert "ix_customer_message_retry" in plans[1]
    assert "ix_customer_message_pending" not in " ".join(plans)


async def test_backoff_honours_retry_after_else_doubles() -> None:
    assert backoff(1, 7) == timedelta(seconds=7)
    assert backoff(5, 0) == timedelta(seconds=0.5)  # never a busy loop
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert backoff(50) == timedelta(minutes=5)


async def test_pending_and_failed_replies(repo: Repository) -> None:
    cid = await threaded(repo)
    one = await reply(repo, cid, T0 + timedelta(seconds=10))
    two = await reply(repo, cid, T0 + timedelta(seconds=20))
    now = T0 + timedelta(minutes=1)
    assert [r.id for r in (await due_work(repo, cid, now)).replies] == [one.id, two.id]
    await repo.retry_reply_later(two.id or 0, now + timedelta(seconds=4), "429", warned=True)
    assert [r.id for r in (await due_work(repo, cid, now)).replies] == [one.id]
    later = (await due_work(repo, cid, now + timedelta(seconds=4))).replies
    assert [(r.id, r.attempts, r.warned) for r in later] == [
        (one.id, 0, False),
        (two.id, 1, True),
    ]


async def test_a_changed_conversation_is_due_for_re_rendering_once(repo: Repository) -> None:
    cid = await threaded(repo)
    conversation = await repo.conversation(cid)
    assert conversation is not None
    assert conversation.rendered_version == conversation.version
    await repo.mark_posted([m.id or 0 for m in await repo.messages(cid)], CHANNEL, "1.1")
    assert await repo.due_conversations(T0) == []
    result = await repo.claim(cid, AGENT)
    assert await repo.due_conversations(T0) == [cid]
    await repo.mark_rendered(cid, result.conversation.version)
    assert await repo.due_conversations(T0) == []


# -- claim, resolve, reopen --------------------------------------------------------------


async def test_claim_resolve_reopen_results(repo: Repository) -> None:
    cid = await threaded(repo)
    version = (await repo.conversation(cid)).version  # type: ignore[union-attr]

    claimed = await repo.claim(cid, AGENT)
    assert (claimed.ok, claimed.conversation.owner) == (True, AGENT)
    assert claimed.conversation.version == version + 1
    assert (await repo.claim(cid, AGENT)).unchanged == "already_yours"
    other = await repo.claim(cid, "U0OTHER01")
    assert (other.ok, other.unchanged, other.conversation.owner) == (False, "owned", AGENT)

    resolved = await repo.resolve(cid, "U0OTHER01", T0 + timedelta(hours=1))
    assert resolved.ok
    assert (resolved.conversation.status, resolved.conversation.resolved_by) == (
        "resolved",
        "U0OTHER01",
    )
    again = await repo.resolve(cid, AGENT, T0 + timedelta(hours=2))
    assert (again.ok, again.unchanged) == (False, "already_resolved")
    assert again.conversation.resolved_at == T0 + timedelta(hours=1)

    reopened = await repo.reopen(cid, AGENT)
    assert reopened.ok and reopened.conversation.status == "open"
    assert reopened.conversation.resolved_by is None
    assert (await repo.reopen(cid, AGENT)).unchanged == "not_resolved"
    final = await repo.conversation(cid)
    assert final is not None and final.version == version + 3  # failed actions change nothing


async def test_two_processes_claiming_at_once_have_one_winner(store: Store) -> None:
    a, b = Repository(store.database()), Repository(store.database())
    cid = await threaded(a)
    results = await asyncio.gather(a.claim(cid, "U0ANN0001"), b.claim(cid, "U0BOB0001"))
    winners = [r for r in results if r.ok]
    assert len(winners) == 1
    loser = next(r for r in results if not r.ok)
    assert loser.unchanged == "owned" and loser.conversation.owner == winners[0].conversation.owner


async def test_a_customer_message_reopens_a_resolved_conversation(repo: Repository) -> None:
    cid = await threaded(repo)
    await delivered(repo, cid, T0 + timedelta(seconds=30), "tg-1")
    await repo.resolve(cid, AGENT, T0 + timedelta(minutes=1))
    stored = await store_one(repo, message("chat-1", "chat-1:2", T0 + timedelta(hours=1)))
    assert stored.reopened and not stored.new_conversation
    assert stored.conversation_id == cid
    conversation = await repo.conversation(cid)
    assert conversation is not None
    assert (conversation.status, conversation.resolved_by, conversation.resolved_at) == (
        "open",
        None,
        None,
    )
    newest = (await repo.messages(cid))[-1]
    assert newest.broadcast  # shown in the channel too
    assert len(await repo.turns(cid)) == 2


# -- schema ---------------------------------------------------------------------------


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, SQLModel.metadata))


async def test_migrations_produce_exactly_the_models_schema(store: Store) -> None:
    db = store.database()
    await db.migrate()  # idempotent: already at head
    async with db.engine.connect() as connection:
        differences = await connection.run_sync(_differences)
    assert differences == []
