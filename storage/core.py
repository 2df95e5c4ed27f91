"""The conversation core: typed states and the rules that change them.

Pure: no SQL, no I/O, nothing of Slack. Each rule takes the current values and
returns a plan of the updates to make (or why it changes nothing); the
repositories carry plans out inside their transactions. The states are
`StrEnum`s, so the SQL columns keep holding the same strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from storage.business_hours import ALWAYS_OPEN, BusinessHours


class ConversationStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class MessageState(StrEnum):
    """A customer message's relay into Slack."""

    PENDING = "pending"
    POSTED = "posted"
    FAILED = "failed"  # Slack refused it for good (or for too long): said so, not retried


class ReplyState(StrEnum):
    """A team member's thread message (or inbox reply) and its delivery to the customer."""

    PENDING = "pending"  # to send to the customer
    SENT = "sent"  # delivered (or, for an inbox reply, shown in Slack)
    FAILED = "failed"
    REFUSED = "refused"  # its writer may not reply: not sent
    INTERNAL = "internal"  # a note: never sent
    ECHO = "echo"  # a reply sent from the network's own inbox, held before it is shown
    UNCERTAIN = "uncertain"  # its send was cut short (a crash): resent only when asked


class ReplyKind(StrEnum):
    REPLY = "reply"  # for the customer
    NOTE = "note"  # internal: stays in Slack
    AUTOMATED = "automated"  # sent by an automation on the business side: shown, not a reply


class ActionKind(StrEnum):
    """Something the customer did that is not a message (see `customer_action`)."""

    REACTION = "reaction"
    UNREACTION = "unreaction"
    REMOVAL = "removal"  # deleted, unsent, revoked
    EDIT = "edit"
    NOTICE = "notice"  # a system notice about the conversation


class ActionState(StrEnum):
    PENDING = "pending"  # to carry out in Slack
    DONE = "done"
    DROPPED = "dropped"  # its target never became known: given up


class Mark(StrEnum):
    """What the customer did to a message after sending it, shown on its Slack copy."""

    EDITED = "edited"
    DELETED = "deleted"


def later_mark(current: Mark | None, new: Mark) -> Mark:
    """A message deleted by the customer stays shown as deleted, whatever comes after."""
    return Mark.DELETED if Mark.DELETED in (current, new) else new


class NetworkStatus(StrEnum):
    """What a network reports about a reply it took (WhatsApp `statuses[]`)."""

    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    DELETED = "deleted"  # we deleted the customer's copy (a team reply deleted in Slack)


# Replies that end a turn: delivered ones answer it, pending ones will once delivered,
# so a customer message written after either starts the next turn.
SPLITS_TURNS = (ReplyState.PENDING, ReplyState.SENT)


class Unchanged(StrEnum):
    """Why an action on a conversation changed nothing."""

    ALREADY_YOURS = "already_yours"
    OWNED = "owned"  # someone else owns it
    ALREADY_RESOLVED = "already_resolved"
    NOT_RESOLVED = "not_resolved"
    SAME_TEAM = "same_team"
    IN_FLIGHT = "in_flight"  # another handoff's new root is not posted yet


@dataclass(frozen=True)
class ConversationPlan:
    """Columns of one conversation to set; the root is re-rendered after any plan."""

    values: Mapping[str, Any]


# A resolved conversation made open again (by a person, or by a new customer message).
REOPENED: Mapping[str, Any] = MappingProxyType(
    {"status": ConversationStatus.OPEN, "resolved_by": None, "resolved_at": None}
)


def claim(owner: str | None, user: str) -> ConversationPlan | Unchanged:
    if owner == user:
        return Unchanged.ALREADY_YOURS
    if owner is not None:
        return Unchanged.OWNED
    return ConversationPlan({"owner": user})


def resolve(status: ConversationStatus, user: str, now: datetime) -> ConversationPlan | Unchanged:
    if status == ConversationStatus.RESOLVED:
        return Unchanged.ALREADY_RESOLVED
    return ConversationPlan(
        {
            "status": ConversationStatus.RESOLVED,
            "resolved_by": user,
            "resolved_at": now,
            "escalated_to": None,
        }
    )


def reopen(status: ConversationStatus) -> ConversationPlan | Unchanged:
    if status != ConversationStatus.RESOLVED:
        return Unchanged.NOT_RESOLVED
    return ConversationPlan(REOPENED)


def hand_off(
    current_team: str | None, team: str, in_flight: bool, by_user: str, channel: str
) -> ConversationPlan | Unchanged:
    """Move the conversation to `team`'s channel; its new root is posted later.

    `in_flight`: the latest handoff's new root is not posted yet (two people clicking
    at once make one handoff).
    """
    if current_team == team:
        return Unchanged.SAME_TEAM
    if in_flight:
        return Unchanged.IN_FLIGHT
    return ConversationPlan(
        {
            "team": team,
            "handed_off_by": by_user,
            "channel": channel,
            "thread_ts": None,  # the dispatcher posts the new root
            "escalated_to": None,
        }
    )


