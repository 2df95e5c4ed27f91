"""Brand mentions found by listening, their Slack posts and digests, and poll cursors.

A mention is one row, UNIQUE on its normalized source key (`x:<post id>`, `fb:<id>`,
`ig:<id>`, `url:<address>`), inserted with ON CONFLICT DO NOTHING: the same post
reported by two sources or two processes is stored once. It is shown in Slack once:
alone (`state` pending -> posted) or in a digest's chunk (`digest_id`, `chunk`); the
Slack ts is recorded only after Slack accepted the post, and `attempt_at` marks a post
started without a known outcome, so a retry looks for it before posting again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlmodel import col

from storage.db import Database, insert_ignore
from storage.models import ListenCursor, ListenDigest, ListenMention, MentionState


@dataclass(frozen=True)
class NewMention:
    source_key: str
    source: str
    external_id: str
    url: str | None
    author_id: str
    author_name: str
    author_handle: str | None
    text: str
    term: str
    variant: str
    found: str
    edits: int
    sent_at: datetime
    opening: dict[str, Any] = field(default_factory=dict)


class Mentions:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def store(self, mentions: list[NewMention], now: datetime) -> int:
        """Insert the new ones (a known source key is ignored); how many were new."""
        new = 0
        async with self.db.session() as session:
            for mention in mentions:
                row_id = await insert_ignore(
                    session,
                    ListenMention,
                    ("source_key",),
                    **vars(mention),
                    found_at=now,
                    state=MentionState.PENDING,
                )
                new += row_id is not None
        return new

    async def count_since(self, since: datetime) -> int:
        async with self.db.read() as session:
            found = await session.execute(
                select(func.count()).where(col(ListenMention.found_at) >= since)
            )
            return int(found.scalar_one())

    async def waiting(self, limit: int) -> list[ListenMention]:
        """Mentions to post one by one (pending, in no digest), oldest first."""
        async with self.db.read() as session:
            rows = await session.execute(
                select(ListenMention)
                .where(
                    col(ListenMention.state) == MentionState.PENDING,
                    col(ListenMention.digest_id).is_(None),
                )
                .order_by(col(ListenMention.id))
                .limit(limit)
            )
            return list(rows.scalars())

    async def get(self, mention_id: int) -> ListenMention | None:
        async with self.db.read() as session:
            return await session.get(ListenMention, mention_id)

    async def begin_post(self, mention_id: int, now: datetime) -> None:
        await self._update(ListenMention.id == mention_id, attempt_at=now)

    async def mark_posted(self, mention_id: int, channel: str, ts: str) -> None:
        await self._update(
            col(ListenMention.id) == mention_id,
            col(ListenMention.state) == MentionState.PENDING,
            state=MentionState.POSTED,
            slack_channel=channel,
            slack_ts=ts,
            attempt_at=None,
        )

    async def act(
        self,
        mention_id: int,
        state: MentionState,
        user: str,
        now: datetime,
        conversation_id: int | None = None,
    ) -> bool:
        """Opened or dismissed, once: False when it was acted on already."""
        async with self.db.session() as session:
            result = await session.execute(
                update(ListenMention)
                .where(
                    col(ListenMention.id) == mention_id,
                    col(ListenMention.state).in_([MentionState.PENDING, MentionState.POSTED]),
                )
                .values(state=state, acted_by=user, acted_at=now, conversation_id=conversation_id)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def shown_with(self, channel: str, ts: str) -> list[ListenMention]:
        """Every mention one Slack message shows (one, or a digest chunk), in order."""
        async with self.db.read() as session:
            rows = await session.execute(
                select(ListenMention)
                .where(
                    col(ListenMention.slack_channel) == channel, col(ListenMention.slack_ts) == ts
                )
                .order_by(col(ListenMention.id))
            )
            return list(rows.scalars())

    async def fail(self, mention_id: int) -> None:
        """Slack refused its post for good: never tried again."""
        await self._update(
            col(ListenMention.id) == mention_id, state=MentionState.FAILED, attempt_at=None
        )

    # -- digests -----------------------------------------------------------------
    async def digest(self, digest_id: int) -> ListenDigest | None:
        async with self.db.read() as session:
            return await session.get(ListenDigest, digest_id)

    async def open_digest(
        self, window_start: datetime, channel: str, chunk_size: int, now: datetime
    ) -> int | None:
        """Gather every waiting mention into the window's digest (once: UNIQUE window);
        None when nothing waits or the window has its digest already."""
        async with self.db.session() as session:
            waiting = [
                row[0]
                for row in await session.execute(
                    select(col(ListenMention.id))
                    .where(
                        col(ListenMention.state) == MentionState.PENDING,
                        col(ListenMention.digest_id).is_(None),
                    )
                    .order_by(col(ListenMention.id))
                )
            ]
            if not waiting:
                return None
            digest_id: int | None = await insert_ignore(
                session,
                ListenDigest,
                ("window_start",),
                window_start=window_start,
                channel=channel,
                count=len(waiting),
                chunks=(len(waiting) + chunk_size - 1) // chunk_size,
                posted_chunks=0,
                created_at=now,
            )
            if digest_id is None:
                return None
            for start in range(0, len(waiting), chunk_size):
                ids = waiting[start : start + chunk_size]
                await session.execute(
                    update(ListenMention)
                    .where(col(ListenMention.id).in_(ids), col(ListenMention.digest_id).is_(None))
                    .values(digest_id=digest_id, chunk=start // chunk_size)
                )
        return digest_id

    async def unfinished_digests(self) -> list[ListenDigest]:
        async with self.db.read() as session:
            rows = await session.execute(
                select(ListenDigest)
                .where(col(ListenDigest.posted_chunks) < col(ListenDigest.chunks))
                .order_by(col(ListenDigest.id))
            )
            return list(rows.scalars())

    async def chunk(self, digest_id: int, chunk: int) -> list[ListenMention]:
        async with self.db.read() as session:
            rows = await session.execute(
                select(ListenMention)
                .where(col(ListenMention.digest_id) == digest_id, col(ListenMention.chunk) == chunk)
                .order_by(col(ListenMention.id))
            )
            return list(rows.scalars())

    async def digest_summary(self, digest_id: int) -> list[tuple[str, str, int]]:
        """(term, source, count) of a digest's mentions."""
        async with self.db.read() as session:
            rows = await session.execute(
                select(col(ListenMention.term), col(ListenMention.source), func.count())
                .where(col(ListenMention.digest_id) == digest_id)
                .group_by(col(ListenMention.term), col(ListenMention.source))
            )
            return [(str(term), str(source), int(count)) for term, source, count in rows]

    async def begin_chunk(self, digest_id: int, now: datetime) -> None:
        async with self.db.session() as session:
            await session.execute(
                update(ListenDigest).where(col(ListenDigest.id) == digest_id).values(attempt_at=now)
            )

    async def mark_chunk_posted(self, digest_id: int, chunk: int, channel: str, ts: str) -> None:
        """The chunk is in Slack: its mentions are posted, the digest moves on."""
        async with self.db.session() as session:
            await session.execute(
                update(ListenMention)
                .where(
                    col(ListenMention.digest_id) == digest_id,
                    col(ListenMention.chunk) == chunk,
                    col(ListenMention.state) == MentionState.PENDING,
                )
                .values(state=MentionState.POSTED)
            )
            await session.execute(
                update(ListenMention)
                .where(col(ListenMention.digest_id) == digest_id, col(ListenMention.chunk) == chunk)
                .values(slack_channel=channel, slack_ts=ts)
            )
            values: dict[str, Any] = {"posted_chunks": chunk + 1, "attempt_at": None}
            if chunk == 0:
                values["root_ts"] = ts
            await session.execute(
                update(ListenDigest)
                .where(col(ListenDigest.id) == digest_id, col(ListenDigest.posted_chunks) == chunk)
                .values(**values)
            )

    async def skip_chunk(self, digest_id: int, chunk: int) -> None:
        """Slack refused the chunk for good: its mentions fail, the digest moves on."""
        async with self.db.session() as session:
            await session.execute(
                update(ListenMention)
                .where(col(ListenMention.digest_id) == digest_id, col(ListenMention.chunk) == chunk)
                .values(state=MentionState.FAILED)
            )
            await session.execute(
                update(ListenDigest)
                .where(col(ListenDigest.id) == digest_id, col(ListenDigest.posted_chunks) == chunk)
                .values(posted_chunks=chunk + 1, attempt_at=None)
            )

    # -- cursors -------------------------------------------------------------------
    async def cursor(self, name: str) -> str | None:
        async with self.db.read() as session:
            row = await session.get(ListenCursor, name)
            return row.value if row else None

    async def set_cursor(self, name: str, value: str, now: datetime) -> None:
        async with self.db.session() as session:
            result = await session.execute(
                update(ListenCursor)
                .where(col(ListenCursor.name) == name)
                .values(value=value, updated_at=now)
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                await insert_ignore(
                    session, ListenCursor, ("name",), name=name, value=value, updated_at=now
                )

    async def _update(self, *where: Any, **values: Any) -> None:
        async with self.db.session() as session:
            await session.execute(update(ListenMention).where(*where).values(**values))
