"""Listening through the real app: mentions from the generic webhook, Meta's mention
webhooks and the X recent search, posted once to the listening channel, opened or
dismissed with signed clicks, digested when busy."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from sqlalchemy import func, select
from sqlmodel import col

from bot.blocks.listening import DIGEST_CHUNK, DISMISS, OPEN
from bot.services.x_search import CURSOR
from storage.listening import Mentions
from storage.models import ListenMention, MentionState
from tests.harness import GENERIC_SECRET, INBOX, META_SECRET, Bot, start_bot, until
from tests.pg import fresh_postgres
from tests.refs import ref_bytes
from tests.services import require_redis
from tests.signing import generic_headers, meta_headers

LISTEN = "C0LISTEN01"
ENV = {
    "LISTEN_TERMS": "Relaydesk|relay desk, نوین‌پرداز",
    "SLACK_LISTENING_CHANNEL": LISTEN,
    "LISTEN_X_POLL_SECONDS": "3600",  # one poll at start; the tests poll themselves
}
SEARCH = "/2/tweets/search/recent"


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    running, stop = await start_bot(tmp_path, env=ENV)
    try:
        yield running
    finally:
        await stop()


async def mention(bot: Bot, message_id: str, text: str, url: str, **extra: Any) -> ClientResponse:
    body = json.dumps(
        {
            "kind": "mention",
            "message_id": message_id,
            "author": {"id": f"author-{message_id}", "name": "Ada"},
            "text": text,
            "sent_at": datetime.now(UTC).isoformat(),
            "url": url,
            **extra,
        }
    ).encode()
    return await bot.post_raw("/webhooks/generic", body, generic_headers(body, GENERIC_SECRET))


def posts(bot: Bot) -> list[dict[str, Any]]:
    return bot.slack.messages(LISTEN)


async def recorded(bot: Bot, *shown: dict[str, Any]) -> None:
    """Wait until SQL knows the posts (recorded after Slack answers; a person is never
    that quick to click)."""
    mentions = Mentions(bot.services.db)
    for post in shown:
        ts = str(post["ts"])

        async def known(ts: str = ts) -> bool:
            return bool(await mentions.shown_with(LISTEN, ts))

        await bot.until(known, what=f"post {ts} recorded")


def updated_with(bot: Bot, ts: str, words: str) -> dict[str, Any] | None:
    """The listening message at `ts` once it shows `words`."""
    message = bot.slack.message(LISTEN, ts)
    return message if words in shown(message) else None


def shown(post: dict[str, Any]) -> str:
    return json.dumps(post.get("blocks"), ensure_ascii=False)


def buttons(post: dict[str, Any]) -> dict[str, str]:
    """action_id -> value of the post's buttons."""
    found = {}
    for block in post.get("blocks") or []:
        for element in [*block.get("elements", []), block.get("accessory") or {}]:
            if element.get("type") == "button":
                found[element["action_id"]] = element["value"]
    return found


async def stored(bot: Bot) -> list[ListenMention]:
    async with bot.services.db.read() as session:
        rows = await session.execute(select(ListenMention).order_by(col(ListenMention.id)))
        return list(rows.scalars())


async def first_poll_done(bot: Bot) -> None:
    """The background poller polls once at start; wait until it stored its cursor."""
    assert bot.services.x_search is not None
    await bot.until(lambda: bot.x.calls_to(SEARCH), timeout=30, what="the first search")
    await asyncio.sleep(0.2)  # its cursor write, if it found anything


async def _cursor(bot: Bot) -> str | None:
    return await Mentions(bot.services.db).cursor(CURSOR)


# -- the generic webhook ------------------------------------------------------------


