"""Customer satisfaction in SQL: rating questions (`csat_survey`) and answers (`csat_rating`).

A question is claimed under the conversation's row lock when it is resolved, at most
one per conversation per `EVERY`; it is sent like the out-of-hours auto-reply (pending
with a retry time, `attempt_at` while a send is in flight, never resent blindly). An
answer is one row per survey (UNIQUE(survey_id), inserted with ON CONFLICT DO
NOTHING): a second tap, or a webhook delivered twice, counts nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, text, update
from sqlmodel import col

from storage.core import ConversationStatus, ReplyState
from storage.db import Database, insert_ignore
from storage.models import PENDING, Conversation, CsatRating, CsatSurvey, TeamReply

EVERY = timedelta(hours=24)  # at most one question per conversation in this long
ANSWER_WITHIN = timedelta(hours=24)  # a typed digit answers a question this recent
COMMENT_WITHIN = timedelta(minutes=10)  # a message this soon after a rating is its comment


@dataclass(frozen=True)
class Recorded:
    """A rating as stored: `score` is the first answer's, whatever was tapped since."""

    conversation_id: int
    score: int
    new: bool


@dataclass(frozen=True)
class OpenSurvey:
    """A recent question in a resolved conversation, and its answer so far."""

    survey_id: int
    conversation_key: str
    rating_id: int | None
    rated_at: datetime | None
    rated_by: str | None  # the id of the tap or message that rated
    comment_message_id: str | None


class CsatStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- questions ----------------------------------------------------------
    async def claim(self, conversation_id: int, now: datetime) -> int | None:
        """A new question for a resolved conversation, due now; None when it is no longer
        resolved or was asked within `EVERY` (decided under its row lock)."""
        async with self.db.session() as session:
            conversation = (
                await session.execute(
                    select(Conversation)
                    .where(col(Conversation.id) == conversation_id)
                    .with_for_update()
                )
            ).scalar_one()
            if conversation.status != ConversationStatus.RESOLVED:
                return None
            recent = await session.execute(
                select(col(CsatSurvey.id)).where(
                    col(CsatSurvey.conversation_id) == conversation_id,
                    col(CsatSurvey.created_at) > now - EVERY,
                )
            )
            if recent.first() is not None:
                return None
            survey = CsatSurvey(
                conversation_id=conversation_id,
                network=conversation.network,
                team=conversation.team,
                state=ReplyState.PENDING,
                created_at=now,
                next_attempt_at=now,
            )
            session.add(survey)
            await session.flush()
            return survey.id

    async def due_conversations(self, now: datetime, limit: int = 100) -> list[int]:
        async with self.db.read() as session:
            rows = await session.execute(
                select(col(CsatSurvey.conversation_id))
                .where(text(PENDING), col(CsatSurvey.next_attempt_at) <= now)
                .distinct()
                .limit(limit)
            )
            return [row[0] for row in rows]

    async def next_due_at(self) -> datetime | None:
        async with self.db.read() as session:
            found: datetime | None = (
                await session.execute(
                    select(func.min(CsatSurvey.next_attempt_at)).where(text(PENDING))
                )
            ).scalar_one()
        return found

    async def due(self, conversation_id: int, now: datetime) -> list[CsatSurvey]:
        async with self.db.read() as session:
            rows = await session.execute(
                select(CsatSurvey)
                .where(
                    col(CsatSurvey.conversation_id) == conversation_id,
                    text(PENDING),
                    col(CsatSurvey.next_attempt_at) <= now,
                )
                .order_by(col(CsatSurvey.id))
            )
            return list(rows.scalars())

    async def begin_send(self, survey_id: int, now: datetime) -> None:
        await self._set(survey_id, attempt_at=now)

    async def mark_sent(self, survey_id: int, external_id: str | None, now: datetime) -> None:
        """Sent. An echo of it the network already reported is dropped: it is no
        colleague's reply (a later one is never stored: `is_auto_reply`)."""
        async with self.db.session() as session:
            survey = await session.get(CsatSurvey, survey_id)
            assert survey is not None
            survey.state, survey.sent_at, survey.external_id = ReplyState.SENT, now, external_id
            survey.attempt_at = survey.next_attempt_at = None
            if external_id is not None:
                await session.execute(
                    delete(TeamReply).where(
                        col(TeamReply.network) == survey.network,
                        col(TeamReply.external_id) == external_id,
                        col(TeamReply.state) == ReplyState.ECHO,
                    )
                )

    async def retry_later(self, survey_id: int, at: datetime, error: str) -> None:
        async with self.db.session() as session:
            survey = await session.get(CsatSurvey, survey_id)
            assert survey is not None
            survey.attempts += 1
            survey.next_attempt_at, survey.attempt_at, survey.last_error = at, None, error[:500]

    async def mark_failed(self, survey_id: int, error: str) -> None:
        await self._set(
            survey_id,
            state=ReplyState.FAILED,
            next_attempt_at=None,
            attempt_at=None,
            last_error=error[:500],
        )

    async def conversation(self, conversation_id: int) -> Conversation | None:
        async with self.db.read() as session:
            return await session.get(Conversation, conversation_id)

    async def all(self, conversation_id: int) -> list[CsatSurvey]:
        async with self.db.read() as session:
            rows = await session.execute(
                select(CsatSurvey)
                .where(col(CsatSurvey.conversation_id) == conversation_id)
                .order_by(col(CsatSurvey.id))
            )
            return list(rows.scalars())

    async def _set(self, survey_id: int, **values: object) -> None:
        async with self.db.session() as session:
            survey = await session.get(CsatSurvey, survey_id)
            assert survey is not None
            for name, value in values.items():
                setattr(survey, name, value)

    # -- answers ------------------------------------------------------------
    async def record(
        self,
        survey_id: int,
        network: str,
        conversation_key: str,
        score: int,
        at: datetime,
        event_id: str,
    ) -> Recorded | None:
        """Store the answer unless the survey already has one; None when no question of
        that conversation has this id (a stale or forged payload)."""
        async with self.db.session() as session:
            found = (
                await session.execute(
                    select(CsatSurvey, col(Conversation.external_key))
                    .join(Conversation, col(Conversation.id) == col(CsatSurvey.conversation_id))
                    .where(col(CsatSurvey.id) == survey_id)
                )
            ).first()
            if found is None:
                return None
            survey, key = found
            if survey.network != network or key != conversation_key:
                return None
            new = await insert_ignore(
                session,
                CsatRating,
                ("survey_id",),
                survey_id=survey_id,
                conversation_id=survey.conversation_id,
                network=survey.network,
                team=survey.team,
                score=score,
                rated_at=at,
                event_id=event_id,
            )
            stored = (
                await session.execute(
                    select(col(CsatRating.score)).where(col(CsatRating.survey_id) == survey_id)
                )
            ).scalar_one()
            return Recorded(survey.conversation_id, stored, new is not None)

    async def open_surveys(
        self, network: str, keys: Sequence[str], now: datetime
    ) -> dict[str, OpenSurvey]:
        """The latest question sent within `ANSWER_WITHIN` in each of these conversations
        that is still resolved, by conversation key."""
        async with self.db.read() as session:
            rows = await session.execute(
                select(
                    col(CsatSurvey.id),
                    col(Conversation.external_key),
                    col(CsatRating.id),
                    col(CsatRating.rated_at),
                    col(CsatRating.event_id),
                    col(CsatRating.comment_message_id),
                )
                .join(Conversation, col(Conversation.id) == col(CsatSurvey.conversation_id))
                .outerjoin(CsatRating, col(CsatRating.survey_id) == col(CsatSurvey.id))
                .where(
                    col(Conversation.network) == network,
                    col(Conversation.external_key).in_(list(set(keys))),
                    col(Conversation.status) == ConversationStatus.RESOLVED,
                    col(CsatSurvey.state) == ReplyState.SENT,
                    col(CsatSurvey.sent_at) >= now - ANSWER_WITHIN,
                )
                .order_by(col(CsatSurvey.id))
            )
            return {  # the latest wins
                key: OpenSurvey(survey_id, key, rating_id, rated_at, rated_by, comment_id)
                for survey_id, key, rating_id, rated_at, rated_by, comment_id in rows
                if survey_id is not None
            }

    async def attach_comment(
        self, rating_id: int, message_id: str, comment: str, at: datetime
    ) -> bool:
        """The comment of a rating that has none yet (or this same message again)."""
        async with self.db.session() as session:
            done = await session.execute(
                update(CsatRating)
                .where(
                    col(CsatRating.id) == rating_id, col(CsatRating.comment_message_id).is_(None)
                )
                .values(comment=comment, comment_message_id=message_id, comment_at=at)
            )
            if done.rowcount:  # type: ignore[attr-defined]
                return True
            again = await session.execute(
                select(col(CsatRating.id)).where(
                    col(CsatRating.id) == rating_id,
                    col(CsatRating.comment_message_id) == message_id,
                )
            )
            return again.first() is not None

    async def ratings(self, conversation_id: int) -> list[CsatRating]:
        async with self.db.read() as session:
            rows = await session.execute(
                select(CsatRating)
                .where(col(CsatRating.conversation_id) == conversation_id)
                .order_by(col(CsatRating.id))
            )
            return list(rows.scalars())
