"""Mentions become names through the caller's lookup, cached for a while."""

from __future__ import annotations

import pytest

from bot.markup import UserNameCache, parse_slack_message, resolve_mentions


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Directory:
    """Stands in for `users.info`: counts lookups, fails for unknown people."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.names = {"U1": "Alice", "U2": "Bob"}

    async def __call__(self, user_id: str) -> str:
        self.calls.append(user_id)
        if user_id not in self.names:
            raise LookupError(user_id)
        return self.names[user_id]


async def test_names_are_cached_until_the_ttl_passes() -> None:
    directory, clock = Directory(), Clock()
    cache = UserNameCache(directory, ttl=60, clock=clock)
    assert [await cache("U1"), await cache("U1")] == ["Alice", "Alice"]
    assert directory.calls == ["U1"]
    directory.names["U1"] = "Alice M."
    clock.now += 61
    assert await cache("U1") == "Alice M."
    assert directory.calls == ["U1", "U1"]


async def test_the_cache_keeps_at_most_size_names() -> None:
    directory = Directory()
    cache = UserNameCache(directory, size=1, clock=Clock())
    await cache("U1")
    await cache("U2")
    await cache("U1")
    assert directory.calls == ["U1", "U2", "U1"]


async def test_a_failed_lookup_is_not_cached_and_propagates() -> None:
    directory = Directory()
    cache = UserNameCache(directory, clock=Clock())
    with pytest.raises(LookupError):
        await cache("U9")
    directory.names["U9"] = "Zoe"
    assert await cache("U9") == "Zoe"


async def test_each_mentioned_person_is_looked_up_once() -> None:
    directory = Directory()
    document = parse_slack_message({"text": "<@U1> and <@U2>, then <@U1> again"})
    resolved = await resolve_mentions(document, directory)
    assert resolved.text == "Alice and Bob, then Alice again"
    assert sorted(directory.calls) == ["U1", "U2"]