async def test_a_misspelled_brand_is_posted_once_with_what_matched_escaped(bot: Bot) -> None:
    text = "<!channel> relaydsk answered me in 2 minutes <@U0BOSS01> <http://evil|x>"
    answer = await mention(bot, "blog-1", text, "https://blog.example.com/posts/1?utm=x")
    assert answer.status == 200
    [post] = await bot.until(lambda: posts(bot), what="the mention in the listening channel")
    blocks = shown(post)
    assert "*Relaydesk* on the web" in blocks
    assert "`relaydsk` (misspelling, 1 edit of _Relaydesk_)" in blocks
    assert "&lt;!channel&gt;" in blocks and "&lt;@U0BOSS01&gt;" in blocks
    assert "<!channel>" not in blocks and "<@U0BOSS01>" not in blocks
    assert "<http://evil|x>" not in blocks
    assert "*Ada*" in blocks and "https://blog.example.com/posts/1?utm=x|open on the web" in blocks
    assert set(buttons(post)) == {OPEN, DISMISS}
    assert post["metadata"]["event_type"] == "relaydesk_listen"

    # the same post again: redelivered, under another id, with another spelling of its URL
    assert (await mention(bot, "blog-1", text, "https://blog.example.com/posts/1?utm=x")).ok
    assert (
        await mention(bot, "blog-1b", text, "https://WWW.Blog.example.com/posts/1/?utm=x#top")
    ).ok
    # nothing of ours in it, and a near miss on a common word
    assert (await mention(bot, "blog-2", "relay races today", "https://e.example/2")).ok
    await asyncio.sleep(0.5)  # give a second post time to show
    assert len(posts(bot)) == 1
    assert [m.source_key for m in await stored(bot)] == ["url:blog.example.com/posts/1?utm=x"]
    assert bot.slack.roots(INBOX) == []  # a mention is no conversation


async def test_a_mention_without_url_or_with_a_bad_kind_is_refused(bot: Bot) -> None:
    body = json.dumps(
        {
            "kind": "mention",
            "message_id": "m-1",
            "author": {"id": "a", "name": "A"},
            "text": "Relaydesk",
            "sent_at": datetime.now(UTC).isoformat(),
        }
    ).encode()
    answer = await bot.post_raw("/webhooks/generic", body, generic_headers(body, GENERIC_SECRET))
    assert answer.status == 400
    assert "url" in (await answer.json())["error"]
    assert (await mention(bot, "m-2", "Relaydesk", "javascript:alert(1)")).status == 400
    assert (
        await mention(bot, "m-3", "Relaydesk", "https://e.example/3", kind="poll")
    ).status == 400
    assert await stored(bot) == []


async def test_persian_letters_are_matched_whatever_the_keyboard(bot: Bot) -> None:
    # Arabic yeh and a plain space where the term has Farsi yeh and a half-space
    assert (await mention(bot, "fa-1", "خرید با نوين پرداز", "https://fa.example/1")).ok
    [post] = await bot.until(lambda: posts(bot))
    assert "*نوین‌پرداز*" in shown(post) and "`نوين پرداز` (exact" in shown(post)


# -- Meta's mention webhooks ----------------------------------------------------------


async def test_page_and_instagram_mentions_are_posted_and_page_ones_can_be_opened(
    bot: Bot,
) -> None:
    page = ref_bytes("conformance/meta/fb_mention_comment.json")  # tags the Page, no term
    assert (await bot.post_raw("/webhooks/meta", page, meta_headers(page, META_SECRET))).ok
    instagram = json.dumps(
        {
            "object": "instagram",
            "entry": [
                {
                    "id": "17841405726653026",
                    "time": 1765000000,
                    "changes": [
                        {
                            "field": "mentions",
                            "value": {"media_id": "17918195224117851", "comment_id": "1789422797"},
                        }
                    ],
                }
            ],
        }
    ).encode()
    assert (
        await bot.post_raw("/webhooks/meta", instagram, meta_headers(instagram, META_SECRET))
    ).ok
    first, second = await bot.until(lambda: posts(bot) if len(posts(bot)) == 2 else None)
    assert "@mention of the account on Facebook" in shown(first)
    assert "Just a test message" in shown(first)
    assert "https://www.facebook.com/7363534231324_3754798971271444|open on Facebook" in shown(
        first
    )
    assert set(buttons(first)) == {OPEN, DISMISS}
    assert "@mention of the account on Instagram" in shown(second)
    assert set(buttons(second)) == {DISMISS}  # answered on Instagram
    assert "cannot be opened here" in shown(second)
    assert bot.slack.roots(INBOX) == []

    await recorded(bot, first, second)
    await bot.click(OPEN, buttons(first)[OPEN], channel=LISTEN, message_ts=first["ts"])
    root = await bot.root()
    assert "Just a test message" in json.dumps(root["blocks"])
    await bot.thread_reply(INBOX, root["ts"], "Thanks for the shout-out!")
    [comment] = await bot.graph.wait_for("*/comments")
    assert comment.path.endswith("/7363534231324_3754798971271444/comments")


