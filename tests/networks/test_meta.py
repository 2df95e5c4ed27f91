"""Meta adapter: handshake, signatures, Messenger / Instagram / comment payloads, Send API."""

from __future__ import annotations

import copy
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from bot.config import ConfigError, Settings
from bot.markup.targets import TARGETS
from bot.networks.base import (
    Attachment,
    CustomerRemoval,
    DeliveryError,
    ForbiddenError,
    InboundMessage,
    MentionDetails,
    MentionUnavailable,
    NotSupported,
    PayloadError,
    PublicMention,
    SignatureError,
)
from bot.networks.meta import MetaNetwork
from bot.networks.registry import BY_NAME
from tests.fakes.graph_api import FakeGraph
from tests.networks import (
    IDS,
    JSON_VALUES,
    TIMES,
    dumps,
    hub_signature,
    outbound,
    payload_bytes,
    payload_json,
    shaped,
)
from tests.networks.events import message_ids
from tests.refs import ref_bytes, ref_json

SECRET = "meta-app-secret"
PAGE = "1691462197845448"
PSID = "1134343043305865"


def network(graph_url: str = "https://graph.invalid/v25.0", **kwargs: Any) -> MetaNetwork:
    return MetaNetwork(
        app_secret=SECRET,
        verify_token="verify-me",
        page_token="page-token",
        graph_url=graph_url,
        **kwargs,
    )


def messages(body: bytes) -> list[InboundMessage]:
    events = network().parse(body)
    assert all(isinstance(e, InboundMessage) for e in events)
    return events  # type: ignore[return-value]


# -- handshake ---------------------------------------------------------------------------
def test_handshake_answers_the_challenge_for_our_token() -> None:
    answer = network().handshake(
        {"hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "1158201444"}
    )
    assert (answer.status, answer.body, answer.content_type) == (200, "1158201444", "text/plain")


@pytest.mark.parametrize(
    "query",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": "verify-me", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": "verify-me"},
        {},
    ],
)
def test_handshake_refuses_anything_else_with_403(query: dict[str, str]) -> None:
    with pytest.raises(ForbiddenError) as caught:
        network().handshake(query)
    assert caught.value.status == 403


# -- signatures -------------------------------------------------------------------------
def test_github_published_hex_vector_checks_the_header_format() -> None:
    # signature_examples.md 1: GitHub's vector for `sha256=<hex HMAC-SHA256>`.
    adapter = MetaNetwork(app_secret="It's a Secret to Everybody", verify_token="v", page_token="t")
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    adapter.verify({"X-Hub-Signature-256": header}, b"Hello, World!")
    with pytest.raises(SignatureError):
        adapter.verify({"X-Hub-Signature-256": header}, b"Hello, World!\n")


def test_signature_over_the_raw_bytes_in_any_header_case() -> None:
    body = ref_bytes("social/messenger_message.json")
    signature = hub_signature(SECRET, body)
    aiohttp_headers = CIMultiDictProxy(CIMultiDict({"x-hub-signature-256": signature}))
    network().verify(aiohttp_headers, body)
    network().verify({"x-hub-signature-256": signature}, body)
    reserialized = dumps(ref_json("social/messenger_message.json"))
    with pytest.raises(SignatureError):
        network().verify({"X-Hub-Signature-256": signature}, reserialized)


@pytest.mark.parametrize("header", [None, "", "sha256=00", "sha1=abc", "garbage"])
def test_missing_or_bad_signatures_are_refused_with_401(header: str | None) -> None:
    headers = {} if header is None else {"X-Hub-Signature-256": header}
    with pytest.raises(SignatureError) as caught:
        network().verify(headers, b"{}")
    assert caught.value.status == 401


# -- Messenger ----------------------------------------------------------------------------
def test_messenger_text_message_from_the_real_capture() -> None:
    [message] = messages(ref_bytes("social/messenger_message.json"))
    sent_at = datetime.fromtimestamp(1472026867.080, tz=UTC)
    assert message.network == "meta"
    assert message.conversation_key == f"page:{PAGE}:{PSID}"
    assert message.message_id == "mid.1472026867074:cfb5e1d4bde07a2a55"
    assert (message.author_id, message.text, message.from_team) == (PSID, "hello world", False)
    assert message.sent_at == sent_at
    assert message.reply_context == {
        "channel": "messenger",
        "page_id": PAGE,
        "recipient_id": PSID,
        "window_closes_at": (sent_at + timedelta(hours=24)).isoformat(),
        "human_agent_window_closes_at": (sent_at + timedelta(days=7)).isoformat(),
    }


