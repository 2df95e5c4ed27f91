"""Customers' names from the Graph profile APIs, cached in SQL (SQLite and PostgreSQL).

The service runs against the fake Graph server through the real Meta adapter; the
clock is moved by hand to cross the one-day (and, after a failure, one-hour) limits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.networks.meta import MetaNetwork
from bot.services.profiles import Profiles
from storage.db import Database
from storage.models import Conversation
from storage.repo import NewCustomerMessage, Repository
from tests.fakes import FakeGraph
from tests.pg import fresh_postgres

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PAGE, IG_ACCOUNT = "1691462197845448", "17841400000000001"
PSID, IGSID = "2400000000000001", "8800000000000001"
TOKEN = "page-token"


@dataclass
class World:
    repo: Repository
    graph: FakeGraph
    profiles: Profiles
    now: list[datetime]

    def later(self, delta: timedelta) -> None:
        self.now[0] += delta

    async def customer_writes(self, channel: str, customer: str, mid: str) -> Conversation:
        """A Messenger / Instagram message as the Meta adapter stores it: named by its id."""
        account, prefix = (PAGE, "page") if channel == "messenger" else (IG_ACCOUNT, "ig")
        context: dict[str, Any] = {"channel": channel, "recipient_id": customer}
        if channel == "facebook_comment":
            prefix, context = "comment", {"channel": channel, "comment_id": mid}
        [stored] = await self.repo.store_customer_messages(
            [
                NewCustomerMessage(
                    network="meta",
                    conversation_key=f"{prefix}:{account}:{customer}",
                    external_id=mid,
                    author_id=customer,
                    author_name=customer,
                    text="hello",
                    sent_at=self.now[0],
                    received_at=self.now[0],
                    reply_context=context,
                )
            ]
        )
        return await self.conversation(stored.conversation_id)

    async def conversation(self, conversation_id: int) -> Conversation:
        found = await self.repo.conversation(conversation_id)
        assert found is not None
        return found

    async def named(self, conversation: Conversation) -> Conversation:
        await self.profiles.name(conversation)
        assert conversation.id is not None
        return await self.conversation(conversation.id)


@asynccontextmanager
async def _world(url: str, graph: FakeGraph) -> AsyncIterator[World]:
    db = Database(url)
    await db.migrate()
    meta = MetaNetwork(
        app_secret="secret", verify_token="verify", page_token=TOKEN, graph_url=graph.url
    )
    now = [T0]
    try:
        yield World(Repository(db), graph, Profiles(db, {"meta": meta}, lambda: now[0]), now)
    finally:
        await meta.close()
        await db.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    async with FakeGraph(token=TOKEN) as graph:
        if request.param == "sqlite":
            async with _world(f"sqlite+aiosqlite:///{tmp_path / 'profiles.db'}", graph) as made:
                yield made
        else:
            async with fresh_postgres() as url, _world(url, graph) as made:
                yield made


async def test_a_messenger_name_is_looked_up_at_most_daily(world: World) -> None:
    world.graph.profiles[PSID] = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "profile_pic": "https://example.com/ada.jpg",
    }
    conversation = await world.customer_writes("messenger", PSID, "m1")
    assert conversation.customer_name == PSID  # the webhook knew only the id

    named = await world.named(conversation)
    assert (named.customer_name, named.customer_handle) == ("Ada Lovelace", None)
    assert named.version > conversation.version  # the root is shown again
    [call] = world.graph.calls_to(f"/{PSID}")
    assert call.params["fields"] == "first_name,last_name"
    assert call.headers["Authorization"] == f"Bearer {TOKEN}"

    # The next message names the customer by id only: the name found stays.
    world.later(timedelta(hours=23))
    again = await world.customer_writes("messenger", PSID, "m2")
    assert again.customer_name == "Ada Lovelace"
    assert (await world.named(again)).customer_name == "Ada Lovelace"
    assert len(world.graph.calls_to(f"/{PSID}")) == 1  # cached for a day

    world.graph.profiles[PSID]["last_name"] = "King"
    world.later(timedelta(hours=2))
    assert (await world.named(again)).customer_name == "Ada King"
    assert len(world.graph.calls_to(f"/{PSID}")) == 2


async def test_an_instagram_customer_gets_name_and_handle(world: World) -> None:
    world.graph.profiles[IGSID] = {"name": "Grace Hopper", "username": "grace.h"}
    named = await world.named(await world.customer_writes("instagram", IGSID, "ig1"))
    assert (named.customer_name, named.customer_handle) == ("Grace Hopper", "grace.h")
    [call] = world.graph.calls_to(f"/{IGSID}")
    assert call.params["fields"] == "name,username"


async def test_a_failed_lookup_keeps_the_id_and_is_tried_again_an_hour_later(
    world: World,
) -> None:
    conversation = await world.customer_writes("messenger", PSID, "m1")
    # Graph answers code 100: no consent, or no such user
    assert (await world.named(conversation)).customer_name == PSID
    world.later(timedelta(minutes=59))
    assert (await world.named(conversation)).customer_name == PSID
    assert len(world.graph.calls_to(f"/{PSID}")) == 1

    world.graph.profiles[PSID] = {"first_name": "Ada"}
    world.later(timedelta(minutes=2))
    assert (await world.named(conversation)).customer_name == "Ada"
    assert len(world.graph.calls_to(f"/{PSID}")) == 2


async def test_a_failed_refresh_keeps_the_name_found_before(world: World) -> None:
    world.graph.profiles[PSID] = {"first_name": "Ada", "last_name": "Lovelace"}
    conversation = await world.named(await world.customer_writes("messenger", PSID, "m1"))
    world.later(timedelta(days=1))
    world.graph.fail(f"/{PSID}", status=500, count=1)
    assert (await world.named(conversation)).customer_name == "Ada Lovelace"
    assert len(world.graph.calls_to(f"/{PSID}")) == 2


async def test_comment_threads_look_nothing_up(world: World) -> None:
    conversation = await world.customer_writes("facebook_comment", "5550001", "c1")
    assert (await world.named(conversation)).customer_name == "5550001"
    assert world.graph.calls == []


async def test_a_reply_from_the_inbox_opens_its_conversation_once(world: World) -> None:
    """Stored on both databases; echoes in a known conversation use up no `#N`."""

    def echo(mid: str, customer: str) -> NewCustomerMessage:
        return NewCustomerMessage(
            network="meta",
            conversation_key=f"page:{PAGE}:{customer}",
            external_id=mid,
            author_id=PAGE,
            author_name="Facebook Page",
            text="Hi, we saw your comment",
            sent_at=world.now[0],
            received_at=world.now[0],
            reply_context={"channel": "messenger", "recipient_id": customer},
            customer_id=customer,
        )

    hold = world.now[0]
    assert await world.repo.store_network_replies([echo("e1", PSID), echo("e2", PSID)], hold) == 2
    assert await world.repo.store_network_replies([echo("e1", PSID)], hold) == 0  # a retry
    opened = await world.conversation(1)
    assert (opened.external_key, opened.customer_id) == (f"page:{PAGE}:{PSID}", PSID)
    assert opened.last_customer_at is None and opened.root_text == ""
    assert [r.external_id for r in await world.repo.replies(1)] == ["e1", "e2"]
    # the next conversation is #2, whatever was stored meanwhile
    nxt = await world.customer_writes("messenger", "2400000000000002", "m9")
    assert nxt.id == 2