# -- buttons --------------------------------------------------------------------------


async def test_open_makes_a_public_x_conversation_and_dismiss_updates_the_message(
    bot: Bot,
) -> None:
    await first_poll_done(bot)
    wanted = bot.x.add_post(
        "the relay desk team rocks", author_id="11", username="grace", name="Grace H"
    )
    unwanted = bot.x.add_post(
        "Relaydesk spam spam", author_id="12", username="spammer", name="Spam"
    )
    assert bot.services.x_search is not None
    await bot.services.x_search.poll()
    a, b = await bot.until(lambda: posts(bot) if len(posts(bot)) == 2 else None)
    await recorded(bot, a, b)
    by_post = {p["metadata"]["event_payload"]["mention"]: p for p in (a, b)}
    rows = {m.external_id: m for m in await stored(bot)}
    open_post, dismiss_post = by_post[rows[wanted].id], by_post[rows[unwanted].id]
    assert f"https://x.com/grace/status/{wanted}|open on X" in shown(open_post)

    # a click naming another message's mention is refused
    await bot.click(DISMISS, str(rows[wanted].id), channel=LISTEN, message_ts=dismiss_post["ts"])
    await bot.until(lambda: any("does not belong" in t for t in bot.ephemerals_for()))

    await bot.click(OPEN, str(rows[wanted].id), channel=LISTEN, message_ts=open_post["ts"])
    root = await bot.root()
    assert "the relay desk team rocks" in json.dumps(root["blocks"])
    updated = await bot.until(lambda: updated_with(bot, open_post["ts"], "Opened by"))
    assert buttons(updated) == {}
    assert any("Opened as conversation #" in t for t in bot.ephemerals_for())
    await bot.thread_reply(INBOX, root["ts"], "Thank you Grace!")
    await bot.until(lambda: bot.x.tweets, what="the public reply")
    assert bot.x.tweets[0]["in_reply_to_tweet_id"] == wanted

    await bot.click(DISMISS, str(rows[unwanted].id), channel=LISTEN, message_ts=dismiss_post["ts"])
    gone = await bot.until(lambda: updated_with(bot, dismiss_post["ts"], "Dismissed by"))
    assert buttons(gone) == {}
    await bot.click(DISMISS, str(rows[unwanted].id), channel=LISTEN, message_ts=dismiss_post["ts"])
    await bot.until(lambda: any("already dismissed" in t for t in bot.ephemerals_for()))
    states = {m.external_id: m.state for m in await stored(bot)}
    assert states == {wanted: MentionState.OPENED, unwanted: MentionState.DISMISSED}
    assert len(bot.slack.roots(INBOX)) == 1


# -- the X recent search --------------------------------------------------------------


async def test_x_search_pages_through_and_resumes_from_since_id_after_a_restart(
    tmp_path: Path,
) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'listen.db'}"
    bot, stop = await start_bot(tmp_path, database_url=database, env=ENV)
    try:
        await first_poll_done(bot)  # nothing posted yet: an empty page, no cursor
        assert bot.services.x_search is not None
        bot.x.page_size = 2
        older = [bot.x.add_post(f"Relaydesk older {n}") for n in range(3)]
        await bot.services.x_search.poll()  # no since_id yet: the latest page only
        assert await _cursor(bot) == older[-1]
        ids = [bot.x.add_post(f"Relaydesk post {n}") for n in range(5)]
        bot.x.add_post("nothing to do with us")
        await bot.services.x_search.poll()
        searches = bot.x.calls_to(SEARCH)[2:]
        assert [bool(c.params.get("next_token")) for c in searches] == [False, True, True]
        assert searches[0].params["since_id"] == older[-1]
        ids = older[1:] + ids
        assert sorted(m.external_id for m in await stored(bot)) == sorted(ids)
        assert await _cursor(bot) == ids[-1]
        await bot.until(lambda: len(posts(bot)) == 7, what="seven posts")
    finally:
        await stop()

    again, stop = await start_bot(tmp_path, database_url=database, env=ENV)
    try:
        # (a fresh fake X: its ids start over, X's never do)
        later = again.x.add_post("relaydesk after the restart", post_id=str(int(ids[-1]) + 9))
        [search] = await again.x.wait_for(SEARCH)
        assert search.params["since_id"] == ids[-1]
        await until(lambda: _cursor(again), what="the cursor")
        assert await until(lambda: _is(_cursor(again), later), what="the cursor moved on")
    finally:
        await stop()