def test_metas_official_message_item_in_an_envelope() -> None:
    item = ref_json("social/messenger_message_event_official.json")
    body = dumps({"object": "page", "entry": [{"id": "<PAGE_ID>", "time": 1, "messaging": [item]}]})
    [message] = messages(body)
    assert message.conversation_key == "page:<PAGE_ID>:<PSID>"
    assert message.text == "tapped: hello, world!"  # a quick reply
    assert message.sent_at == datetime.fromtimestamp(1458692752.478, tz=UTC)


def test_echo_is_a_team_message_in_the_customers_conversation() -> None:
    [echo] = messages(ref_bytes("social/messenger_echo.json"))
    [customer] = messages(ref_bytes("social/messenger_message.json"))
    assert echo.from_team is True
    assert echo.conversation_key == customer.conversation_key
    assert echo.message_id == "mid.1472026868734:832ecbdfc1ffc30139"
    assert echo.author_id == PAGE
    assert echo.reply_context["app_id"] == "950864918368986"
    assert "window_closes_at" not in echo.reply_context


def test_sticker_and_unsupported_content_say_what_they_are() -> None:
    [sticker] = messages(payload_bytes("messenger_sticker.json"))
    assert sticker.attachments == (
        Attachment("sticker", url="https://scontent.xx.fbcdn.net/sticker.png"),
    )
    assert sticker.text == "[sticker] https://scontent.xx.fbcdn.net/sticker.png"
    [unsupported] = messages(payload_bytes("messenger_unsupported.json"))
    assert unsupported.text == "[unsupported message part: is_unsupported]"
    assert unsupported.attachments == ()
    assert unsupported.conversation_key == "page:12345654332:987654321432"  # numeric ids


def test_media_attachments_keep_their_urls_and_unknown_types_are_named() -> None:
    data = ref_json("social/messenger_message.json")
    message = data["entry"][0]["messaging"][0]["message"]
    del message["text"]
    message["attachments"] = [
        {"type": "image", "payload": {"url": "https://cdn.example/a.jpg"}},
        {"type": "file", "payload": {"url": "https://cdn.example/b.pdf"}},
        {"type": "hologram", "payload": {}},
    ]
    [parsed] = messages(dumps(data))
    assert [a.kind for a in parsed.attachments] == ["image", "file"]
    assert parsed.attachments[0].url == "https://cdn.example/a.jpg"
    assert parsed.text == (
        "[photo] https://cdn.example/a.jpg\n[document] https://cdn.example/b.pdf\n"
        "[unsupported message part: hologram]"
    )


def test_receipts_and_reads_are_nothing_and_a_deletion_is_a_removal() -> None:
    data = ref_json("social/messenger_message.json")
    item = data["entry"][0]["messaging"][0]
    delivery = {
        "sender": item["sender"],
        "recipient": item["recipient"],
        "delivery": {"mids": ["x"], "watermark": 1},
    }
    read = {"sender": item["sender"], "recipient": item["recipient"], "read": {"watermark": 1}}
    deleted = copy.deepcopy(item)
    deleted["message"] = {"mid": "gone", "is_deleted": True}
    data["entry"][0]["messaging"] = [delivery, read, deleted]
    [removal] = network().parse(dumps(data))
    assert isinstance(removal, CustomerRemoval)
    assert (removal.target_id, removal.conversation_key) == ("gone", f"page:{PAGE}:{PSID}")


def test_every_item_of_every_entry_and_a_bad_item_is_skipped_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = ref_json("social/messenger_message.json")["entry"][0]
    second = copy.deepcopy(good)
    second["messaging"][0]["message"]["mid"] = "mid.second"
    broken = copy.deepcopy(good["messaging"][0])
    del broken["timestamp"]
    broken["message"]["text"] = "secret customer words"
    broken["message"]["mid"] = "mid.broken"
    third = copy.deepcopy(good["messaging"][0])
    third["message"]["mid"] = "mid.third"
    second["messaging"] += [broken, third]
    body = dumps({"object": "page", "entry": [good, second, "not an entry"]})

    report = network().parse_report(body)
    assert message_ids(report.events) == [
        "mid.1472026867074:cfb5e1d4bde07a2a55",
        "mid.second",
        "mid.third",
    ]
    assert [(s.where, s.reason) for s in report.skipped] == [
        ("entry[1].messaging[1]", "timestamp is not a timestamp"),
        ("entry[2]", "entry is not an object"),
    ]
    assert "message.mid=mid.broken" in report.skipped[0].ids

    with caplog.at_level(logging.WARNING, logger="bot.networks.payload"):
        assert len(network().parse(body)) == 3
    assert "mid.broken" in caplog.text
    assert "secret customer words" not in caplog.text


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"entry": []}',
        b'{"object": "page"}',
        b'{"object": "page", "entry": {}}',
        b'{"object": "user", "entry": []}',
        b"\xff\xfe",
    ],
)
def test_unusable_bodies_raise_payload_error(body: bytes) -> None:
    with pytest.raises(PayloadError) as caught:
        network().parse(body)
    assert caught.value.status == 400


