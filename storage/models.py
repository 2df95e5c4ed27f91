"""SQL tables: the source of truth for conversations, messages, replies and turns.

Timestamps are timezone-aware UTC in Python; `UTCDateTime` stores them as
naive UTC on SQLite and as `timestamptz` on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Index,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.sql.expression import SelectOfScalar

from storage.core import (
    ActionKind,
    ActionState,
    ConversationStatus,
    Mark,
    MessageState,
    NetworkStatus,
    ReplyKind,
    ReplyState,
)


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class StrEnumType(TypeDecorator[Any]):
    """A `StrEnum` column stored as its plain string (no database enum type to migrate)."""

    impl = String(16)
    cache_ok = True

    def __init__(self, enum: type[StrEnum]) -> None:
        super().__init__()
        self.enum = enum

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else str(self.enum(value))

    def process_result_value(self, value: str | None, dialect: Dialect) -> StrEnum | None:
        return None if value is None else self.enum(value)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


STALE_ROOT = "rendered_version < version AND thread_ts IS NOT NULL"
ROOTLESS = "thread_ts IS NULL AND channel IS NOT NULL"
# Written as literals in queries too: PostgreSQL's generic plan of a prepared statement
# (asyncpg prepares every one) can use a partial index only if the query states its
# predicate; a bound parameter ("state = $1") states nothing there.
PENDING = "state = 'pending'"
RETRYING = "state = 'pending' AND next_attempt_at IS NOT NULL"
FAILED = "state = 'failed'"


def _partial(name: str, *columns: str, where: str) -> Index:
    """An index of only the rows matching `where`, on both databases."""
    return Index(name, *columns, sqlite_where=text(where), postgresql_where=text(where))


class Conversation(SQLModel, table=True):
    """One customer conversation; its id is the `#N` users type."""

    __table_args__ = (
        UniqueConstraint("network", "external_key"),
        # The dispatcher's look for roots that need work reads only these rows.
        _partial("ix_conversation_stale_root", "id", where=STALE_ROOT),
        _partial("ix_conversation_rootless", "id", where=ROOTLESS),
    )

    id: int | None = Field(default=None, primary_key=True)
    network: str = Field(max_length=32)
    external_key: str = Field(max_length=255)
    customer_id: str = Field(max_length=255)
    customer_name: str = Field(max_length=255)
    customer_handle: str | None = Field(default=None, max_length=255)
    reply_context: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    status: ConversationStatus = Field(
        default=ConversationStatus.OPEN, sa_type=StrEnumType(ConversationStatus)
    )
    team: str | None = Field(default=None, max_length=64)
    owner: str | None = Field(default=None, max_length=32)
    channel: str | None = Field(default=None, max_length=32)
    thread_ts: str | None = Field(default=None, max_length=32)
    root_text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    root_mark: Mark | None = Field(default=None, sa_type=StrEnumType(Mark))  # its first message
    created_at: datetime = _ts(nullable=False)
    last_customer_at: datetime | None = _ts()
    last_reply_at: datetime | None = _ts()
    last_replier: str | None = Field(default=None, max_length=32)
    resolved_by: str | None = Field(default=None, max_length=32)
    resolved_at: datetime | None = _ts()
    handed_off_by: str | None = Field(default=None, max_length=32)
    escalated_to: str | None = Field(default=None, max_length=32)
    # The root message is re-rendered while rendered_version < version.
    version: int = 0
    rendered_version: int = 0
    # A root post was started then: it may exist in Slack though not recorded here.
    root_attempt_at: datetime | None = _ts()
    # Set by the routing rules when the conversation is opened (ROUTING_RULES).
    priority: str | None = Field(default=None, max_length=16)
    tags: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]")
    )


class SlackThread(SQLModel, table=True):
    """Every Slack thread that belongs to a conversation (inbox root, handoff roots)."""

    __tablename__ = "slack_thread"

    channel: str = Field(primary_key=True, max_length=32)
    thread_ts: str = Field(primary_key=True, max_length=32)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    created_at: datetime = _ts(nullable=False)


class CustomerMessage(SQLModel, table=True):
    """A message from the customer; `state` tracks its relay into Slack."""

    __tablename__ = "customer_message"
    __table_args__ = (
        UniqueConstraint("network", "external_id"),
        # Only the messages still to relay: the dispatcher's look for due conversations
        # reads them in conversation order, and stays small however long the history.
        _partial("ix_customer_message_due", "conversation_id", "next_attempt_at", where=PENDING),
        # The earliest retry time, among the few messages that wait for one.
        _partial("ix_customer_message_retry", "next_attempt_at", where=RETRYING),
        # The few messages Slack refused for good, counted by /healthz.
        _partial("ix_customer_message_failed", "conversation_id", where=FAILED),
        Index("ix_customer_message_conv", "conversation_id", "sent_at"),
        # Stats count a window's messages per conversation from this index alone.
        Index("ix_customer_message_sent", "sent_at", "conversation_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id")
    network: str = Field(max_length=32)
    external_id: str = Field(max_length=255)
    author_id: str = Field(max_length=255)
    author_name: str = Field(max_length=255)
    text: str = Field(sa_column=Column(Text, nullable=False))
    attachments: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    sent_at: datetime = _ts(nullable=False)  # the network's timestamp, capped
    received_at: datetime = _ts(nullable=False)
    broadcast: bool = False  # reopened a resolved conversation: also show in channel
    state: MessageState = Field(default=MessageState.PENDING, sa_type=StrEnumType(MessageState))
    slack_channel: str | None = Field(default=None, max_length=32)
    slack_ts: str | None = Field(default=None, max_length=32)
    attempts: int = 0
    next_attempt_at: datetime | None = _ts()
    last_error: str | None = Field(default=None, max_length=255)
    # A post of it was started then, with no answer recorded: look before posting again.
    attempt_at: datetime | None = _ts()
    mark: Mark | None = Field(default=None, sa_type=StrEnumType(Mark))  # edited / deleted since


class TeamReply(SQLModel, table=True):
    """A team member's message in a conversation thread (reply or internal note).

    `source` is `slack` for thread replies, `network` for replies a colleague
    sent from the network's own inbox (shown in Slack, counted as replies).
    """

    __tablename__ = "team_reply"
    __table_args__ = (
        UniqueConstraint("slack_channel", "slack_ts"),
        UniqueConstraint("network", "external_id"),
        Index("ix_team_reply_pending", "state", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    network: str = Field(max_length=32)
    source: str = Field(default="slack", max_length=16)
    kind: ReplyKind = Field(default=ReplyKind.REPLY, sa_type=StrEnumType(ReplyKind))
    slack_channel: str | None = Field(default=None, max_length=32)
    slack_ts: str | None = Field(default=None, max_length=32)
    slack_thread_ts: str | None = Field(default=None, max_length=32)
    external_id: str | None = Field(default=None, max_length=255)
    user_id: str = Field(max_length=255)
    user_name: str | None = Field(default=None, max_length=255)
    text: str = Field(sa_column=Column(Text, nullable=False))
    sent_at: datetime = _ts(nullable=False)  # Slack ts (or the network's timestamp)
    state: ReplyState = Field(default=ReplyState.PENDING, sa_type=StrEnumType(ReplyState))
    delivered_at: datetime | None = _ts()
    network_status: NetworkStatus | None = Field(default=None, sa_type=StrEnumType(NetworkStatus))
    attempts: int = 0
    next_attempt_at: datetime | None = _ts()
    last_error: str | None = Field(default=None, max_length=500)
    warned: bool = False  # the thread was told about a failure
    # A send to the network was started then, with no outcome recorded.
    attempt_at: datetime | None = _ts()
    # the Slack message as JSON (text, blocks, files): converted per network when sent
    slack_message: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # JSON list of the network's ids of the messages sent so far (a long reply is several)
    sent_ids: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class Turn(SQLModel, table=True):
    """Customer messages after the last team reply, and when a reply answered them.

    Maintained as messages and deliveries happen (`response_seconds` is stored
    when a reply answers the turn), so stats read it directly.
    """

    __table_args__ = (
        # Covers the stats scan of a window's turns: read from the index alone.
        Index(
            "ix_turn_window",
            "started_at",
            "network",
            "team",
            "answered_at",
            "is_first",
            "response_seconds",
            "business_response_seconds",
        ),
        Index("ix_turn_conv", "conversation_id", "started_at"),
        # Open turns in start order, with what the stats read of them.
        Index("ix_turn_open", "answered_at", "started_at", "conversation_id", "network", "team"),
    )

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id")
    network: str = Field(max_length=32)
    team: str | None = Field(default=None, max_length=64)
    is_first: bool = False
    started_at: datetime = _ts(nullable=False)
    answered_at: datetime | None = _ts()
    reply_id: int | None = Field(default=None, foreign_key="team_reply.id")
    response_seconds: float | None = None
    business_response_seconds: float | None = None  # the same, in business hours only


class Handoff(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    from_team: str | None = Field(default=None, max_length=64)
    to_team: str = Field(max_length=64)
    by_user: str = Field(max_length=32)
    note: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = _ts(nullable=False)
    old_channel: str | None = Field(default=None, max_length=32)
    old_ts: str | None = Field(default=None, max_length=32)
    new_channel: str | None = Field(default=None, max_length=32)
    new_ts: str | None = Field(default=None, max_length=32)


class Escalation(SQLModel, table=True):
    """One page: a conversation's turn escalated to a person at a level."""

    __table_args__ = (UniqueConstraint("turn_id", "level", "kind"),)

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    turn_id: int | None = Field(default=None, foreign_key="turn.id")
    level: int
    kind: str = Field(default="auto", max_length=16)  # auto | manual
    target_user: str | None = Field(default=None, max_length=32)
    reason: str | None = Field(default=None, sa_column=Column(Text))
    by_user: str | None = Field(default=None, max_length=32)
    created_at: datetime = _ts(nullable=False)
    sent_at: datetime | None = _ts()
    acked_by: str | None = Field(default=None, max_length=32)
    acked_at: datetime | None = _ts()