async def _is(value: Any, expected: str) -> bool:
    return await value == expected


async def test_x_search_waits_out_a_429_then_finds_the_posts(tmp_path: Path) -> None:
    env = {**ENV, "LISTEN_X_POLL_SECONDS": "2"}
    bot, stop = await start_bot(tmp_path, env=env)
    try:
        bot.x.fail(SEARCH, 429, retry_after=3)
        post = bot.x.add_post("Relaydsk is neat")  # found by X only with the exact term...
        other = bot.x.add_post("RELAYDESK is neat")
        first, second = await bot.x.wait_for(SEARCH, 2, timeout=10)
        assert (first.status, second.status) == (429, 200)
        assert second.at - first.at >= 2.9  # x-rate-limit-reset, not the 2 s poll interval
        await bot.until(lambda: posts(bot), what="the post found after the 429")
        assert [m.external_id for m in await stored(bot)] == [other]
        assert post not in [m.external_id for m in await stored(bot)]
    finally:
        await stop()


# -- across sources and processes -----------------------------------------------------


async def test_one_post_per_mention_across_sources_and_processes(tmp_path: Path) -> None:
    redis_url = require_redis()
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    async with fresh_postgres() as database_url:
        one, stop_one = await start_bot(
            tmp_path / "a",
            database_url=database_url,
            env={**ENV, "REDIS_URL": redis_url},
            coordination_prefix=prefix,
        )
        two, stop_two = await start_bot(
            tmp_path / "b",
            database_url=database_url,
            env={**ENV, "REDIS_URL": redis_url},
            coordination_prefix=prefix,
        )
        try:
            # one of the two processes holds the search's lease and polls at start
            await until(
                lambda: one.x.calls_to(SEARCH) or two.x.calls_to(SEARCH),
                timeout=30,
                what="the first search",
            )
            post = one.x.add_post("Relaydesk made my day", username="ada")
            url = f"https://twitter.com/ada/status/{post}"
            assert one.services.x_search is not None
            results = await asyncio.gather(
                one.services.x_search.poll(),
                mention(two, "crawler-1", "Relaydesk made my day", url),
                mention(one, "crawler-2", "Relaydesk made my day", url + "?s=20"),
            )
            assert results[1].status == results[2].status == 200
            await until(lambda: posts(one) + posts(two), what="the mention posted")
            await asyncio.sleep(1.0)  # give a second post time to show
            assert len(posts(one) + posts(two)) == 1
            [row] = await stored(one)
            assert row.source_key == f"x:{post}"
        finally:
            await stop_one()
            await stop_two()


# -- busy: digests ------------------------------------------------------------------------


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


