"""Response-time figures of the contract's "Numbers" section, aggregated in SQL.

Every figure reads the `turn` table (kept up to date by `storage.repo`) and
`customer_message`; nothing is recomputed from raw replies. The same queries run
on SQLite and PostgreSQL, except the median and p90: PostgreSQL computes them
with `percentile_cont`, SQLite returns the sorted durations and
`percentile_cont()` below interpolates them the same way.

Attribution:
- a turn belongs to the team that answered it (`turn.team`); a turn with no
  answer yet belongs to the conversation's current team;
- a customer message (and so `received` and `conversations`) belongs to its
  conversation's network and current team;
- a team that is NULL is reported, and filtered, as `unassigned`.

Unanswered as of `until`: a conversation not resolved by then whose latest turn
started before `until` has no answer by `until`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    Table,
    and_,
    case,
    exists,
    func,
    literal_column,
    or_,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from storage.db import Database
from storage.models import utcnow  # importing the models registers their tables

UNASSIGNED = "unassigned"

_conversation: Table = SQLModel.metadata.tables["conversation"]
_message: Table = SQLModel.metadata.tables["customer_message"]
_turn: Table = SQLModel.metadata.tables["turn"]

# (network, team) with team None for "unassigned"
_Key = tuple[str, str | None]


def percentile_cont(values: Sequence[float], fraction: float) -> float | None:
    """Interpolate like PostgreSQL's `percentile_cont` over already sorted values."""
    if not values:
        return None
    position = fraction * (len(values) - 1)
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return float(values[low])
    return values[low] + (values[high] - values[low]) * (position - low)


@dataclass
class _Sums:
    """Additive figures of one (network, team) group; rolled up in Python."""

    received: int = 0
    conversations: int = 0
    turns: int = 0
    answered: int = 0
    response_sum: float = 0.0
    first_answered: int = 0
    first_sum: float = 0.0
    unanswered: int = 0
    oldest_started: datetime | None = None

    def add(self, other: _Sums) -> None:
        self.received += other.received
        self.conversations += other.conversations
        self.turns += other.turns
        self.answered += other.answered
        self.response_sum += other.response_sum
        self.first_answered += other.first_answered
        self.first_sum += other.first_sum
        self.unanswered += other.unanswered
        if other.oldest_started is not None and (
            self.oldest_started is None or other.oldest_started < self.oldest_started
        ):
            self.oldest_started = other.oldest_started

    def figures(self, percentiles: tuple[float | None, float | None], as_of: datetime) -> dict:
        median, p90 = percentiles
        return {
            "received": self.received,
            "conversations": self.conversations,
            "turns": self.turns,
            "answered_turns": self.answered,
            "response_rate": self.answered / self.turns if self.turns else None,
            "avg_response_seconds": _seconds(
                self.response_sum / self.answered if self.answered else None
            ),
            "median_response_seconds": _seconds(median),
            "p90_response_seconds": _seconds(p90),
            "avg_first_response_seconds": _seconds(
                self.first_sum / self.first_answered if self.first_answered else None
            ),
            "unanswered": self.unanswered,
            "oldest_unanswered_seconds": _seconds(
                (as_of - self.oldest_started).total_seconds()
                if self.oldest_started is not None
                else None
            ),
        }


def _seconds(value: float | None) -> float | None:
    """Milliseconds are plenty, and rounding hides float noise between dialects."""
    return None if value is None else round(value, 3)


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value


def _turn_team(current_team: ColumnElement[Any] | None = None) -> ColumnElement[Any]:
    """The team of a turn: who answered it, else the conversation's current team.

    Without a join to `conversation`, a scalar subquery inside CASE runs only for
    the few unanswered turns: much cheaper than joining every turn of the window.
    """
    if current_team is None:
        current_team = (
            select(_conversation.c.team)
            .where(_conversation.c.id == _turn.c.conversation_id)
            .correlate(_turn)
            .scalar_subquery()
        )
    return case((_turn.c.answered_at.is_(None), current_team), else_=_turn.c.team)


def _team_is(column: ColumnElement[Any], team: str) -> ColumnElement[bool]:
    return column.is_(None) if team == UNASSIGNED else column == team


def _turn_rows(
    since: datetime, until: datetime, network: str | None, team: str | None
) -> Any:
    """Turns started in [since, until) with their attributed team, filtered."""
    conditions: list[ColumnElement[bool]] = [
        _turn.c.started_at >= since,
        _turn.c.started_at < until,
    ]
    if network is not None:
        conditions.append(_turn.c.network == network)
    rows = select(
        _turn.c.network,
        _turn_team().label("team"),
        _turn.c.is_first,
        _turn.c.answered_at,
        _turn.c.response_seconds,
    ).where(*conditions)
    inner = rows.subquery("t")
    if team is not None:
        return inner, [_team_is(inner.c.team, team)]
    return inner, []


