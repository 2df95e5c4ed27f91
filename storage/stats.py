"""Response-time figures of the contract's "Numbers" section, aggregated in SQL.

Every figure reads the `turn` table (kept up to date by `storage.repo`, which
stores each turn's `response_seconds` when it is answered), the hourly roll-ups
of `customer_message` (`storage.rollups`: `received` and `conversations`) and the
`moment` table (`moments`); nothing is recomputed from raw replies. The same
queries run
on SQLite and PostgreSQL. The median and p90: the one scan of the window's
answered turns also returns each (network, team) group's response times (an
array on PostgreSQL, a JSON array on SQLite); each is sorted once in Python and
`percentile_of_runs()` below selects and interpolates exactly like PostgreSQL's
`percentile_cont`. That is cheaper than PostgreSQL's own `percentile_cont` over
GROUPING SETS, which sorts every turn once per scope.

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
from bisect import bisect_left, bisect_right
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    Table,
    and_,
    case,
    func,
    literal_column,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from storage import rollups
from storage.db import Database
from storage.models import utcnow  # importing the models registers their tables

UNASSIGNED = "unassigned"

_conversation: Table = SQLModel.metadata.tables["conversation"]
_message: Table = SQLModel.metadata.tables["customer_message"]
_turn: Table = SQLModel.metadata.tables["turn"]
_moment: Table = SQLModel.metadata.tables["moment"]
_rating: Table = SQLModel.metadata.tables["csat_rating"]

# (network, team) with team None for "unassigned"
_Key = tuple[str, str | None]
# Percentiles per scope: ("all", "") | ("network", name) | ("team", name or None)
_Scope = tuple[str, str | None]
_Percentiles = dict[_Scope, tuple[float | None, float | None]]


def percentile_cont(values: Sequence[float], fraction: float) -> float | None:
    """Interpolate like PostgreSQL's `percentile_cont` over already sorted values."""
    return _interpolate(len(values), fraction, values.__getitem__)


def percentile_of_runs(runs: Sequence[Sequence[float]], fraction: float) -> float | None:
    """`percentile_cont` of the union of sorted runs, without merging them."""
    return _interpolate(sum(map(len, runs)), fraction, lambda k: _kth(runs, k))


def _interpolate(count: int, fraction: float, at: Callable[[int], float]) -> float | None:
    """PostgreSQL's interpolation between the values around `fraction * (count - 1)`;
    `at(k)` is the k-th smallest value (from 0)."""
    if not count:
        return None
    position = fraction * (count - 1)
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return float(at(low))
    below = at(low)
    return below + (at(high) - below) * (position - low)