class OncallOverride(SQLModel, table=True):
    __tablename__ = "oncall_override"

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(max_length=32)
    starts_at: datetime = _ts(nullable=False)
    ends_at: datetime = _ts(nullable=False)
    created_by: str = Field(max_length=32)
    created_at: datetime = _ts(nullable=False)


class SummaryPost(SQLModel, table=True):
    """One row per local day whose summary was posted: exactly once."""

    __tablename__ = "summary_post"

    day: date = Field(primary_key=True)
    claimed_at: datetime = _ts(nullable=False)
    posted_at: datetime | None = _ts()
    channel: str | None = Field(default=None, max_length=32)
    ts: str | None = Field(default=None, max_length=32)


class CustomerAction(SQLModel, table=True):
    """A customer's reaction, removal, edit or a system notice, to carry out in Slack.

    Stored before the webhook's 200 (unique on the network's event id, so a retried
    delivery does nothing twice) and carried out by the dispatcher under the
    conversation's lease. `payload` holds what the kind needs (emoji, new text) and the
    progress made (the Slack reaction used, the ts of a note already posted).
    """

    __tablename__ = "customer_action"
    __table_args__ = (
        UniqueConstraint("network", "event_id"),
        _partial("ix_customer_action_due", "conversation_id", "next_attempt_at", where=PENDING),
        _partial("ix_customer_action_retry", "next_attempt_at", where=RETRYING),
    )

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id")
    network: str = Field(max_length=32)
    event_id: str = Field(max_length=255)
    kind: ActionKind = Field(sa_type=StrEnumType(ActionKind))
    target_id: str | None = Field(default=None, max_length=255)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    at: datetime = _ts(nullable=False)  # the network's timestamp
    received_at: datetime = _ts(nullable=False)
    state: ActionState = Field(default=ActionState.PENDING, sa_type=StrEnumType(ActionState))
    attempts: int = 0
    next_attempt_at: datetime | None = _ts()