async def _received(
    session: AsyncSession,
    since: datetime,
    until: datetime,
    network: str | None,
    team: str | None,
) -> dict[_Key, _Sums]:
    per_conversation = select(
        _message.c.conversation_id, func.count().label("n")
    ).where(_message.c.sent_at >= since, _message.c.sent_at < until)
    if network is not None:
        per_conversation = per_conversation.where(_message.c.network == network)
    counted = per_conversation.group_by(_message.c.conversation_id).subquery("m")
    statement = (
        select(
            _conversation.c.network,
            _conversation.c.team,
            func.sum(counted.c.n),
            func.count(),
        )
        .join_from(counted, _conversation, _conversation.c.id == counted.c.conversation_id)
        .group_by(_conversation.c.network, _conversation.c.team)
    )
    if team is not None:
        statement = statement.where(_team_is(_conversation.c.team, team))
    result: dict[_Key, _Sums] = {}
    for net, team_name, received, conversations in await session.execute(statement):
        result[(net, team_name)] = _Sums(received=int(received), conversations=conversations)
    return result


async def _turn_sums(
    session: AsyncSession,
    since: datetime,
    until: datetime,
    as_of: datetime,
    network: str | None,
    team: str | None,
) -> dict[_Key, _Sums]:
    t, conditions = _turn_rows(since, until, network, team)
    answered = t.c.answered_at <= as_of
    first = and_(answered, t.c.is_first)
    statement = (
        select(
            t.c.network,
            t.c.team,
            func.count(),
            func.count(case((answered, 1))),
            func.sum(case((answered, t.c.response_seconds)), type_=Float),
            func.count(case((first, 1))),
            func.sum(case((first, t.c.response_seconds)), type_=Float),
        )
        .where(*conditions)
        .group_by(t.c.network, t.c.team)
    )
    result: dict[_Key, _Sums] = {}
    for net, team_name, turns, n_answered, total, n_first, first_total in await session.execute(
        statement
    ):
        result[(net, team_name)] = _Sums(
            turns=turns,
            answered=n_answered,
            response_sum=total or 0.0,
            first_answered=n_first,
            first_sum=first_total or 0.0,
        )
    return result


def _waiting(as_of: datetime, network: str | None, team: str | None) -> Select[Any]:
    """Conversations not resolved by `as_of` whose latest turn then had no answer yet.

    A turn loses its answer when a delivery is reported failed afterwards, so
    "latest" is checked rather than assumed.
    """
    later = _turn.alias("later")
    team_column = _turn_team(_conversation.c.team)
    statement = (
        select(
            _turn.c.conversation_id,
            _turn.c.network,
            team_column.label("team"),
            _turn.c.started_at,
        )
        .join(_conversation, _conversation.c.id == _turn.c.conversation_id)
        .where(
            _turn.c.started_at < as_of,
            or_(_turn.c.answered_at.is_(None), _turn.c.answered_at > as_of),
            or_(_conversation.c.resolved_at.is_(None), _conversation.c.resolved_at > as_of),
            ~exists().where(
                later.c.conversation_id == _turn.c.conversation_id,
                later.c.started_at > _turn.c.started_at,
                later.c.started_at < as_of,
            ),
        )
    )
    if network is not None:
        statement = statement.where(_turn.c.network == network)
    if team is not None:
        statement = statement.where(_team_is(team_column, team))
    return statement


async def _unanswered(
    session: AsyncSession, as_of: datetime, network: str | None, team: str | None
) -> dict[_Key, _Sums]:
    waiting = _waiting(as_of, network, team).subquery("w")
    statement = select(
        waiting.c.network, waiting.c.team, func.count(), func.min(waiting.c.started_at)
    ).group_by(waiting.c.network, waiting.c.team)
    result: dict[_Key, _Sums] = {}
    for net, team_name, count, oldest in await session.execute(statement):
        result[(net, team_name)] = _Sums(unanswered=count, oldest_started=oldest)
    return result


# Percentiles per scope: ("all", "") | ("network", name) | ("team", name or None)
_Scope = tuple[str, str | None]
_FRACTIONS = (0.5, 0.9)