# -- Instagram ----------------------------------------------------------------------------
def test_instagram_dm_with_a_shared_post() -> None:
    [message] = messages(payload_bytes("instagram_message.json"))
    assert message.conversation_key == "ig:17841400000000001:6543210987654321"
    assert message.reply_context["channel"] == "instagram"
    assert message.reply_context["recipient_id"] == "6543210987654321"
    assert message.attachments == ()
    assert message.text.startswith("[shared a post · Build a workspace")
    assert message.text.endswith(
        "] https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=18139494541428835&signature=EXAMPLE"
    )
    assert message.sent_at == datetime.fromtimestamp(1761287294.014, tz=UTC)


def test_instagram_echo_is_a_team_message() -> None:
    data = payload_json("instagram_message.json")
    item = data["entry"][0]["messaging"][0]
    item["sender"], item["recipient"] = item["recipient"], item["sender"]
    item["message"] = {"mid": "echo-1", "text": "Answered from the Instagram app", "is_echo": True}
    [echo] = messages(dumps(data))
    assert echo.from_team is True
    assert echo.conversation_key == "ig:17841400000000001:6543210987654321"


def test_instagram_comment_and_its_reply_share_the_top_level_thread() -> None:
    [comment] = messages(payload_bytes("instagram_comment.json"))
    [reply] = messages(payload_bytes("instagram_comment_reply.json"))
    assert comment.conversation_key == reply.conversation_key == "igcomment:17919697626119712"
    assert (comment.message_id, reply.message_id) == ("17919697626119712", "17919697626119800")
    assert comment.author_handle == "customer.one"
    assert comment.text == "Is this available in blue?"
    assert comment.sent_at == datetime.fromtimestamp(1755779280, tz=UTC)
    assert reply.reply_context == {
        "channel": "instagram_comment",
        "ig_account_id": "17841400000000001",
        "comment_id": "17919697626119712",
        "media_id": "18172143295349192",
    }
    assert comment.from_team is False


def test_instagram_comment_by_the_account_itself_is_a_team_message() -> None:
    data = payload_json("instagram_comment_reply.json")
    data["entry"][0]["changes"][0]["value"]["from"] = {
        "id": "17841400000000001",
        "username": "ourshop",
    }
    [own] = messages(dumps(data))
    assert own.from_team is True


# -- Page comments -------------------------------------------------------------------------
def customer_comment() -> dict[str, Any]:
    data = payload_json("facebook_feed_comment.json")
    data["entry"][0]["changes"][0]["value"]["from"] = {"id": "555", "name": "Ana Customer"}
    return data


def test_page_comment_starts_a_conversation_on_its_own_comment() -> None:
    [comment] = messages(dumps(customer_comment()))
    assert comment.conversation_key == "comment:901097836652708_903438993085259"
    assert comment.message_id == "901097836652708_903438993085259"
    assert (comment.author_id, comment.author_name) == ("555", "Ana Customer")
    assert comment.text == "and the next one"
    assert comment.sent_at == datetime.fromtimestamp(1449135003, tz=UTC)
    assert comment.from_team is False
    assert comment.reply_context == {
        "channel": "facebook_comment",
        "page_id": "1234567890321",
        "post_id": "1234567890321_901097836652708",
        "comment_id": "901097836652708_903438993085259",
    }


def test_reply_to_a_comment_belongs_to_its_parents_thread() -> None:
    data = customer_comment()
    value = data["entry"][0]["changes"][0]["value"]
    value["parent_id"] = value["comment_id"]
    value["comment_id"] = "901097836652708_903438993099999"
    [reply] = messages(dumps(data))
    assert reply.conversation_key == "comment:901097836652708_903438993085259"
    assert reply.message_id == "901097836652708_903438993099999"
    assert reply.reply_context["comment_id"] == "901097836652708_903438993085259"