# -- turns ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TurnState:
    started_at: datetime
    answered_at: datetime | None = None


@dataclass(frozen=True)
class NewTurn:
    started_at: datetime
    is_first: bool = False


@dataclass(frozen=True)
class OpenTurns:
    """What new customer messages do to a conversation's turns."""

    moved_to: datetime | None = None  # the latest turn's start, moved earlier
    opened: tuple[NewTurn, ...] = ()


def open_turns(
    latest: TurnState | None, sent: Sequence[datetime], replies: Iterable[datetime]
) -> OpenTurns:
    """Open or extend a conversation's turn for its new messages (`sent`, in arrival order).

    `latest` is its latest turn, `replies` the times of its pending or delivered team
    replies (any superset of those since the earliest of `sent` and `latest`'s start).
    A message extends the open turn unless a team reply was written between the turn's
    start and the message: then that reply answers the turn once delivered, and the
    message starts the next one. A message written before the latest turn's answer (or
    before a reply that precedes the open turn) belongs to an earlier turn and changes
    nothing.
    """
    between = list(replies) if latest is not None else []
    start = latest.started_at if latest else None
    answered = latest.answered_at if latest else None
    latest_start = start
    opened: list[NewTurn] = []
    for at in sent:
        if start is not None and answered is None:
            low, high = min(start, at), max(start, at)
            if not any(low <= reply <= high for reply in between):
                start = low
                if opened:
                    opened[-1] = NewTurn(low, opened[-1].is_first)
                else:
                    latest_start = low
                continue
            if at < start:
                continue  # written before a reply that precedes this turn: an earlier turn's
        if answered is not None and at < answered:
            continue
        opened.append(NewTurn(at, is_first=start is None))
        start, answered = at, None
    moved = latest is not None and latest_start is not None and latest_start < latest.started_at
    return OpenTurns(latest_start if moved else None, tuple(opened))


@dataclass(frozen=True)
class Reply:
    """A team reply as the turn rules see it."""

    id: int
    sent_at: datetime
    user_id: str = ""


@dataclass(frozen=True)
class TurnAnswer:
    """The columns of a turn that say whether, when and by which reply it was answered."""

    answered_at: datetime | None
    reply_id: int | None
    response_seconds: float | None
    business_response_seconds: float | None = None  # counted in business hours only


NOT_ANSWERED = TurnAnswer(None, None, None)


def _answered_by(turn: TurnState, reply: Reply, hours: BusinessHours) -> TurnAnswer:
    return TurnAnswer(
        reply.sent_at,
        reply.id,
        (reply.sent_at - turn.started_at).total_seconds(),
        hours.open_time(turn.started_at, reply.sent_at).total_seconds(),
    )


@dataclass(frozen=True)
class AnswerPlan:
    turn: TurnAnswer | None  # None: the turn keeps its answer (or there is no turn)
    team: str | None  # the team credited with the turn, when it is answered now
    conversation: ConversationPlan


def answer_turn(
    turn: TurnState | None,
    reply: Reply,
    team: str | None,
    last_reply_at: datetime | None,
    hours: BusinessHours = ALWAYS_OPEN,
) -> AnswerPlan:
    """A reply was delivered: it answers `turn` (the latest one started at or before it)
    for the conversation's `team` unless an earlier reply already did, and stops the
    conversation's escalation."""
    answer = None
    if turn is not None and (turn.answered_at is None or reply.sent_at < turn.answered_at):
        answer = _answered_by(turn, reply, hours)
    values: dict[str, Any] = {"escalated_to": None}
    if last_reply_at is None or reply.sent_at >= last_reply_at:
        values.update(last_reply_at=reply.sent_at, last_replier=reply.user_id)
    return AnswerPlan(answer, team, ConversationPlan(values))


def unanswer_turn(
    turn: TurnState,
    later_start: datetime | None,
    delivered: Iterable[Reply],
    hours: BusinessHours = ALWAYS_OPEN,
) -> TurnAnswer:
    """The reply that answered `turn` failed after all: the earliest reply still delivered
    within the turn (from its start, before the next turn's `later_start`) answers it,
    if any."""
    within = [
        reply
        for reply in delivered
        if reply.sent_at >= turn.started_at and (later_start is None or reply.sent_at < later_start)
    ]
    if not within:
        return NOT_ANSWERED
    return _answered_by(turn, min(within, key=lambda reply: reply.sent_at), hours)