class OutOfHoursReply(SQLModel, table=True):
    """The out-of-hours auto-reply of one conversation for one closed period.

    Keyed on (conversation, the opening that ends the closed period) and inserted
    with ON CONFLICT DO NOTHING before sending: one per closed period across
    processes. Not a team reply: it answers no turn and counts in no figure.
    """

    __tablename__ = "out_of_hours_reply"
    __table_args__ = (
        UniqueConstraint("conversation_id", "opens_at"),
        # The dispatcher's look for auto-replies to send reads only these rows.
        _partial("ix_out_of_hours_reply_due", "next_attempt_at", "conversation_id", where=PENDING),
    )

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id")
    opens_at: datetime = _ts(nullable=False)
    network: str = Field(max_length=32)
    state: ReplyState = Field(default=ReplyState.PENDING, sa_type=StrEnumType(ReplyState))
    created_at: datetime = _ts(nullable=False)
    attempts: int = 0
    next_attempt_at: datetime | None = _ts()
    # A send was started then, with no outcome recorded: never resent blindly.
    attempt_at: datetime | None = _ts()
    sent_at: datetime | None = _ts()
    external_id: str | None = Field(default=None, max_length=255, index=True)
    last_error: str | None = Field(default=None, max_length=500)


class CustomerMedia(SQLModel, table=True):
    """One file of a customer message, to upload into its Slack thread once.

    Created (idempotently) when its message is posted, uploaded by the dispatcher under
    the conversation's lease, retried on its own: it never holds back other messages.
    `slack_file_id`: an upload Slack was asked to share, so a retry first looks for it.
    """

    __tablename__ = "customer_media"
    __table_args__ = (
        UniqueConstraint("message_id", "position"),
        _partial("ix_customer_media_due", "conversation_id", "next_attempt_at", where=PENDING),
        _partial("ix_customer_media_retry", "next_attempt_at", where=RETRYING),
    )

    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="customer_message.id")
    position: int  # the attachment's index in its message
    conversation_id: int = Field(foreign_key="conversation.id")
    attachment: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    state: MessageState = Field(default=MessageState.PENDING, sa_type=StrEnumType(MessageState))
    attempts: int = 0
    next_attempt_at: datetime | None = _ts()
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    slack_file_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = _ts(nullable=False)