async def _percentiles(
    session: AsyncSession,
    dialect: str,
    since: datetime,
    until: datetime,
    as_of: datetime,
    network: str | None,
    team: str | None,
) -> dict[_Scope, tuple[float | None, float | None]]:
    t, conditions = _turn_rows(since, until, network, team)
    conditions.append(t.c.answered_at <= as_of)
    if dialect == "postgresql":
        return await _percentiles_in_sql(session, t, conditions)
    statement = (
        select(t.c.network, t.c.team, t.c.response_seconds)
        .where(*conditions)
        .order_by(t.c.response_seconds)
    )
    values: dict[_Scope, list[float]] = {}
    for net, team_name, seconds in await session.execute(statement):
        for scope in (("all", ""), ("network", net), ("team", team_name)):
            values.setdefault(scope, []).append(seconds)
    return {
        scope: (percentile_cont(sorted_values, 0.5), percentile_cont(sorted_values, 0.9))
        for scope, sorted_values in values.items()
    }


async def _percentiles_in_sql(
    session: AsyncSession, t: Any, conditions: list[ColumnElement[bool]]
) -> dict[_Scope, tuple[float | None, float | None]]:
    ordered = [
        func.percentile_cont(fraction).within_group(t.c.response_seconds)
        for fraction in _FRACTIONS
    ]
    statement = (
        select(
            func.grouping(t.c.network),
            func.grouping(t.c.team),
            t.c.network,
            t.c.team,
            *ordered,
        )
        .where(*conditions)
        .group_by(
            func.grouping_sets(
                tuple_(t.c.network), tuple_(t.c.team), literal_column("()")
            )
        )
    )
    result: dict[_Scope, tuple[float | None, float | None]] = {}
    for by_network, by_team, net, team_name, median, p90 in await session.execute(statement):
        if not by_network:
            scope: _Scope = ("network", net)
        elif not by_team:
            scope = ("team", team_name)
        else:
            scope = ("all", "")
        result[scope] = (median, p90)
    return result


async def compute(
    db: Database,
    since: datetime,
    until: datetime,
    *,
    network: str | None = None,
    team: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The contract's `/api/stats` JSON for [since, until).

    Unanswered figures are as of `until`, or as of `now` when the window ends
    in the future (`now` defaults to the current time).
    """
    since = _utc(since, "since")
    until = _utc(until, "until")
    if until < since:
        raise ValueError("until is before since")
    as_of = min(until, _utc(now, "now") if now is not None else utcnow())
    async with db.session() as session:
        groups: dict[_Key, _Sums] = {}
        for part in (
            await _received(session, since, until, network, team),
            await _turn_sums(session, since, until, as_of, network, team),
            await _unanswered(session, as_of, network, team),
        ):
            for key, sums in part.items():
                groups.setdefault(key, _Sums()).add(sums)
        percentiles = await _percentiles(
            session, db.dialect, since, until, as_of, network, team
        )

    total = _Sums()
    by_network: dict[str, _Sums] = {}
    by_team: dict[str | None, _Sums] = {}
    for (net, team_name), sums in groups.items():
        total.add(sums)
        by_network.setdefault(net, _Sums()).add(sums)
        by_team.setdefault(team_name, _Sums()).add(sums)
    empty = (None, None)
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        **total.figures(percentiles.get(("all", ""), empty), as_of),
        "by_network": {
            net: sums.figures(percentiles.get(("network", net), empty), as_of)
            for net, sums in sorted(by_network.items())
        },
        "by_team": {
            (team_name or UNASSIGNED): sums.figures(
                percentiles.get(("team", team_name), empty), as_of
            )
            for team_name, sums in sorted(by_team.items(), key=lambda item: item[0] or "")
        },
    }


async def oldest_unanswered(
    db: Database,
    until: datetime,
    limit: int = 5,
    network: str | None = None,
    team: str | None = None,
) -> list[dict[str, Any]]:
    """The conversations waiting longest for an answer as of `until`, oldest first."""
    until = _utc(until, "until")
    waiting = _waiting(until, network, team).subquery("w")
    statement = (
        select(
            waiting.c.conversation_id,
            waiting.c.network,
            waiting.c.team,
            waiting.c.started_at,
            _conversation.c.channel,
            _conversation.c.thread_ts,
            _conversation.c.customer_name,
        )
        .join(_conversation, _conversation.c.id == waiting.c.conversation_id)
        .order_by(waiting.c.started_at, waiting.c.conversation_id)
        .limit(limit)
    )
    async with db.session() as session:
        rows = (await session.execute(statement)).all()
    return [
        {
            "conversation_id": conversation_id,
            "network": net,
            "team": team_name or UNASSIGNED,
            "channel": channel,
            "thread_ts": thread_ts,
            "customer_name": customer_name,
            "waiting_seconds": _seconds((until - started_at).total_seconds()),
        }
        for conversation_id, net, team_name, started_at, channel, thread_ts, customer_name in rows
    ]
