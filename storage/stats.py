"""Response-time figures of the contract's "Numbers" section, aggregated in SQL.

Every figure reads the `turn` table (kept up to date by `storage.repo`) and
`customer_message`; nothing is recomputed from raw replies. The same queries run
on SQLite and PostgreSQL, except the median and p90: PostgreSQL computes them
with `percentile_cont`; on SQLite the turn query also returns each group's
answered durations (a JSON array) and `percentile_cont()` below interpolates
them the same way.

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

import asyncio
import json
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    CTE,
    ColumnElement,
    Float,
    Table,
    and_,
    case,
    exists,
    func,
    literal_column,
    or_,
    select,
    text,
    tuple_,
    union_all,
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
    # SQLite only: the answered response times, for `percentile_cont()` in Python
    durations: list[float] = field(default_factory=list)

    def add(self, other: _Sums) -> None:
        self.received += other.received
        self.conversations += other.conversations
        self.turns += other.turns
        self.answered += other.answered
        self.response_sum += other.response_sum
        self.first_answered += other.first_answered
        self.first_sum += other.first_sum
        self.unanswered += other.unanswered
        self.durations += other.durations
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


def _team_is(column: ColumnElement[Any], team: str) -> ColumnElement[bool]:
    return column.is_(None) if team == UNASSIGNED else column == team


def _in_window(since: datetime, until: datetime, network: str | None) -> list[Any]:
    """Turns whose first customer message falls in [since, until)."""
    conditions = [_turn.c.started_at >= since, _turn.c.started_at < until]
    if network is not None:
        conditions.append(_turn.c.network == network)
    return conditions


async def _received(
    session: AsyncSession,
    since: datetime,
    until: datetime,
    network: str | None,
    team: str | None,
) -> dict[_Key, _Sums]:
    per_conversation = select(_message.c.conversation_id, func.count().label("n")).where(
        _message.c.sent_at >= since, _message.c.sent_at < until
    )
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
    return {
        (net, team_name): _Sums(received=int(received), conversations=conversations)
        for net, team_name, received, conversations in await session.execute(statement)
    }


async def _turn_sums(
    session: AsyncSession,
    since: datetime,
    until: datetime,
    as_of: datetime,
    network: str | None,
    team: str | None,
) -> dict[_Key, _Sums]:
    """Answered turns grouped by `turn.team`, waiting ones by the conversation's team.

    Grouping by plain columns (not a CASE over both) keeps PostgreSQL's group
    estimate small, so it hashes 15 groups instead of sorting 100k rows. On
    SQLite the same pass also collects the answered durations as one JSON array
    per group: far cheaper than fetching them as rows.
    """
    answered = _turn.c.answered_at <= as_of
    first = and_(answered, _turn.c.is_first)
    sqlite = session.get_bind().dialect.name == "sqlite"
    durations = [
        func.json_group_array(_turn.c.response_seconds).filter(answered)
        if sqlite
        else literal_column("NULL")
    ]
    answered_turns = (
        select(
            _turn.c.network,
            _turn.c.team,
            func.count(),
            func.count(case((answered, 1))),
            func.sum(case((answered, _turn.c.response_seconds)), type_=Float),
            func.count(case((first, 1))),
            func.sum(case((first, _turn.c.response_seconds)), type_=Float),
            *durations,
        )
        .where(*_in_window(since, until, network), _turn.c.answered_at.is_not(None))
        .group_by(_turn.c.network, _turn.c.team)
    )
    waiting_turns = (
        select(_turn.c.network, _conversation.c.team, func.count())
        .join(_conversation, _conversation.c.id == _turn.c.conversation_id)
        .where(*_in_window(since, until, network), _turn.c.answered_at.is_(None))
        .group_by(_turn.c.network, _conversation.c.team)
    )
    if team is not None:
        answered_turns = answered_turns.where(_team_is(_turn.c.team, team))
        waiting_turns = waiting_turns.where(_team_is(_conversation.c.team, team))
    result: dict[_Key, _Sums] = {}
    for (
        net,
        team_name,
        turns,
        n_answered,
        total,
        n_first,
        first_total,
        array,
    ) in await session.execute(answered_turns):
        result[(net, team_name)] = _Sums(
            turns=turns,
            answered=n_answered,
            response_sum=total or 0.0,
            first_answered=n_first,
            first_sum=first_total or 0.0,
            durations=json.loads(array) if array else [],
        )
    for net, team_name, turns in await session.execute(waiting_turns):
        result.setdefault((net, team_name), _Sums()).turns += turns
    return result


def _waiting(as_of: datetime, network: str | None, team: str | None, dialect: str) -> CTE:
    """Conversations not resolved by `as_of` whose latest turn then had no answer yet.

    A turn loses its answer when a delivery is reported failed afterwards, so
    "latest" is checked rather than assumed.
    """
    started: ColumnElement[bool] = _turn.c.started_at < as_of
    if dialect == "sqlite":
        # Nearly always true: without the hint SQLite ranges over ix_turn_started
        # (every turn) instead of ix_turn_open's few unanswered ones.
        started = func.likely(started)
    columns = (
        _turn.c.conversation_id,
        _turn.c.network,
        _turn.c.team,
        _turn.c.started_at,
        _turn.c.answered_at,
    )
    # Two index ranges of ix_turn_open (answered_at, started_at) rather than an OR.
    open_turns = union_all(
        select(*columns).where(_turn.c.answered_at.is_(None), started),
        select(*columns).where(_turn.c.answered_at > as_of, started),
    ).subquery("open_turn")
    later = _turn.alias("later")
    team_column = case(
        (open_turns.c.answered_at.is_(None), _conversation.c.team), else_=open_turns.c.team
    )
    statement = (
        select(
            open_turns.c.conversation_id,
            open_turns.c.network,
            team_column.label("team"),
            open_turns.c.started_at,
            _conversation.c.channel,
            _conversation.c.thread_ts,
            _conversation.c.customer_name,
        )
        .join(_conversation, _conversation.c.id == open_turns.c.conversation_id)
        .where(
            or_(_conversation.c.resolved_at.is_(None), _conversation.c.resolved_at > as_of),
            ~exists().where(
                later.c.conversation_id == open_turns.c.conversation_id,
                later.c.started_at > open_turns.c.started_at,
                later.c.started_at < as_of,
            ),
        )
    )
    if network is not None:
        statement = statement.where(open_turns.c.network == network)
    if team is not None:
        statement = statement.where(_team_is(team_column, team))
    # Planned on its own: inlined, SQLite merges the union into the outer ORDER BY
    # and probes every conversation (600 ms instead of 60).
    return statement.cte("waiting").prefix_with("MATERIALIZED")


async def _unanswered(
    session: AsyncSession, as_of: datetime, network: str | None, team: str | None
) -> dict[_Key, _Sums]:
    dialect = session.get_bind().dialect.name
    waiting = _waiting(as_of, network, team, dialect)
    statement = select(
        waiting.c.network, waiting.c.team, func.count(), func.min(waiting.c.started_at)
    ).group_by(waiting.c.network, waiting.c.team)
    return {
        (net, team_name): _Sums(unanswered=count, oldest_started=oldest)
        for net, team_name, count, oldest in await session.execute(statement)
    }


# Percentiles per scope: ("all", "") | ("network", name) | ("team", name or None)
_Scope = tuple[str, str | None]
_Percentiles = dict[_Scope, tuple[float | None, float | None]]


def _percentiles_in_python(groups: dict[_Key, _Sums]) -> _Percentiles:
    """SQLite: `percentile_cont()` over the durations `_turn_sums` collected."""
    values: dict[_Scope, list[float]] = {}
    for (net, team_name), sums in groups.items():
        for scope in (("all", ""), ("network", net), ("team", team_name)):
            values.setdefault(scope, []).extend(sums.durations)
    result: _Percentiles = {}
    for scope, durations in values.items():
        durations.sort()
        result[scope] = (percentile_cont(durations, 0.5), percentile_cont(durations, 0.9))
    return result


async def _percentiles_in_sql(
    session: AsyncSession,
    since: datetime,
    until: datetime,
    as_of: datetime,
    network: str | None,
    team: str | None,
) -> _Percentiles:
    """PostgreSQL: `percentile_cont` of the answered turns, overall and per scope.

    An answered turn's team is `turn.team`, so no conversation is read here.
    """
    seconds = _turn.c.response_seconds
    statement = (
        select(
            func.grouping(_turn.c.network),
            func.grouping(_turn.c.team),
            _turn.c.network,
            _turn.c.team,
            func.percentile_cont(0.5).within_group(seconds),
            func.percentile_cont(0.9).within_group(seconds),
        )
        .where(*_in_window(since, until, network), _turn.c.answered_at <= as_of)
        .group_by(
            func.grouping_sets(tuple_(_turn.c.network), tuple_(_turn.c.team), literal_column("()"))
        )
    )
    if team is not None:
        statement = statement.where(_team_is(_turn.c.team, team))
    result: _Percentiles = {}
    for by_network, by_team, net, team_name, median, p90 in await session.execute(statement):
        if not by_network:
            scope: _Scope = ("network", net)
        elif not by_team:
            scope = ("team", team_name)
        else:
            scope = ("all", "")
        result[scope] = (median, p90)
    return result


_T = TypeVar("_T")


async def _read(
    db: Database, query: Callable[..., Awaitable[_T]], *args: datetime | str | None
) -> _T:
    """Run one query in its own read transaction (PostgreSQL: without JIT, whose
    compile time dwarfs these queries, and with room to sort in memory)."""
    async with db.session() as session:
        if db.dialect == "postgresql":
            await session.execute(text("SET LOCAL jit = off"))
            await session.execute(text("SET LOCAL work_mem = '32MB'"))
        return await query(session, *args)


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
    in the future (`now` defaults to the current time). On PostgreSQL the four
    queries run concurrently on their own connections (the server has cores to
    spare); the figures are then read from up to four snapshots.
    """
    since = _utc(since, "since")
    until = _utc(until, "until")
    if until < since:
        raise ValueError("until is before since")
    as_of = min(until, _utc(now, "now") if now is not None else utcnow())
    received_read = _read(db, _received, since, until, network, team)
    turns_read = _read(db, _turn_sums, since, until, as_of, network, team)
    waiting_read = _read(db, _unanswered, as_of, network, team)
    if db.dialect == "postgresql":
        received, turns, waiting, percentiles = await asyncio.gather(
            received_read,
            turns_read,
            waiting_read,
            _read(db, _percentiles_in_sql, since, until, as_of, network, team),
        )
    else:  # one SQLite process: parallel readers only fight over the GIL
        received, turns, waiting = await received_read, await turns_read, await waiting_read
        percentiles = _percentiles_in_python(turns)
    total = _Sums()
    by_network: dict[str, _Sums] = {}
    by_team: dict[str | None, _Sums] = {}
    for part in (received, turns, waiting):
        for (net, team_name), sums in part.items():
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
    waiting = _waiting(until, network, team, db.dialect)
    statement = (
        select(
            waiting.c.conversation_id,
            waiting.c.network,
            waiting.c.team,
            waiting.c.started_at,
            waiting.c.channel,
            waiting.c.thread_ts,
            waiting.c.customer_name,
        )
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