def test_comment_written_by_the_page_is_a_team_message() -> None:
    [own] = messages(payload_bytes("facebook_feed_comment.json"))  # from.id == the Page
    assert own.from_team is True


def test_older_comment_shape_with_sender_fields_and_a_photo() -> None:
    [comment] = messages(payload_bytes("facebook_feed_comment_photo.json"))
    assert (comment.author_id, comment.author_name) == ("1234567890321", "Tester")
    assert comment.attachments[0].kind == "image"
    assert comment.attachments[0].url is not None
    assert comment.attachments[0].url.startswith("https://scontent-fra3-1.xx.fbcdn.net/")


@pytest.mark.parametrize(
    ("item", "verb"),
    [
        ("comment", "hide"),
        ("like", "add"),
        ("status", "add"),
        ("reaction", "add"),
    ],
)
def test_other_feed_changes_are_not_messages(item: str, verb: str) -> None:
    data = customer_comment()
    data["entry"][0]["changes"][0]["value"].update(item=item, verb=verb)
    assert network().parse(dumps(data)) == []


def test_messenger_and_comment_entries_in_one_batch() -> None:
    messenger_entry = ref_json("social/messenger_message.json")["entry"][0]
    comment_entry = customer_comment()["entry"][0]
    body = dumps({"object": "page", "entry": [messenger_entry, comment_entry]})
    keys = [m.conversation_key for m in messages(body)]
    assert keys == [f"page:{PAGE}:{PSID}", "comment:901097836652708_903438993085259"]


# -- fuzz ---------------------------------------------------------------------------------
MESSAGE = {
    "mid": IDS,
    "text": st.text(max_size=5),
    "is_echo": st.booleans(),
    "app_id": IDS,
    "is_unsupported": st.booleans(),
    "is_deleted": st.booleans(),
    "sticker_id": IDS,
    "attachments": [
        {
            "type": st.sampled_from(["image", "location", "share", "x"]),
            "title": st.text(max_size=3),
            "payload": {
                "url": st.text(max_size=3),
                "sticker_id": IDS,
                "coordinates": {"lat": JSON_VALUES, "long": JSON_VALUES},
            },
        }
    ],
}
MESSAGING = {
    "sender": {"id": IDS},
    "recipient": {"id": IDS},
    "timestamp": TIMES,
    "message": MESSAGE,
}
VALUE = {
    "item": st.sampled_from(["comment", "like"]),
    "verb": st.sampled_from(["add", "edited"]),
    "comment_id": IDS,
    "post_id": IDS,
    "parent_id": IDS,
    "id": IDS,
    "created_time": TIMES,
    "from": {"id": IDS, "name": st.text(max_size=3), "username": st.text(max_size=3)},
    "sender_id": IDS,
    "sender_name": st.text(max_size=3),
    "message": st.text(max_size=3),
    "text": st.text(max_size=3),
    "photo": st.text(max_size=3),
    "media": {"id": IDS},
}
BODIES = shaped(
    {
        "object": st.sampled_from(["page", "instagram"]),
        "entry": [
            {
                "id": IDS,
                "time": TIMES,
                "messaging": [MESSAGING],
                "standby": [MESSAGING],
                "changes": [{"field": st.sampled_from(["feed", "comments", "x"]), "value": VALUE}],
            }
        ],
    }
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.one_of(BODIES.map(dumps), st.binary(max_size=40)))
def test_fuzz_parse_only_ever_raises_payload_error(body: bytes) -> None:
    try:
        events = network().parse(body)
    except PayloadError:
        return
    assert isinstance(events, list)
    for event in events:
        assert isinstance(event, InboundMessage)
        assert event.sent_at.tzinfo is not None
        assert event.text


# -- send -------------------------------------------------------------------------------
async def test_messenger_reply_goes_through_the_send_api() -> None:
    async with FakeGraph(token="page-token") as graph:
        adapter = network(graph.url)
        [message] = messages(ref_bytes("social/messenger_message.json"))
        receipt = await adapter.send(outbound(dict(message.reply_context)))
        await adapter.close()
    [call] = graph.calls_to("/me/messages")
    assert call.json == {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {"text": "Thanks, on it!"},
    }
    assert call.headers["Authorization"] == "Bearer page-token"
    assert receipt.message_id == graph.sent[0]["message_id"]


