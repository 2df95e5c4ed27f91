"""User mentions become the person's name, looked up through the caller's function."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import replace

from bot.markup.document import Block, Document

ResolveUser = Callable[[str], Awaitable[str]]


async def resolve_mentions(document: Document, resolve: ResolveUser) -> Document:
    """The document with each mentioned user's name in place of the placeholder.

    Each distinct user is looked up once, all at the same time; a lookup's error
    propagates (the caller decides whether a reply may go without the name).
    """
    ids = sorted({s.user for b in document.blocks for s in b.spans if s.user is not None})
    if not ids:
        return document
    names = dict(zip(ids, await asyncio.gather(*(resolve(i) for i in ids)), strict=True))

    def named(block: Block) -> Block:
        spans = tuple(
            replace(s, text=names[s.user], user=None) if s.user is not None else s
            for s in block.spans
        )
        return replace(block, spans=spans)

    return Document(tuple(named(block) for block in document.blocks))


class UserNameCache:
    """Display names by user id, kept `ttl` seconds, at most `size` of them.

    `lookup` is the real query (e.g. Slack's `users.info` through our client); an
    instance is itself a `ResolveUser`. Failed lookups are not cached.
    """

    def __init__(
        self,
        lookup: ResolveUser,
        ttl: float = 3600.0,
        size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._ttl = ttl
        self._size = size
        self._clock = clock
        self._names: OrderedDict[str, tuple[float, str]] = OrderedDict()

    async def __call__(self, user_id: str) -> str:
        now = self._clock()
        cached = self._names.get(user_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        name = await self._lookup(user_id)
        self._names[user_id] = (self._clock() + self._ttl, name)
        self._names.move_to_end(user_id)
        while len(self._names) > self._size:
            self._names.popitem(last=False)
        return name