def _kth(runs: Sequence[Sequence[float]], k: int) -> float:
    """The k-th smallest value (from 0) of the union of sorted runs.

    Each step takes the middle value of the widest range still in play and
    counts, by bisection in every run, the values below and equal to it: the
    answer is that value, or the ranges shrink to one side of it. The widest
    range halves every step, so this costs O(runs² · log n) bisections.
    """
    low = [0] * len(runs)
    high = [len(run) for run in runs]
    while True:
        widest = max(range(len(runs)), key=lambda i: high[i] - low[i])
        pivot = runs[widest][(low[widest] + high[widest]) // 2]
        below = [bisect_left(run, pivot, low[i], high[i]) for i, run in enumerate(runs)]
        upto = [bisect_right(run, pivot, low[i], high[i]) for i, run in enumerate(runs)]
        smaller = sum(b - lo for b, lo in zip(below, low, strict=True))
        not_larger = sum(u - lo for u, lo in zip(upto, low, strict=True))
        if k < smaller:
            high = below
        elif k < not_larger:
            return pivot
        else:
            k -= not_larger
            low = upto


@dataclass
class _Sums:
    """Additive figures of one (network, team) group; rolled up in Python."""

    received: int = 0
    conversations: int = 0
    turns: int = 0
    answered: int = 0
    response_sum: float = 0.0
    business_sum: float = 0.0
    first_answered: int = 0
    first_sum: float = 0.0
    unanswered: int = 0
    oldest_started: datetime | None = None
    moments: int = 0
    csat_count: int = 0
    csat_sum: int = 0

    def add(self, other: _Sums) -> None:
        self.received += other.received
        self.conversations += other.conversations
        self.turns += other.turns
        self.answered += other.answered
        self.response_sum += other.response_sum
        self.business_sum += other.business_sum
        self.first_answered += other.first_answered
        self.first_sum += other.first_sum
        self.unanswered += other.unanswered
        self.moments += other.moments
        self.csat_count += other.csat_count
        self.csat_sum += other.csat_sum
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
            "avg_business_response_seconds": _seconds(
                self.business_sum / self.answered if self.answered else None
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
            "moments": self.moments,
            "csat_count": self.csat_count,
            "csat_avg": round(self.csat_sum / self.csat_count, 3) if self.csat_count else None,
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


def tagged(session: AsyncSession, tag: str) -> Select[Any]:
    """The ids of the conversations routing rules gave `tag` (its JSON list of tags)."""
    if session.get_bind().dialect.name == "sqlite":
        tags = func.json_each(_conversation.c.tags).table_valued("value")
    else:
        tags = func.json_array_elements_text(_conversation.c.tags).table_valued("value")
    has_tag = select(literal_column("1")).select_from(tags).where(tags.c.value == tag).exists()
    return select(_conversation.c.id).where(has_tag)


def _scope(
    session: AsyncSession,
    *,
    network: tuple[ColumnElement[Any], str | None] | None = None,
    team: tuple[ColumnElement[Any], str | None],
    tag: tuple[ColumnElement[Any], str | None],
) -> list[ColumnElement[bool]]:
    """The conditions of a request's filters, each given as (the column it tests, the
    value asked; None: not asked): the network (None where the window already tests
    it), the team (`unassigned`: none), and the conversations routing rules gave a tag."""
    conditions: list[ColumnElement[bool]] = []
    if network is not None and network[1] is not None:
        conditions.append(network[0] == network[1])
    if team[1] is not None:
        conditions.append(_team_is(team[0], team[1]))
    if tag[1] is not None:
        conditions.append(tag[0].in_(tagged(session, tag[1])))
    return conditions


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
    tag: str | None = None,
) -> dict[_Key, _Sums]:
    """`received` and `conversations`: from the hourly roll-ups (`storage.rollups`), or
    from the raw messages when the window holds no whole hour."""
    among = tagged(session, tag) if tag is not None else None
    rolled = await rollups.received(session, since, until, network, team, UNASSIGNED, among)
    if rolled is None:
        return await received_raw(session, since, until, network, team, tag)
    return {
        key: _Sums(received=count, conversations=conversations)
        for key, (count, conversations) in rolled.items()
    }


async def received_raw(
    session: AsyncSession,
    since: datetime,
    until: datetime,
    network: str | None,
    team: str | None,
    tag: str | None = None,
) -> dict[_Key, _Sums]:
    """The same figures counted from the raw messages (what the roll-ups must equal)."""
    per_conversation = select(_message.c.conversation_id, func.count().label("n")).where(
        _message.c.sent_at >= since, _message.c.sent_at < until
    )
    if network is not None:
        per_conversation = per_conversation.where(_message.c.network == network)
    if tag is not None:
        per_conversation = per_conversation.where(
            _message.c.conversation_id.in_(tagged(session, tag))
        )
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


async def _answered_turns(
    session: AsyncSession,
    since: datetime,
    until: datetime,
    as_of: datetime,
    network: str | None,
    team: str | None,
    tag: str | None = None,
) -> tuple[dict[_Key, _Sums], _Percentiles]:
    """The window's answered turns by (network, `turn.team`), and the percentiles.

    One pass over the turns: grouping by plain columns keeps PostgreSQL's group
    estimate small (it hashes 15 groups instead of sorting every row) and the
    answered response times come back as one array per group, far cheaper than
    one row each. The percentiles are interpolated here, while the other
    queries of `compute()` are still running.
    """
    answered = _turn.c.answered_at <= as_of
    first = and_(answered, _turn.c.is_first)
    seconds = _turn.c.response_seconds
    sqlite = session.get_bind().dialect.name == "sqlite"
    durations = (func.json_group_array if sqlite else func.array_agg)(seconds).filter(answered)
    statement = (
        select(
            _turn.c.network,
            _turn.c.team,
            func.count(),
            func.count(case((answered, 1))),
            func.sum(case((answered, seconds)), type_=Float),
            func.sum(case((answered, _turn.c.business_response_seconds)), type_=Float),
            func.count(case((first, 1))),
            func.sum(case((first, seconds)), type_=Float),
            durations,
        )
        .where(
            *_in_window(since, until, network),
            _turn.c.answered_at.is_not(None),
            *_scope(session, team=(_turn.c.team, team), tag=(_turn.c.conversation_id, tag)),
        )
        .group_by(_turn.c.network, _turn.c.team)
    )
    result: dict[_Key, _Sums] = {}
    values: dict[_Key, list[float]] = {}
    for (
        net,
        team_name,
        turns,
        n_answered,
        total,
        business_total,
        n_first,
        first_total,
        array,
    ) in await session.execute(statement):
        result[(net, team_name)] = _Sums(
            turns=turns,
            answered=n_answered,
            response_sum=total or 0.0,
            business_sum=business_total or 0.0,
            first_answered=n_first,
            first_sum=first_total or 0.0,
        )
        if array:
            values[(net, team_name)] = json.loads(array) if sqlite else list(array)
    return result, _percentiles(values)


async def _waiting_turns(
    session: AsyncSession,
    since: datetime,
    until: datetime,
    network: str | None,
    team: str | None,
    tag: str | None = None,
) -> dict[_Key, _Sums]:
    """The window's turns with no answer at all, by network and the conversation's team."""
    statement = (
        select(_turn.c.network, _conversation.c.team, func.count())
        .join(_conversation, _conversation.c.id == _turn.c.conversation_id)
        .where(
            *_in_window(since, until, network),
            _turn.c.answered_at.is_(None),
            *_scope(session, team=(_conversation.c.team, team), tag=(_turn.c.conversation_id, tag)),
        )
        .group_by(_turn.c.network, _conversation.c.team)
    )
    return {
        (net, team_name): _Sums(turns=turns)
        for net, team_name, turns in await session.execute(statement)
    }


async def _ratings(
    session: AsyncSession,
    since: datetime,
    until: datetime,
    network: str | None,
    team: str | None,
    tag: str | None = None,
) -> dict[_Key, _Sums]:
    """Customer ratings given in the window, by network and the team that was asked."""
    statement = (
        select(_rating.c.network, _rating.c.team, func.count(), func.sum(_rating.c.score))
        .where(
            _rating.c.rated_at >= since,
            _rating.c.rated_at < until,
            *_scope(
                session,
                network=(_rating.c.network, network),
                team=(_rating.c.team, team),
                tag=(_rating.c.conversation_id, tag),
            ),
        )
        .group_by(_rating.c.network, _rating.c.team)
    )
    return {
        (net, team_name): _Sums(csat_count=count, csat_sum=int(total or 0))
        for net, team_name, count, total in await session.execute(statement)
    }


def _percentiles(durations: dict[_Key, list[float]]) -> _Percentiles:
    """Median and p90 of every scope from each group's response times.

    Each group is sorted once; a scope's figures are then selected from its
    groups' sorted runs (`percentile_of_runs`) instead of sorting a merged copy.
    """
    scopes: dict[_Scope, list[list[float]]] = {}
    for (net, team_name), values in durations.items():
        values.sort()
        for scope in (("all", ""), ("network", net), ("team", team_name)):
            scopes.setdefault(scope, []).append(values)
    return {
        scope: (percentile_of_runs(runs, 0.5), percentile_of_runs(runs, 0.9))
        for scope, runs in scopes.items()
    }


def _waiting(
    as_of: datetime,
    network: str | None,
    team: str | None,
    session: AsyncSession,
    *,
    answered_later: bool,
    tag: str | None = None,
) -> Select[Any]:
    """Conversations not resolved by `as_of` whose latest turn then had no answer yet:
    those still unanswered, or (`answered_later`) those answered only after `as_of`.

    The two kinds are two index ranges of ix_turn_open (answered_at, started_at,
    and the columns read here), queried apart rather than through an OR; the
    first is read in `started_at` order. A turn loses its answer when a delivery
    is reported failed afterwards, so "latest" is checked rather than assumed.
    """
    started: ColumnElement[bool] = _turn.c.started_at < as_of
    if session.get_bind().dialect.name == "sqlite":
        # Nearly always true: without the hint SQLite ranges over ix_turn_window
        # (every turn) instead of ix_turn_open's few unanswered ones.
        started = func.likely(started)
    if answered_later:
        still_open = _turn.c.answered_at > as_of
        team_column = _turn.c.team  # the team that answered it
    else:
        still_open = _turn.c.answered_at.is_(None)
        team_column = _conversation.c.team
    later = _turn.alias("later")
    statement = (
        select(
            _turn.c.conversation_id,
            _turn.c.network,
            team_column.label("team"),
            _turn.c.started_at,
            _conversation.c.channel,
            _conversation.c.thread_ts,
            _conversation.c.customer_name,
        )
        .join(_conversation, _conversation.c.id == _turn.c.conversation_id)
        .where(
            still_open,
            started,
            or_(_conversation.c.resolved_at.is_(None), _conversation.c.resolved_at > as_of),
            # SELECT 1, not *: SQLite then answers from ix_turn_conv alone.
            ~select(literal_column("1"))
            .where(
                later.c.conversation_id == _turn.c.conversation_id,
                later.c.started_at > _turn.c.started_at,
                later.c.started_at < as_of,
            )
            .exists(),
        )
    )
    return statement.where(
        *_scope(
            session,
            network=(_turn.c.network, network),
            team=(team_column, team),
            tag=(_turn.c.conversation_id, tag),
        )
    )


async def _unanswered(
    session: AsyncSession,
    as_of: datetime,
    network: str | None,
    team: str | None,
    tag: str | None = None,
) -> dict[_Key, _Sums]:
    waiting = union_all(
        _waiting(as_of, network, team, session, answered_later=False, tag=tag),
        _waiting(as_of, network, team, session, answered_later=True, tag=tag),
    ).subquery("waiting")
    statement = select(
        waiting.c.network, waiting.c.team, func.count(), func.min(waiting.c.started_at)
    ).group_by(waiting.c.network, waiting.c.team)
    return {
        (net, team_name): _Sums(unanswered=count, oldest_started=oldest)
        for net, team_name, count, oldest in await session.execute(statement)
    }


async def _moments(
    session: AsyncSession,
    since: datetime,
    until: datetime,
    network: str | None,
    team: str | None,
    tag: str | None = None,
) -> dict[_Key, _Sums]:
    """Moments recorded in the window, by network and the conversation's team."""
    statement = (
        select(_moment.c.network, _conversation.c.team, func.count())
        .join(_conversation, _conversation.c.id == _moment.c.conversation_id)
        .where(
            _moment.c.at >= since,
            _moment.c.at < until,
            *_scope(
                session,
                network=(_moment.c.network, network),
                team=(_conversation.c.team, team),
                tag=(_moment.c.conversation_id, tag),
            ),
        )
        .group_by(_moment.c.network, _conversation.c.team)
    )
    return {
        (net, team_name): _Sums(moments=count)
        for net, team_name, count in await session.execute(statement)
    }


_T = TypeVar("_T")

# PostgreSQL, per read: JIT compiles for longer than these queries run; the
# group-by of the window's messages hashes in memory; and with every page
# cached, a random page costs about what a sequential one does, so the planner
# probes the few open turns' conversations by key instead of hashing all of them.
_POSTGRES_SETTINGS = text(
    "SELECT set_config('jit', 'off', true), set_config('work_mem', '32MB', true),"
    " set_config('random_page_cost', '1.1', true),"
    " set_config('max_parallel_workers_per_gather', '0', true)"
)


async def _read(db: Database, query: Callable[..., Awaitable[_T]], *args: object) -> _T:
    """Run one query in a read session of its own: concurrent queries run on their
    own connections (SQLite readers in WAL mode too, without the write lock)."""
    async with db.read() as session:
        if db.dialect == "postgresql":
            await session.execute(_POSTGRES_SETTINGS)
        return await query(session, *args)


async def compute(
    db: Database,
    since: datetime,
    until: datetime,
    *,
    network: str | None = None,
    team: str | None = None,
    now: datetime | None = None,
    tag: str | None = None,
) -> dict[str, Any]:
    """The contract's `/api/stats` JSON for [since, until); `tag`: only the conversations
    routing rules gave that tag.

    Unanswered figures are as of `until`, or as of `now` when the window ends
    in the future (`now` defaults to the current time). The five queries run
    concurrently, each on its own connection, so the figures are read from up
    to five snapshots. Ratings count by when they were given.
    """
    since = _utc(since, "since")
    until = _utc(until, "until")
    if until < since:
        raise ValueError("until is before since")
    as_of = min(until, _utc(now, "now") if now is not None else utcnow())
    (
        received,
        (answered, percentiles),
        waiting_turns,
        waiting,
        moments,
        ratings,
    ) = await asyncio.gather(
        _read(db, _received, since, until, network, team, tag),
        _read(db, _answered_turns, since, until, as_of, network, team, tag),
        _read(db, _waiting_turns, since, until, network, team, tag),
        _read(db, _unanswered, as_of, network, team, tag),
        _read(db, _moments, since, until, network, team, tag),
        _read(db, _ratings, since, until, network, team, tag),
    )
    total = _Sums()
    by_network: dict[str, _Sums] = {}
    by_team: dict[str | None, _Sums] = {}
    for part in (received, answered, waiting_turns, waiting, moments, ratings):
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
    tag: str | None = None,
) -> list[dict[str, Any]]:
    """The conversations waiting longest for an answer as of `until`, oldest first."""
    until = _utc(until, "until")
    rows = await _read(db, _oldest, until, limit, network, team, tag)
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


async def _oldest(
    session: AsyncSession,
    until: datetime,
    limit: int,
    network: str | None,
    team: str | None,
    tag: str | None = None,
) -> list[tuple[Any, ...]]:
    """The `limit` oldest of each kind of waiting conversation, then of both.

    Still unanswered ones: walked in `started_at` order, stopping at `limit`.
    Answered after `until`: few, and started just before it, so they are found
    by their answer time first (a materialized CTE) rather than walked from the
    oldest turn.
    """
    unanswered = (
        _waiting(until, network, team, session, answered_later=False, tag=tag)
        .order_by(_turn.c.started_at, _turn.c.conversation_id)
        .limit(limit)
    )
    late = (
        _waiting(until, network, team, session, answered_later=True, tag=tag)
        .cte("late")
        .prefix_with("MATERIALIZED")
    )
    answered_later = select(late).order_by(late.c.started_at, late.c.conversation_id).limit(limit)
    rows = [tuple(row) for row in await session.execute(unanswered)]
    rows += [tuple(row) for row in await session.execute(answered_later)]
    rows.sort(key=lambda row: (row[3], row[0]))  # started_at, conversation_id
    return rows[:limit]