async def test_comment_replies_use_the_comment_edges() -> None:
    async with FakeGraph(token="page-token") as graph:
        adapter = network(graph.url)
        [page_comment] = messages(dumps(customer_comment()))
        [ig_comment] = messages(payload_bytes("instagram_comment_reply.json"))
        fb = await adapter.send(outbound(dict(page_comment.reply_context)))
        ig = await adapter.send(outbound(dict(ig_comment.reply_context)))
        await adapter.close()
    assert [c.method for c in graph.calls] == [
        "/901097836652708_903438993085259/comments",
        "/17919697626119712/replies",
    ]
    assert all(c.json == {"message": "Thanks, on it!"} for c in graph.calls)
    assert fb.message_id == graph.sent[0]["id"] and ig.message_id == graph.sent[1]["id"]


async def test_closed_window_says_what_the_team_can_do() -> None:
    async with FakeGraph() as graph:
        graph.closed_window.add(PSID)
        adapter = network(graph.url)
        [message] = messages(ref_bytes("social/messenger_message.json"))
        with pytest.raises(DeliveryError) as caught:
            await adapter.send(outbound(dict(message.reply_context)))
        await adapter.close()
    error = caught.value
    assert (error.window_closed, error.temporary) == (True, False)
    assert "24 hours" in error.message and "HUMAN_AGENT" in error.message
    assert "2018278" in error.message


@pytest.mark.parametrize("code", [4, 613])
async def test_meta_throttling_codes_are_temporary(code: int) -> None:
    async with FakeGraph() as graph:
        graph.throttle("/me/messages", code=code)
        adapter = network(graph.url)
        with pytest.raises(DeliveryError) as caught:
            await adapter.send(outbound({"channel": "messenger", "recipient_id": PSID}))
        await adapter.close()
    assert caught.value.temporary is True
    assert caught.value.window_closed is False


async def test_server_errors_are_temporary_with_retry_after() -> None:
    async with FakeGraph() as graph:
        # With a body, the fake sends Retry-After (its default Graph error does not).
        unexpected = {"error": {"message": "An unexpected error has occurred.", "code": 2}}
        graph.fail("/me/messages", status=503, retry_after=7, body=unexpected)
        adapter = network(graph.url)
        with pytest.raises(DeliveryError) as caught:
            await adapter.send(outbound({"channel": "messenger", "recipient_id": PSID}))
        await adapter.close()
    assert (caught.value.temporary, caught.value.retry_after) == (True, 7.0)


async def test_other_refusals_are_permanent_with_metas_words() -> None:
    async with FakeGraph(token="the-right-token") as graph:
        adapter = network(graph.url)
        with pytest.raises(DeliveryError) as caught:
            await adapter.send(outbound({"channel": "messenger", "recipient_id": PSID}))
        await adapter.close()
    assert caught.value.temporary is False
    assert "Invalid OAuth access token." in caught.value.message


async def test_timeouts_and_unreachable_graph_are_temporary() -> None:
    async with FakeGraph() as graph:
        graph.delay("/me/messages", 5)
        slow = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.2))
        adapter = network(graph.url, session=slow)
        with pytest.raises(DeliveryError) as timeout:
            await adapter.send(outbound({"channel": "messenger", "recipient_id": PSID}))
        await adapter.close()
        assert not slow.closed  # a session given to the adapter stays the caller's
        await slow.close()
        url = graph.url
    adapter = network(url)
    with pytest.raises(DeliveryError) as down:
        await adapter.send(outbound({"channel": "messenger", "recipient_id": PSID}))
    await adapter.close()
    assert timeout.value.temporary and down.value.temporary


@pytest.mark.parametrize(
    "context", [{}, {"channel": "messenger"}, {"channel": "facebook_comment"}, {"channel": 3}]
)
async def test_a_conversation_without_reply_details_fails_permanently(
    context: dict[str, Any],
) -> None:
    with pytest.raises(DeliveryError) as caught:
        await network().send(outbound(context))
    assert caught.value.temporary is False


def test_from_settings_needs_all_three_meta_settings() -> None:
    complete = Settings(meta_app_secret="s", meta_verify_token="v", meta_page_token="p")
    assert isinstance(MetaNetwork.from_settings(complete), MetaNetwork)
    with pytest.raises(ConfigError):
        MetaNetwork.from_settings(Settings(meta_app_secret="s", meta_verify_token="v"))


# -- Instagram mentions: ids in the webhook, the rest looked up, answered via /mentions --
IG_USER = "17841405726653026"