class HealthProbe(SQLModel, table=True):
    """One row rewritten by `/healthz` (rate-limited): does the store still take writes?"""

    __tablename__ = "health_probe"

    id: int = Field(primary_key=True)
    probed_at: datetime = _ts(nullable=False)


class StatsConversationHour(SQLModel, table=True):
    """Roll-up: a conversation's customer messages in one UTC hour (epoch seconds // 3600).

    Kept by SQL triggers (migration 0018) as messages are stored and teams change;
    `prev_hour` is the conversation's previous hour with a message, so "the
    conversations with a message in a window" is a count of rows. Rebuilt from the
    raw rows by `storage.rollups.rebuild`.
    """

    __tablename__ = "stats_conversation_hour"
    __table_args__ = (
        Index(
            "ix_stats_conversation_hour_hour", "hour", "prev_hour", "network", "team", "messages"
        ),
    )

    conversation_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    hour: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    network: str = Field(max_length=32)
    team: str | None = Field(default=None, max_length=64)  # the conversation's current team
    prev_hour: int | None = None
    messages: int = 0


class StatsHour(SQLModel, table=True):
    """Roll-up: customer messages per UTC hour, network and current team, and `lasts`,
    the conversations whose latest message falls in that hour.

    Insert-only deltas (no row is shared by concurrent writers, so no lock waits or
    deadlocks between ingest processes); `storage.rollups.fold` sums them up.
    """

    __tablename__ = "stats_hour"
    __table_args__ = (Index("ix_stats_hour_hour", "hour", "network", "team", "messages", "lasts"),)

    id: int | None = Field(default=None, primary_key=True)
    hour: int
    network: str = Field(max_length=32)
    team: str | None = Field(default=None, max_length=64)
    messages: int = 0
    lasts: int = 0


