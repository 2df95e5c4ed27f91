"""The series behind the reports page, aggregated in SQL by quarter hour.

The headline figures come from `storage.stats.compute` (the `/api/stats`
numbers); this module adds what a chart needs over time. Rows are grouped by
the UTC quarter hour they fall in (epoch seconds // 900) rather than by day:
every time zone in use today is offset from UTC by a whole number of quarter
hours, so the service can regroup the buckets into local days, weekdays and
hours of any `TIMEZONE` (DST days included) without asking SQL about zones.

Attribution follows `storage.stats`: a customer message belongs to its
conversation's network and current team; an answered turn to `turn.team`.
An agent is the team member whose delivered reply answered a turn.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import BigInteger, ColumnElement, Integer, Table, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from storage.db import Database
from storage.stats import UNASSIGNED, percentile_cont

QUARTER_SECONDS = 900

_conversation: Table = SQLModel.metadata.tables["conversation"]
_message: Table = SQLModel.metadata.tables["customer_message"]
_turn: Table = SQLModel.metadata.tables["turn"]
_reply: Table = SQLModel.metadata.tables["team_reply"]


@dataclass(frozen=True)
class Volume:
    """Customer messages of one network in one quarter hour."""

    start: datetime  # UTC
    network: str
    messages: int


@dataclass(frozen=True)
class Responses:
    """Response times of the turns started in one quarter hour and answered by `as_of`."""

    start: datetime  # UTC
    seconds: list[float]


@dataclass(frozen=True)
class Agent:
    user_id: str
    name: str | None
    replies: int  # delivered replies sent in the window
    answered_turns: int  # the window's turns this person's reply answered
    median_response_seconds: float | None


def _quarter(column: ColumnElement[Any], dialect: str) -> ColumnElement[int]:
    """The quarter hour (epoch seconds // 900) a timestamp column falls in."""
    if dialect == "sqlite":  # naive UTC text: strftime reads it as UTC
        return cast(func.strftime("%s", column), Integer) // QUARTER_SECONDS
    return cast(func.floor(func.extract("epoch", column) / QUARTER_SECONDS), BigInteger)


def _start(quarter: int) -> datetime:
    return datetime.fromtimestamp(int(quarter) * QUARTER_SECONDS, UTC)


def _team_is(column: ColumnElement[Any], team: str) -> ColumnElement[bool]:
    return column.is_(None) if team == UNASSIGNED else column == team


def _floats(value: Any, dialect: str) -> list[float]:
    """An aggregated array: JSON text on SQLite, a list on PostgreSQL."""
    values = json.loads(value) if dialect == "sqlite" else list(value or [])
    return sorted(float(v) for v in values)


def _collect(column: ColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    return (func.json_group_array if dialect == "sqlite" else func.array_agg)(column)


async def _volume(
    session: AsyncSession, since: datetime, until: datetime, network: str | None, team: str | None
) -> list[Volume]:
    dialect = session.get_bind().dialect.name
    quarter = _quarter(_message.c.sent_at, dialect).label("quarter")
    statement = select(quarter, _message.c.network, func.count()).where(
        _message.c.sent_at >= since, _message.c.sent_at < until
    )
    if network is not None:
        statement = statement.where(_message.c.network == network)
    if team is not None:
        statement = statement.join(
            _conversation, _conversation.c.id == _message.c.conversation_id
        ).where(_team_is(_conversation.c.team, team))
    statement = statement.group_by(quarter, _message.c.network)
    return [Volume(_start(q), net, count) for q, net, count in await session.execute(statement)]


async def _responses(
    session: AsyncSession,
    since: datetime,
    until: datetime,
    as_of: datetime,
    network: str | None,
    team: str | None,
) -> list[Responses]:
    dialect = session.get_bind().dialect.name
    quarter = _quarter(_turn.c.started_at, dialect).label("quarter")
    statement = select(quarter, _collect(_turn.c.response_seconds, dialect)).where(
        _turn.c.started_at >= since, _turn.c.started_at < until, _turn.c.answered_at <= as_of
    )
    if network is not None:
        statement = statement.where(_turn.c.network == network)
    if team is not None:
        statement = statement.where(_team_is(_turn.c.team, team))
    statement = statement.group_by(quarter)
    return [
        Responses(_start(q), _floats(values, dialect))
        for q, values in await session.execute(statement)
    ]


async def _agents(
    session: AsyncSession,
    since: datetime,
    until: datetime,
    as_of: datetime,
    network: str | None,
    team: str | None,
) -> list[Agent]:
    dialect = session.get_bind().dialect.name
    replies = (
        select(_reply.c.user_id, func.max(_reply.c.user_name), func.count())
        .where(
            _reply.c.kind == "reply",
            _reply.c.state == "sent",
            _reply.c.sent_at >= since,
            _reply.c.sent_at < until,
        )
        .group_by(_reply.c.user_id)
    )
    if network is not None:
        replies = replies.where(_reply.c.network == network)
    if team is not None:
        replies = replies.join(_conversation, _conversation.c.id == _reply.c.conversation_id).where(
            _team_is(_conversation.c.team, team)
        )
    answered = (
        select(
            _reply.c.user_id,
            func.max(_reply.c.user_name),
            _collect(_turn.c.response_seconds, dialect),
        )
        .join(_reply, _reply.c.id == _turn.c.reply_id)
        .where(
            _turn.c.started_at >= since, _turn.c.started_at < until, _turn.c.answered_at <= as_of
        )
        .group_by(_reply.c.user_id)
    )
    if network is not None:
        answered = answered.where(_turn.c.network == network)
    if team is not None:
        answered = answered.where(_team_is(_turn.c.team, team))
    names: dict[str, str | None] = {}
    counts: dict[str, int] = {}
    times: dict[str, list[float]] = {}
    for user, name, count in await session.execute(replies):
        names[user], counts[user] = name, count
    for user, name, values in await session.execute(answered):
        names[user] = names.get(user) or name
        times[user] = _floats(values, dialect)
    return sorted(
        (
            Agent(
                user,
                names[user],
                counts.get(user, 0),
                len(times.get(user, [])),
                percentile_cont(times.get(user, []), 0.5),
            )
            for user in names
        ),
        key=lambda agent: (-agent.answered_turns, -agent.replies, agent.user_id),
    )


_T = TypeVar("_T")


async def _read(db: Database, query: Callable[..., Awaitable[_T]], *args: object) -> _T:
    async with db.read() as session:
        return await query(session, *args)


async def series(
    db: Database,
    since: datetime,
    until: datetime,
    as_of: datetime,
    *,
    network: str | None = None,
    team: str | None = None,
) -> tuple[list[Volume], list[Responses], list[Agent]]:
    """The window's message volume and response times by quarter hour, and its agents;
    the three queries run concurrently, each on its own connection."""
    volume, responses, agents = await asyncio.gather(
        _read(db, _volume, since, until, network, team),
        _read(db, _responses, since, until, as_of, network, team),
        _read(db, _agents, since, until, as_of, network, team),
    )
    return volume, responses, agents