def ig_mention(value: dict[str, Any]) -> bytes:
    """The `mentions` field (Instagram webhooks reference): `media_id`, and `comment_id`
    when the mention is in a comment."""
    return dumps(
        {
            "object": "instagram",
            "entry": [
                {
                    "id": IG_USER,
                    "time": 1765000000,
                    "changes": [{"field": "mentions", "value": value}],
                }
            ],
        }
    )


def test_an_instagram_mention_names_what_opening_and_answering_it_need() -> None:
    [comment] = network().parse(ig_mention({"media_id": "555", "comment_id": "777"}))
    [caption] = network().parse(ig_mention({"media_id": "555"}))
    assert isinstance(comment, PublicMention) and isinstance(caption, PublicMention)
    assert comment.details_pending and comment.tagged and comment.network == "meta"
    assert comment.conversation_key == "igmention:777"
    assert comment.reply_context == {
        "channel": "instagram_mention",
        "ig_account_id": IG_USER,
        "media_id": "555",
        "comment_id": "777",
    }
    assert caption.conversation_key == "igmention:555" and caption.external_id == "555"
    assert "comment_id" not in caption.reply_context
    assert "a caption" in caption.text


async def test_mention_details_read_the_mentioned_comment_and_media() -> None:
    async with FakeGraph(token="page-token") as graph:
        graph.mentioned_comments["777"] = {
            "text": "@acme where is my order?",
            "username": "ada",
            "timestamp": "2026-12-06T09:30:00+0000",
            "media": {"id": "555", "permalink": "https://www.instagram.com/p/abc/"},
        }
        graph.mentioned_media["556"] = {
            "caption": "Love @acme",
            "username": "grace",
            "permalink": "javascript:alert(1)",  # never shown as a link
        }
        adapter = network(graph.url)
        [comment] = network().parse(ig_mention({"media_id": "555", "comment_id": "777"}))
        [caption] = network().parse(ig_mention({"media_id": "556"}))
        assert isinstance(comment, PublicMention) and isinstance(caption, PublicMention)
        found = await adapter.mention_details(comment.reply_context)
        media = await adapter.mention_details(caption.reply_context)
        with pytest.raises(MentionUnavailable, match="does not exist"):
            await adapter.mention_details({**caption.reply_context, "media_id": "404"})
        await adapter.close()
    assert found == MentionDetails(
        "@acme where is my order?",
        "ada",
        "https://www.instagram.com/p/abc/",
        datetime(2026, 12, 6, 9, 30, tzinfo=UTC),
    )
    assert media == MentionDetails("Love @acme", "grace", None, None)
    assert graph.calls[0].headers["Authorization"] == "Bearer page-token"


async def test_a_down_graph_makes_the_mention_unavailable_not_an_error() -> None:
    async with FakeGraph() as graph:
        graph.fail("*", status=503, count=None)
        adapter = network(graph.url)
        with pytest.raises(MentionUnavailable):
            await adapter.mention_details(
                {"ig_account_id": IG_USER, "media_id": "555", "comment_id": "777"}
            )
        await adapter.close()


async def test_an_instagram_mention_reply_is_public_text_only_and_final() -> None:
    context = {"channel": "instagram_mention", "ig_account_id": IG_USER, "media_id": "555"}
    async with FakeGraph(token="page-token") as graph:
        graph.mentioned_media["555"] = {"caption": "hi"}
        graph.mentioned_comments["777"] = {"text": "hi"}
        adapter = network(graph.url)
        on_media = await adapter.send(outbound(context))
        in_thread = await adapter.send(outbound({**context, "comment_id": "777"}))
        await adapter.close()
    assert [c.method for c in graph.calls] == [f"/{IG_USER}/mentions"] * 2
    assert graph.calls[0].json == {"media_id": "555", "message": "Thanks, on it!"}
    assert graph.calls[1].json == {
        "media_id": "555",
        "message": "Thanks, on it!",
        "comment_id": "777",
    }
    assert on_media.message_id == graph.sent[0]["id"] and in_thread.message_id
    assert network().reply_target(context) == "instagram_mention"
    assert TARGETS["instagram_mention"].public and TARGETS["instagram_mention"].limit == 2200
    assert BY_NAME["meta"].is_public(context)
    with pytest.raises(NotSupported, match="Instagram mentions take text only"):
        network().file_limit(context, "image/png")
    with pytest.raises(NotSupported, match="Instagram mentions do not let a sent reply be edited"):
        await network().edit(outbound(context), "1790")
    with pytest.raises(NotSupported, match="do not let a sent message be deleted"):
        await network().delete(context, "1790", datetime.now(UTC))