class Moment(SQLModel, table=True):
    """A meaningful relationship moment: a person marked a message of a conversation.

    `key` makes recording idempotent across Slack's retries and processes:
    `reaction:<channel>:<ts>:<user>` for the MRM_REACTION on a message (removing the
    reaction deletes that row), `shortcut:<view id>` for the shortcut's form.
    `post_ts` is the short note posted in the thread (NULL until posted).
    """

    __table_args__ = (
        UniqueConstraint("key"),
        Index("ix_moment_at", "at"),
        # The few moments whose note in the thread is still to post.
        _partial("ix_moment_unposted", "at", where="post_ts IS NULL"),
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=255)
    source: str = Field(max_length=16)  # reaction | shortcut
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    network: str = Field(max_length=32)
    customer: str = Field(max_length=255)
    user_id: str = Field(max_length=32)
    at: datetime = _ts(nullable=False)
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    slack_channel: str = Field(max_length=32)  # the message marked, and its thread
    slack_ts: str = Field(max_length=32)
    thread_ts: str = Field(max_length=32)
    post_ts: str | None = Field(default=None, max_length=32)


class Spike(SQLModel, table=True):
    """One volume spike: paged once when it starts, told once when it is over.

    `open_slot` is 1 while the spike lasts and NULL after: its UNIQUE constraint lets
    one spike be open at a time, so the process whose insert succeeds is the one
    that pages (NULLs never conflict, on SQLite or PostgreSQL).
    """

    __table_args__ = (UniqueConstraint("open_slot"),)

    id: int | None = Field(default=None, primary_key=True)
    open_slot: int | None = None
    started_at: datetime = _ts(nullable=False)
    count: int  # customer messages in the window when it started
    baseline: float  # the window's average over the previous 7 days
    paged_user: str | None = Field(default=None, max_length=32)
    paged_ts: str | None = Field(default=None, max_length=32)  # the page in the inbox
    ended_at: datetime | None = _ts()
    ended_ts: str | None = Field(default=None, max_length=32)  # the "it is over" post


class CustomerProfile(SQLModel, table=True):
    """A customer's name and handle as the network's profile API gave them (Messenger,
    Instagram), looked up at most once a day; `name` None: the last lookup failed."""

    __tablename__ = "customer_profile"

    network: str = Field(primary_key=True, max_length=32)
    customer_id: str = Field(primary_key=True, max_length=255)
    name: str | None = Field(default=None, max_length=255)
    handle: str | None = Field(default=None, max_length=255)
    looked_up_at: datetime = _ts(nullable=False)


class CsatSurvey(SQLModel, table=True):
    """A rating question sent when a conversation was resolved (`CSAT_ENABLED`).

    Claimed under the conversation's row lock, at most one per conversation per 24
    hours; sent like the out-of-hours auto-reply (pending, retried, never resent
    blindly). `team` is the conversation's team when it was resolved: its rating
    counts for that team.
    """

    __tablename__ = "csat_survey"
    __table_args__ = (
        Index("ix_csat_survey_conv", "conversation_id", "created_at"),
        _partial("ix_csat_survey_due", "next_attempt_at", "conversation_id", where=PENDING),
    )

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id")
    network: str = Field(max_length=32)
    team: str | None = Field(default=None, max_length=64)
    state: ReplyState = Field(default=ReplyState.PENDING, sa_type=StrEnumType(ReplyState))
    created_at: datetime = _ts(nullable=False)
    attempts: int = 0
    next_attempt_at: datetime | None = _ts()
    attempt_at: datetime | None = _ts()  # a send in flight: never resent blindly
    sent_at: datetime | None = _ts()
    external_id: str | None = Field(default=None, max_length=255)
    last_error: str | None = Field(default=None, max_length=500)


class CsatRating(SQLModel, table=True):
    """The customer's 1-5 answer to a survey: one per survey (a second tap is ignored),
    with the comment the customer wrote just after it, if any."""

    __tablename__ = "csat_rating"
    __table_args__ = (
        UniqueConstraint("survey_id"),
        # The stats read a window's ratings from this index alone.
        Index("ix_csat_rating_window", "rated_at", "network", "team", "score"),
    )

    id: int | None = Field(default=None, primary_key=True)
    survey_id: int = Field(foreign_key="csat_survey.id")
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    network: str = Field(max_length=32)
    team: str | None = Field(default=None, max_length=64)
    score: int
    rated_at: datetime = _ts(nullable=False)
    event_id: str = Field(max_length=255)  # the network's id of the tap or message
    comment: str | None = Field(default=None, sa_column=Column(Text))
    comment_message_id: str | None = Field(default=None, max_length=255)
    comment_at: datetime | None = _ts()