async def test_over_60_an_hour_the_channel_gets_a_digest_every_10_minutes(
    tmp_path: Path,
) -> None:
    clock = Clock(datetime(2026, 12, 6, 10, 1, tzinfo=UTC))
    bot, stop = await start_bot(tmp_path, env=ENV, clock=clock)
    try:
        bot.slack.rate_limit(1.0, burst=4)  # as the chaos tests: the bot paces at 1/s, burst 3
        for n in range(5):
            assert (await mention(bot, f"q-{n}", "Relaydesk!", f"https://q.example/{n}")).ok
        await bot.until(lambda: len(posts(bot)) == 5, what="five posts, one each")
        for n in range(5, 70):
            assert (await mention(bot, f"q-{n}", "relaydesk?", f"https://q.example/{n}")).ok
        digest = await bot.until(lambda: _digests(bot), what="a digest")
        await bot.until(lambda: _all_shown(bot), what="every mention shown")
        shown_ids = _mention_ids(bot)
        assert sorted(shown_ids) == sorted(int(m.id or 0) for m in await stored(bot))  # each once
        alone = len(bot.slack.roots(LISTEN)) - 1
        assert 5 <= alone < 61  # one post each until the 61st mention of the hour
        assert f"{70 - alone} mentions" in shown(digest[0])
        assert f"By term: Relaydesk {70 - alone}" in shown(digest[0])
        if 70 - alone > DIGEST_CHUNK:
            assert len(bot.slack.replies(LISTEN, digest[0]["ts"])) == 1  # part 2 of 2

        # more while busy: they wait for the next 10-minute window
        for n in range(70, 73):
            assert (await mention(bot, f"q-{n}", "relaydesk.", f"https://q.example/{n}")).ok
        await asyncio.sleep(1.5)
        assert len(_digests(bot)) == 1 and await _pending(bot) == 3
        clock.now += timedelta(minutes=10)
        await bot.until(lambda: len(_digests(bot)) == 2, timeout=8, what="the next digest")
        assert "3 mentions" in shown(_digests(bot)[-1])
        assert sorted(_mention_ids(bot)) == sorted(int(m.id or 0) for m in await stored(bot))
        assert bot.slack.rate_limited() == []
        await bot.until(lambda: _all_shown(bot), what="the digest recorded")

        # Open on one line of a digest: a conversation, and that line says so
        part = _digests(bot)[0]
        await recorded(bot, part)
        chosen, *others = [value for action, value in _all_buttons(part) if action == OPEN]
        await bot.click(OPEN, chosen, channel=LISTEN, message_ts=part["ts"])
        root = await bot.root()
        assert "relaydesk" in json.dumps(root["blocks"]).lower()
        again = await bot.until(lambda: updated_with(bot, part["ts"], "Opened by"))
        still = [value for action, value in _all_buttons(again) if action == OPEN]
        assert still == others  # the other lines keep their buttons
        assert "mentions" in shown(again)  # the totals stay on top
    finally:
        await stop()


def _digests(bot: Bot) -> list[dict[str, Any]]:
    return [p for p in bot.slack.roots(LISTEN) if "digest" in str(p.get("text"))]


async def _pending(bot: Bot) -> int:
    async with bot.services.db.read() as session:
        waiting = await session.execute(
            select(func.count()).where(col(ListenMention.state) == MentionState.PENDING)
        )
        return int(waiting.scalar_one())


async def _all_shown(bot: Bot) -> bool:
    return await _pending(bot) == 0


def _mention_ids(bot: Bot) -> list[int]:
    """Every mention id shown by a button in the listening channel (each post once)."""
    ids: list[int] = []
    for post in posts(bot):
        for action_id, value in _all_buttons(post):
            if action_id == OPEN:
                ids.append(int(value))
    return ids


def _all_buttons(post: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    for block in post.get("blocks") or []:
        for element in [*block.get("elements", []), block.get("accessory") or {}]:
            if element.get("type") == "button":
                found.append((element["action_id"], element["value"]))
    return found


async def test_a_post_slack_refuses_for_good_fails_alone(bot: Bot) -> None:
    bot.slack.fail("chat.postMessage", 200, body={"ok": False, "error": "invalid_blocks"})
    assert (await mention(bot, "bad-1", "Relaydesk one", "https://r.example/1")).ok
    await bot.until(lambda: bot.slack.calls_to("chat.postMessage"), what="the refused post")
    assert (await mention(bot, "ok-2", "Relaydesk two", "https://r.example/2")).ok
    [post] = await bot.until(lambda: posts(bot), what="the next mention posted")
    assert "Relaydesk two" in shown(post)
    await recorded(bot, post)
    states = {m.external_id: m.state for m in await stored(bot)}
    assert states == {"bad-1": MentionState.FAILED, "ok-2": MentionState.POSTED}


async def test_x_search_waits_for_a_spent_window_to_reset(tmp_path: Path) -> None:
    env = {**ENV, "LISTEN_X_POLL_SECONDS": "2"}
    bot, stop = await start_bot(tmp_path, env=env)
    try:
        bot.x.search_limit = 1  # the first search spends the window (remaining 0)
        [first] = await bot.x.wait_for(SEARCH, timeout=30)
        assert first.status == 200
        await asyncio.sleep(3.0)  # two poll intervals: no search may come now
        assert len(bot.x.calls_to(SEARCH)) == 1
        assert bot.services.x_search is not None
        wait = await bot.services.x_search.poll()  # asked anyway: X says 429
        assert bot.x.calls_to(SEARCH)[-1].status == 429
        assert 800 < wait <= 900  # until x-rate-limit-reset, not the 2 s interval
    finally:
        await stop()
