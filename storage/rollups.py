"""Roll-ups of customer messages by UTC hour: `received` and `conversations` at a cost
that does not grow with the window's traffic.

Two tables (see `storage.models`), kept by SQL triggers as messages are inserted
and as a conversation's team changes, so every writer keeps them exact (the batch
ingest stays set-based: no statement is added to it):

- `stats_conversation_hour`: one row per conversation and hour with a message:
  its count, its network and current team, and `prev_hour`, the conversation's
  previous hour with a message. A conversation has a message in hours [H0, H1)
  exactly when one of its rows there has `prev_hour` before H0 (or none).
- `stats_hour`: insert-only deltas per (hour, network, team): `messages`, and
  `lasts`, the conversations whose latest message falls in that hour. Concurrent
  writers never update a shared row (no lock waits, no deadlocks between ingest
  processes); `fold()` (a scheduler job) sums each group into one row.

For a window [since, until) the whole hours inside it are read from the
roll-ups and the partial hours at its edges (under an hour each) from the raw
messages. The conversations of the whole hours [H0, H1) are either counted
directly from their rows, or as (conversations with a message at or after H0:
the `lasts` from H0 on) minus (those whose first row from H0 on is at or after
H1: rows after the window whose `prev_hour` is before H0), whichever reads fewer
rows. The raw tables stay the source of truth: `rebuild()` recomputes both
tables from them (`python -m bot rebuild-rollups`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    Table,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (registers the tables)
from storage.db import Database

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)

_conversation: Table = SQLModel.metadata.tables["conversation"]
_message: Table = SQLModel.metadata.tables["customer_message"]
_by_conversation: Table = SQLModel.metadata.tables["stats_conversation_hour"]
_by_hour: Table = SQLModel.metadata.tables["stats_hour"]

Key = tuple[str, str | None]  # (network, team)


def hour_of(at: datetime) -> int:
    """The UTC hour (epoch seconds // 3600) `at` falls in, exactly (microseconds too)."""
    return (at - EPOCH) // HOUR


def _hour_sql(column: str, dialect: str) -> str:
    if dialect == "sqlite":  # naive UTC text: strftime reads it as UTC
        return f"(CAST(strftime('%s', {column}) AS INTEGER) / 3600)"
    return f"CAST(floor(extract(epoch FROM {column}) / 3600) AS integer)"


# -- maintenance (triggers; created by migration 0018) ---------------------------------

_SQLITE_TRIGGERS = (
    """
CREATE TRIGGER stats_message_stored AFTER INSERT ON customer_message FOR EACH ROW BEGIN
    INSERT INTO stats_hour (hour, network, team, messages, lasts)
    SELECT {h}, NEW.network, c.team, 1, NOT EXISTS (
        SELECT 1 FROM stats_conversation_hour
        WHERE conversation_id = NEW.conversation_id AND hour >= {h})
    FROM conversation AS c WHERE c.id = NEW.conversation_id;
    INSERT INTO stats_hour (hour, network, team, messages, lasts)
    SELECT p.hour, NEW.network, p.team, 0, -1 FROM stats_conversation_hour AS p
    WHERE p.conversation_id = NEW.conversation_id AND p.hour < {h}
        AND NOT EXISTS (SELECT 1 FROM stats_conversation_hour
                        WHERE conversation_id = NEW.conversation_id AND hour >= {h})
    ORDER BY p.hour DESC LIMIT 1;
    UPDATE stats_conversation_hour SET prev_hour = {h}
    WHERE conversation_id = NEW.conversation_id
        AND hour = (SELECT min(hour) FROM stats_conversation_hour
                    WHERE conversation_id = NEW.conversation_id AND hour > {h})
        AND NOT EXISTS (SELECT 1 FROM stats_conversation_hour
                        WHERE conversation_id = NEW.conversation_id AND hour = {h});
    INSERT INTO stats_conversation_hour (conversation_id, hour, network, team, prev_hour, messages)
    SELECT NEW.conversation_id, {h}, NEW.network, c.team,
        (SELECT max(hour) FROM stats_conversation_hour
         WHERE conversation_id = NEW.conversation_id AND hour < {h}), 1
    FROM conversation AS c WHERE c.id = NEW.conversation_id
    ON CONFLICT (conversation_id, hour) DO UPDATE SET messages = messages + 1;
END
""",
    """
CREATE TRIGGER stats_team_changed AFTER UPDATE OF team ON conversation FOR EACH ROW
WHEN OLD.team IS NOT NEW.team BEGIN
    INSERT INTO stats_hour (hour, network, team, messages, lasts)
    SELECT hour, network, OLD.team, -messages,
        -(hour = (SELECT max(hour) FROM stats_conversation_hour WHERE conversation_id = NEW.id))
    FROM stats_conversation_hour WHERE conversation_id = NEW.id
    UNION ALL
    SELECT hour, network, NEW.team, messages,
        hour = (SELECT max(hour) FROM stats_conversation_hour WHERE conversation_id = NEW.id)
    FROM stats_conversation_hour WHERE conversation_id = NEW.id;
    UPDATE stats_conversation_hour SET team = NEW.team WHERE conversation_id = NEW.id;
END
""",
)

_POSTGRES_TRIGGERS = (
    """
CREATE FUNCTION stats_message_stored() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    h integer := {h};
    t varchar;
    p integer;
    n integer;
BEGIN
    SELECT team INTO t FROM conversation WHERE id = NEW.conversation_id;
    UPDATE stats_conversation_hour SET messages = messages + 1
    WHERE conversation_id = NEW.conversation_id AND hour = h;
    IF FOUND THEN
        INSERT INTO stats_hour (hour, network, team, messages, lasts)
        VALUES (h, NEW.network, t, 1, 0);
        RETURN NULL;
    END IF;
    SELECT max(hour) INTO p FROM stats_conversation_hour
    WHERE conversation_id = NEW.conversation_id AND hour < h;
    SELECT min(hour) INTO n FROM stats_conversation_hour
    WHERE conversation_id = NEW.conversation_id AND hour > h;
    INSERT INTO stats_conversation_hour (conversation_id, hour, network, team, prev_hour, messages)
    VALUES (NEW.conversation_id, h, NEW.network, t, p, 1);
    IF n IS NOT NULL THEN
        UPDATE stats_conversation_hour SET prev_hour = h
        WHERE conversation_id = NEW.conversation_id AND hour = n;
        INSERT INTO stats_hour (hour, network, team, messages, lasts)
        VALUES (h, NEW.network, t, 1, 0);
    ELSIF p IS NULL THEN
        INSERT INTO stats_hour (hour, network, team, messages, lasts)
        VALUES (h, NEW.network, t, 1, 1);
    ELSE
        INSERT INTO stats_hour (hour, network, team, messages, lasts)
        VALUES (h, NEW.network, t, 1, 1), (p, NEW.network, t, 0, -1);
    END IF;
    RETURN NULL;
END
$$
""",
    """
CREATE TRIGGER stats_message_stored AFTER INSERT ON customer_message
FOR EACH ROW EXECUTE FUNCTION stats_message_stored()
""",
    """
CREATE FUNCTION stats_team_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    last integer;
BEGIN
    SELECT max(hour) INTO last FROM stats_conversation_hour WHERE conversation_id = NEW.id;
    IF last IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO stats_hour (hour, network, team, messages, lasts)
    SELECT hour, network, OLD.team, -messages, CASE WHEN hour = last THEN -1 ELSE 0 END
    FROM stats_conversation_hour WHERE conversation_id = NEW.id
    UNION ALL
    SELECT hour, network, NEW.team, messages, CASE WHEN hour = last THEN 1 ELSE 0 END
    FROM stats_conversation_hour WHERE conversation_id = NEW.id;
    UPDATE stats_conversation_hour SET team = NEW.team WHERE conversation_id = NEW.id;
    RETURN NULL;
END
$$
""",
    """
CREATE TRIGGER stats_team_changed AFTER UPDATE OF team ON conversation FOR EACH ROW
WHEN (OLD.team IS DISTINCT FROM NEW.team) EXECUTE FUNCTION stats_team_changed()
""",
)


def trigger_statements(dialect: str) -> list[str]:
    """The DDL that keeps the roll-ups as rows are written (for migration 0018)."""
    if dialect == "sqlite":
        return [s.format(h=_hour_sql("NEW.sent_at", dialect)) for s in _SQLITE_TRIGGERS]
    return [s.format(h=_hour_sql("NEW.sent_at", dialect)) for s in _POSTGRES_TRIGGERS]


def drop_trigger_statements(dialect: str) -> list[str]:
    if dialect == "sqlite":
        return ["DROP TRIGGER stats_message_stored", "DROP TRIGGER stats_team_changed"]
    return [
        "DROP TRIGGER stats_message_stored ON customer_message",
        "DROP TRIGGER stats_team_changed ON conversation",
        "DROP FUNCTION stats_message_stored()",
        "DROP FUNCTION stats_team_changed()",
    ]


def rebuild_statements(dialect: str) -> list[str]:
    """Recompute both roll-ups from the raw rows, set-based (one transaction)."""
    hour = _hour_sql("sent_at", dialect)
    lock = (
        []
        if dialect == "sqlite"  # the one writer holds the database already
        else ["LOCK TABLE customer_message, conversation IN SHARE MODE"]
    )
    return [
        *lock,
        "DELETE FROM stats_hour",
        "DELETE FROM stats_conversation_hour",
        f"""
INSERT INTO stats_conversation_hour (conversation_id, hour, network, team, prev_hour, messages)
SELECT x.conversation_id, x.hour, c.network, c.team,
    lag(x.hour) OVER (PARTITION BY x.conversation_id ORDER BY x.hour), x.messages
FROM (SELECT conversation_id, {hour} AS hour, count(*) AS messages
      FROM customer_message GROUP BY conversation_id, {hour}) AS x
JOIN conversation AS c ON c.id = x.conversation_id
""",
        """
INSERT INTO stats_hour (hour, network, team, messages, lasts)
SELECT hour, network, team, sum(messages), sum(is_last)
FROM (SELECT hour, network, team, messages,
          CASE WHEN hour = max(hour) OVER (PARTITION BY conversation_id) THEN 1 ELSE 0 END
              AS is_last
      FROM stats_conversation_hour) AS s
GROUP BY hour, network, team
""",
    ]


async def rebuild(db: Database) -> None:
    """Recompute the roll-ups from the raw rows (`python -m bot rebuild-rollups`)."""
    async with db.session() as session:
        for statement in rebuild_statements(db.dialect):
            await session.execute(text(statement))


# Each (hour, network, team) group of deltas becomes one row (none when it sums to 0).
_FOLD_POSTGRES = """
WITH grouped AS (
    SELECT hour, network, team FROM stats_hour
    GROUP BY hour, network, team HAVING count(*) > 1 OR (sum(messages) = 0 AND sum(lasts) = 0)
), gone AS (
    DELETE FROM stats_hour AS s USING grouped AS g
    WHERE s.hour = g.hour AND s.network = g.network AND s.team IS NOT DISTINCT FROM g.team
    RETURNING s.hour, s.network, s.team, s.messages, s.lasts
)
INSERT INTO stats_hour (hour, network, team, messages, lasts)
SELECT hour, network, team, sum(messages), sum(lasts) FROM gone
GROUP BY hour, network, team HAVING sum(messages) <> 0 OR sum(lasts) <> 0
"""
_FOLD_SQLITE = (
    """
CREATE TEMP TABLE IF NOT EXISTS stats_hour_fold AS
SELECT hour, network, team, messages, lasts FROM stats_hour WHERE 0
""",
    "DELETE FROM temp.stats_hour_fold",
    """
INSERT INTO temp.stats_hour_fold
SELECT hour, network, team, sum(messages), sum(lasts) FROM stats_hour
GROUP BY hour, network, team HAVING count(*) > 1 OR (sum(messages) = 0 AND sum(lasts) = 0)
""",
    """
DELETE FROM stats_hour WHERE EXISTS (
    SELECT 1 FROM temp.stats_hour_fold AS f
    WHERE f.hour = stats_hour.hour AND f.network = stats_hour.network
        AND f.team IS stats_hour.team)
""",
    """
INSERT INTO stats_hour (hour, network, team, messages, lasts)
SELECT hour, network, team, messages, lasts FROM temp.stats_hour_fold
WHERE messages <> 0 OR lasts <> 0
""",
)


def fold_statements(dialect: str) -> list[str]:
    """Sum `stats_hour`'s deltas: one row per (hour, network, team). On PostgreSQL one
    statement (one snapshot: it deletes exactly the rows it sums, while writers go on)."""
    return list(_FOLD_SQLITE) if dialect == "sqlite" else [_FOLD_POSTGRES]


async def fold(db: Database) -> None:
    """The scheduler's job: keep `stats_hour` at about one row per group."""
    async with db.session() as session:
        for statement in fold_statements(db.dialect):
            await session.execute(text(statement))


# -- reading -------------------------------------------------------------------------


def _team_is(column: ColumnElement[Any], team: str | None, unassigned: str) -> ColumnElement[bool]:
    return column.is_(None) if team == unassigned else column == team


async def received(
    session: AsyncSession,
    since: datetime,
    until: datetime,
    network: str | None,
    team: str | None,
    unassigned: str,
    among: Select[Any] | None = None,
) -> dict[Key, tuple[int, int]] | None:
    """(received, conversations) per (network, current team) for [since, until), or None
    when the window holds no whole hour (then the raw query is as cheap). `among`: the
    ids of the only conversations to count (a tag's), read from their hourly rows."""
    first, end = -((EPOCH - since) // HOUR), hour_of(until)  # whole hours [first, end)
    if first >= end:
        return None
    c = _by_conversation.c
    starts = or_(c.prev_hour.is_(None), c.prev_hour < first)  # a row that starts activity
    if among is not None:
        parts = [
            select(
                c.network,
                c.team,
                func.sum(c.messages),
                func.sum(cast(case((starts, 1), else_=0), Integer)),
            )
            .where(c.hour >= first, c.hour < end, c.conversation_id.in_(among))
            .group_by(c.network, c.team)
        ]
        signs = [1]
    else:
        hourly = select(
            _by_hour.c.network,
            _by_hour.c.team,
            func.sum(case((_by_hour.c.hour < end, _by_hour.c.messages), else_=0)),
            func.sum(_by_hour.c.lasts),
        ).where(_by_hour.c.hour >= first)
        latest = (await session.execute(select(func.max(_by_hour.c.hour)))).scalar_one_or_none()
        # Conversations of [first, end): their rows there, or `lasts` minus the rows
        # after `end` that start a conversation's activity from `first` on; the
        # smaller read.
        after = latest is not None and latest - end < end - first
        rows = select(c.network, c.team, literal(0), func.count()).where(
            starts, c.hour >= end if after else and_(c.hour >= first, c.hour < end)
        )
        parts = [
            hourly.group_by(_by_hour.c.network, _by_hour.c.team),
            rows.group_by(c.network, c.team),
        ]
        # how each part's last column counts: `lasts`, then the rows after `end` to
        # take away from them; or the rows inside the window alone
        signs = [1, -1] if after else [0, 1]
    for index, part in enumerate(parts):
        if network is not None:
            part = part.where(part.selected_columns[0] == network)
        if team is not None:
            part = part.where(_team_is(part.selected_columns[1], team, unassigned))
        parts[index] = part
    totals: dict[Key, list[int]] = {}
    for part, sign in zip(parts, signs, strict=True):
        for net, team_name, messages, count in await session.execute(part):
            sums = totals.setdefault((net, team_name), [0, 0])
            sums[0] += int(messages or 0)
            sums[1] += sign * int(count or 0)
    edges = _edges(since, until, first, end, network, team, unassigned, among)
    for net, team_name, count, outside in await session.execute(edges) if edges is not None else []:
        sums = totals.setdefault((net, team_name), [0, 0])
        sums[0] += int(count)
        sums[1] += int(outside)
    return {key: (n, k) for key, (n, k) in totals.items() if n}


def _edges(
    since: datetime,
    until: datetime,
    first: int,
    end: int,
    network: str | None,
    team: str | None,
    unassigned: str,
    among: Select[Any] | None,
) -> Select[Any] | None:
    """The messages of the partial hours at the window's edges, per (network, team):
    their count, and their conversations that have no message in the whole hours."""
    ranges = [(since, EPOCH + first * HOUR), (EPOCH + end * HOUR, until)]
    parts = []
    for low, high in ranges:
        if low >= high:
            continue
        part = select(_message.c.conversation_id).where(
            _message.c.sent_at >= low, _message.c.sent_at < high
        )
        if network is not None:
            part = part.where(_message.c.network == network)
        if among is not None:
            part = part.where(_message.c.conversation_id.in_(among))
        parts.append(part)
    if not parts:
        return None
    edge = union_all(*parts).subquery("edge") if len(parts) > 1 else parts[0].subquery("edge")
    per_conversation = (
        select(edge.c.conversation_id, func.count().label("n"))
        .group_by(edge.c.conversation_id)
        .subquery("per_conversation")
    )
    inside = exists().where(
        _by_conversation.c.conversation_id == per_conversation.c.conversation_id,
        _by_conversation.c.hour >= first,
        _by_conversation.c.hour < end,
    )
    statement = (
        select(
            _conversation.c.network,
            _conversation.c.team,
            func.sum(per_conversation.c.n),
            func.sum(cast(case((inside, 0), else_=1), Integer)),
        )
        .join_from(
            per_conversation,
            _conversation,
            _conversation.c.id == per_conversation.c.conversation_id,
        )
        .group_by(_conversation.c.network, _conversation.c.team)
    )
    if team is not None:
        statement = statement.where(_team_is(_conversation.c.team, team, unassigned))
    return statement