# -- listening (brand mentions; storage/listening.py) ---------------------------------
class MentionState(StrEnum):
    PENDING = "pending"  # not shown in Slack yet
    POSTED = "posted"
    OPENED = "opened"  # became a conversation
    DISMISSED = "dismissed"
    FAILED = "failed"  # Slack refused its post for good


class ListenMention(SQLModel, table=True):
    __tablename__ = "listen_mention"

    id: int | None = Field(default=None, primary_key=True)
    source_key: str = Field(max_length=300, unique=True)
    source: str = Field(max_length=16)  # x, facebook, instagram, generic
    external_id: str = Field(max_length=255)
    url: str | None = Field(default=None, max_length=2000)
    author_id: str = Field(max_length=255)
    author_name: str = Field(max_length=255)
    author_handle: str | None = Field(default=None, max_length=255)
    text: str = Field(sa_column=Column(Text, nullable=False))
    term: str = Field(max_length=255)
    variant: str = Field(max_length=255)
    found: str = Field(max_length=255)
    edits: int = 0
    sent_at: datetime = _ts(nullable=False)
    found_at: datetime = _ts(nullable=False, index=True)
    # What opening it needs: {"network", "conversation_key", "reply_context"}.
    opening: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    state: MentionState = Field(
        default=MentionState.PENDING, sa_type=StrEnumType(MentionState), index=True
    )
    digest_id: int | None = Field(default=None, index=True)
    chunk: int | None = None
    slack_channel: str | None = Field(default=None, max_length=32)
    slack_ts: str | None = Field(default=None, max_length=32, index=True)
    attempt_at: datetime | None = _ts()
    acted_by: str | None = Field(default=None, max_length=32)
    acted_at: datetime | None = _ts()
    conversation_id: int | None = None


class ListenDigest(SQLModel, table=True):
    """One digest per window (UNIQUE): its mentions are posted in chunks, the first in
    the channel and the rest in its thread."""

    __tablename__ = "listen_digest"
    __table_args__ = (UniqueConstraint("window_start"),)

    id: int | None = Field(default=None, primary_key=True)
    window_start: datetime = _ts(nullable=False)
    channel: str = Field(max_length=32)
    count: int = 0
    chunks: int = 0
    posted_chunks: int = 0
    root_ts: str | None = Field(default=None, max_length=32)
    attempt_at: datetime | None = _ts()  # the next chunk's post was started then
    created_at: datetime = _ts(nullable=False)


class ListenCursor(SQLModel, table=True):
    """Where a poll stopped (the X search's `since_id`), so a restart resumes there."""

    __tablename__ = "listen_cursor"

    name: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=255)
    updated_at: datetime = _ts(nullable=False)


def conversation_by_key(network: str, key: str) -> SelectOfScalar[int | None]:
    """The id of the conversation a network's own key names."""
    return select(col(Conversation.id)).where(
        col(Conversation.network) == network, col(Conversation.external_key) == key
    )


async def lock_conversation(session: AsyncSession, conversation_id: int) -> Conversation:
    """The conversation's row, locked (FOR UPDATE) until the transaction ends: what is
    decided about a conversation is decided under this lock."""
    statement = select(Conversation).where(col(Conversation.id) == conversation_id)
    return (await session.execute(statement.with_for_update())).scalar_one()


class SavedReply(SQLModel, table=True):
    """A saved reply: a text the team sends often, by name, with placeholders.

    `network` is '' for the text every network gets, or a network (or a sub-channel
    such as `instagram`) whose conversations get this variant instead. Unique on
    (name, network): `/replies add` of an existing one is refused, not overwritten.
    """

    __tablename__ = "saved_reply"
    __table_args__ = (UniqueConstraint("name", "network"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64)
    network: str = Field(default="", max_length=32)
    text: str = Field(sa_column=Column(Text, nullable=False))
    created_by: str = Field(max_length=32)
    updated_by: str = Field(max_length=32)
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)
