"""Bad input on every endpoint: refused with the right status, nothing stored, nothing sent.

Each test runs the whole app (tests/harness.py) and checks three things: the
status of the bad request, that SQL holds no row for it and no fake API saw a
call for it, and that the service still handles a good request afterwards.
The two webhooks are also fuzzed with hypothesis: any correctly signed body
gets 200 or 400, never 500.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.signature import Clock, SignatureVerifier
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from storage.models import Conversation, CustomerMessage, TeamReply, Turn
from tests.harness import (
    AGENT,
    GENERIC_SECRET,
    INBOX,
    SIGNING_SECRET,
    TELEGRAM_SECRET,
    Bot,
    start_bot,
)
from tests.refs import ref_bytes, ref_json
from tests.services import require_postgres
from tests.signing import (
    generic_headers,
    slack_command_body,
    slack_form,
    slack_headers,
    telegram_headers,
)

MIB = 1024 * 1024
TABLES = (Conversation, CustomerMessage, TeamReply, Turn)

# -- helpers -----------------------------------------------------------------


async def row_counts(bot: Bot) -> dict[str, int]:
    counts: dict[str, int] = {}
    async with bot.services.db.session() as session:
        for model in TABLES:
            counts[model.__name__] = (
                await session.execute(select(func.count()).select_from(model))
            ).scalar_one()
    return counts


def outbound_calls(bot: Bot) -> list[str]:
    """Every call the app made to a fake, except bolt's one-time `auth.test` and the
    scheduler's daily summary (posted on its own schedule, in its own channel)."""
    summary = bot.settings.slack_summary_channel
    calls = [
        f"slack:{c.method}"
        for c in bot.slack.calls
        if c.method != "auth.test" and not (summary and c.params.get("channel") == summary)
    ]
    for name, fake in (("telegram", bot.telegram), ("sink", bot.sink), ("graph", bot.graph)):
        calls.extend(f"{name}:{c.method}" for c in fake.calls)
    return calls


async def settle() -> None:
    """Give the dispatcher the chance to act on anything that was (wrongly) stored."""
    await asyncio.sleep(0.2)


def generic_body(**overrides: Any) -> bytes:
    data: dict[str, Any] = {
        "conversation_id": "conv-1",
        "message_id": "msg-1",
        "author": {"id": "cust-1", "name": "Grace"},
        "text": "Hello from the generic webhook",
        "sent_at": datetime.now(UTC).isoformat(),
    }
    data.update(overrides)
    return json.dumps(data).encode()


def telegram_body(**message: Any) -> bytes:
    """A Telegram update whose message has `message`'s fields changed (None: left out)."""
    data: dict[str, Any] = {
        "message_id": 10,
        "date": int(time.time()),
        "chat": {"id": 4242, "type": "private", "first_name": "Ada"},
        "from": {"id": 4242, "is_bot": False, "first_name": "Ada", "username": "ada"},
        "text": "Hello from Telegram",
    }
    data.update(message)
    data = {key: value for key, value in data.items() if value is not None}
    return json.dumps({"update_id": 1, "message": data}).encode()


async def assert_good_generic_request_works(bot: Bot, text: str = "still alive") -> None:
    response = await bot.from_generic("good-conv", "good-msg", text)
    assert response.status == 200, await response.text()
    await bot.until(
        lambda: [r for r in bot.slack.roots(INBOX) if text in json.dumps(r["blocks"])],
        what=f"a root showing {text!r}",
    )


async def assert_error_json(response: Any, status: int) -> None:
    body = await response.text()
    assert response.status == status, body
    assert isinstance(json.loads(body).get("error"), str), body


# -- webhooks: signatures ------------------------------------------------------


def _sign_generic_wrong(body: bytes) -> dict[str, str]:
    return generic_headers(body, "not-the-secret")


def _sign_generic_other_body(body: bytes) -> dict[str, str]:
    return generic_headers(body + b" ", GENERIC_SECRET)


def _sign_generic_sha1(body: bytes) -> dict[str, str]:
    digest = hmac.new(GENERIC_SECRET.encode(), body, hashlib.sha1).hexdigest()
    return {"X-Relaydesk-Signature": f"sha1={digest}"}


def _sign_generic_bare_hex(body: bytes) -> dict[str, str]:
    return {
        "X-Relaydesk-Signature": generic_headers(body, GENERIC_SECRET)[
            "X-Relaydesk-Signature"
        ].removeprefix("sha256=")
    }


BAD_WEBHOOK_SIGNATURES: dict[str, tuple[str, Callable[[bytes], dict[str, str]]]] = {
    "generic-unsigned": ("/webhooks/generic", lambda body: {}),
    "generic-empty-header": ("/webhooks/generic", lambda body: {"X-Relaydesk-Signature": ""}),
    "generic-wrong-secret": ("/webhooks/generic", _sign_generic_wrong),
    "generic-signature-of-other-body": ("/webhooks/generic", _sign_generic_other_body),
    "generic-sha1": ("/webhooks/generic", _sign_generic_sha1),
    "generic-no-prefix": ("/webhooks/generic", _sign_generic_bare_hex),
    "telegram-unsigned": ("/webhooks/telegram", lambda body: {}),
    "telegram-wrong-secret": ("/webhooks/telegram", lambda body: telegram_headers("nope")),
    "telegram-secret-prefix": (
        "/webhooks/telegram",
        lambda body: telegram_headers(TELEGRAM_SECRET[:-1]),
    ),
    "telegram-secret-wrong-case": (
        "/webhooks/telegram",
        lambda body: telegram_headers(TELEGRAM_SECRET.upper()),
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_WEBHOOK_SIGNATURES))
async def test_webhook_with_a_bad_signature_is_refused_and_stores_nothing(
    bot: Bot, case: str
) -> None:
    path, sign = BAD_WEBHOOK_SIGNATURES[case]
    body = generic_body() if "generic" in path else telegram_body()
    response = await bot.post_raw(path, body, sign(body))
    await assert_error_json(response, 401)
    await settle()
    assert await row_counts(bot) == dict.fromkeys(
        ["Conversation", "CustomerMessage", "TeamReply", "Turn"], 0
    )
    assert outbound_calls(bot) == []
    await assert_good_generic_request_works(bot)
    assert len(bot.slack.roots(INBOX)) == 1


# -- webhooks: malformed bodies --------------------------------------------------

MALFORMED_GENERIC: dict[str, bytes] = {
    "empty": b"",
    "not-json": b"conversation_id=1&text=hi",
    "truncated-json": generic_body()[:-5],
    "not-utf8": b'{"text": "\xff\xfe"}',
    "json-array": b"[]",
    "json-string": b'"hello"',
    "json-null": b"null",
    "json-number": b"42",
    "empty-object": b"{}",
    "missing-text": json.dumps(
        {k: v for k, v in json.loads(generic_body()).items() if k != "text"}
    ).encode(),
    "missing-author": json.dumps(
        {k: v for k, v in json.loads(generic_body()).items() if k != "author"}
    ).encode(),
    "author-not-object": generic_body(author="Grace"),
    "author-without-name": generic_body(author={"id": "cust-1"}),
    "numeric-conversation-id": generic_body(conversation_id=12),
    "empty-message-id": generic_body(message_id=""),
    "text-is-list": generic_body(text=["hi"]),
    "sent-at-not-a-time": generic_body(sent_at="yesterday"),
    "sent-at-without-offset": generic_body(sent_at="2026-01-05T10:00:00"),
    "sent-at-number": generic_body(sent_at=1767607200),
}

MALFORMED_TELEGRAM: dict[str, bytes] = {
    "empty": b"",
    "not-json": b"update_id=1",
    "not-utf8": b"\xff\xfe\x00",
    "json-array": b"[1, 2]",
    "json-null": b"null",
    "no-update-id": json.dumps({"message": json.loads(telegram_body())["message"]}).encode(),
    "string-update-id": json.dumps({"update_id": "1"}).encode(),
    "message-without-chat": telegram_body(chat=None),
    "message-without-date": telegram_body(date=None),
    "message-id-not-a-number": telegram_body(message_id="ten"),
    "chat-id-not-a-number": telegram_body(chat={"id": "abc", "type": "private"}),
    "message-is-a-list": json.dumps({"update_id": 5, "message": [1, 2]}).encode(),
}


@pytest.mark.parametrize(
    ("path", "case"),
    [("/webhooks/generic", name) for name in sorted(MALFORMED_GENERIC)]
    + [("/webhooks/telegram", name) for name in sorted(MALFORMED_TELEGRAM)],
)
async def test_correctly_signed_malformed_webhook_gets_400_and_stores_nothing(
    bot: Bot, path: str, case: str
) -> None:
    if path.endswith("generic"):
        body = MALFORMED_GENERIC[case]
        headers = generic_headers(body, GENERIC_SECRET)
    else:
        body = MALFORMED_TELEGRAM[case]
        headers = telegram_headers(TELEGRAM_SECRET)
    response = await bot.post_raw(path, body, headers)
    await assert_error_json(response, 400)
    await settle()
    assert sum((await row_counts(bot)).values()) == 0
    assert outbound_calls(bot) == []
    await assert_good_generic_request_works(bot)


async def test_telegram_updates_without_a_message_are_accepted_and_ignored(bot: Bot) -> None:
    """Telegram re-sends anything not answered 200, so edits and callbacks get 200, no row."""
    for update in (
        {"update_id": 1, "edited_message": json.loads(telegram_body())["message"]},
        {"update_id": 2, "callback_query": {"id": "1", "data": "x"}},
        {"update_id": 3},
    ):
        body = json.dumps(update).encode()
        response = await bot.post_raw("/webhooks/telegram", body, telegram_headers(TELEGRAM_SECRET))
        assert response.status == 200, await response.text()
    await settle()
    assert sum((await row_counts(bot)).values()) == 0
    assert outbound_calls(bot) == []


# -- webhooks: size and routing ------------------------------------------------


def _padded_generic_body(size: int) -> bytes:
    """A valid generic body padded with JSON whitespace to exactly `size` bytes."""
    body = generic_body(message_id="big", conversation_id="big")
    return body[:-1] + b" " * (size - len(body)) + b"}"


@pytest.mark.parametrize("path", ["/webhooks/generic", "/webhooks/telegram"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_body_over_one_mib_gets_413(bot: Bot, path: str, chunked: bool) -> None:
    body = _padded_generic_body(MIB + 1)
    headers = (
        generic_headers(body, GENERIC_SECRET)
        if path.endswith("generic")
        else telegram_headers(TELEGRAM_SECRET)
    )

    async def stream() -> Any:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    response = await bot.client.post(
        path,
        data=stream() if chunked else body,
        headers={"Content-Type": "application/json", **headers},
    )
    assert response.status == 413, await response.text()
    await settle()
    assert sum((await row_counts(bot)).values()) == 0
    assert outbound_calls(bot) == []
    await assert_good_generic_request_works(bot)


async def test_body_of_exactly_one_mib_is_accepted(bot: Bot) -> None:
    body = _padded_generic_body(MIB)
    assert len(body) == MIB
    response = await bot.post_raw("/webhooks/generic", body, generic_headers(body, GENERIC_SECRET))
    assert response.status == 200, await response.text()
    assert (await row_counts(bot))["CustomerMessage"] == 1


async def test_unknown_network_gets_404(bot: Bot) -> None:
    body = generic_body()
    for method in ("GET", "POST"):
        response = await bot.client.request(
            method, "/webhooks/myspace", data=body, headers=generic_headers(body, GENERIC_SECRET)
        )
        await assert_error_json(response, 404)
    assert sum((await row_counts(bot)).values()) == 0
    assert outbound_calls(bot) == []


async def test_unconfigured_network_gets_404(tmp_path: Path) -> None:
    """Telegram turned off (no token, no secret): its route answers like an unknown one."""
    bot, stop = await start_bot(
        tmp_path, env={"TELEGRAM_BOT_TOKEN": "", "TELEGRAM_WEBHOOK_SECRET": ""}
    )
    try:
        body = telegram_body()
        response = await bot.post_raw("/webhooks/telegram", body, telegram_headers(TELEGRAM_SECRET))
        await assert_error_json(response, 404)
        assert sum((await row_counts(bot)).values()) == 0
    finally:
        await stop()


# -- Slack: signatures -------------------------------------------------------------


async def _conversation_with_root(bot: Bot) -> tuple[int, str]:
    response = await bot.from_telegram(7001, "I need help")
    assert response.status == 200
    root = await bot.root()
    # The fake stores the root before the bot records its ts: wait for the SQL side too.

    async def recorded() -> Conversation | None:
        return await bot.services.repo.conversation_by_thread(INBOX, root["ts"])

    conversation: Conversation = await bot.until(recorded, what="the root's thread in SQL")
    assert conversation.id is not None
    return conversation.id, root["ts"]


def slack_thread_reply_body(bot: Bot, root_ts: str, text: str) -> bytes:
    ts = bot.slack.add_message(INBOX, text, user=AGENT, thread_ts=root_ts)["ts"]
    envelope = {
        "token": "verification-token",
        "team_id": "T0001",
        "api_app_id": "A0001",
        "type": "event_callback",
        "event_id": f"Ev{ts.replace('.', '')}",
        "event_time": int(time.time()),
        "event": {
            "type": "message",
            "channel": INBOX,
            "user": AGENT,
            "text": text,
            "ts": ts,
            "thread_ts": root_ts,
            "channel_type": "channel",
        },
    }
    return json.dumps(envelope).encode()


def slack_click_body(conversation_id: int, root_ts: str) -> bytes:
    return slack_form(
        {
            "type": "block_actions",
            "user": {"id": AGENT, "username": "agent", "team_id": "T0001"},
            "api_app_id": "A0001",
            "token": "verification-token",
            "container": {"type": "message", "message_ts": root_ts, "channel_id": INBOX},
            "trigger_id": "1.2.3",
            "team": {"id": "T0001", "domain": "example"},
            "channel": {"id": INBOX, "name": "inbox"},
            "message": {"type": "message", "ts": root_ts, "text": "root"},
            "actions": [
                {
                    "action_id": "relaydesk.claim",
                    "block_id": "relaydesk.root",
                    "value": str(conversation_id),
                    "type": "button",
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
    )


def _bad_slack_headers(fault: str, body: bytes) -> dict[str, str]:
    now = int(time.time())
    if fault == "unsigned":
        return {}
    if fault == "wrong-secret":
        return slack_headers(body, "not-the-signing-secret")
    if fault == "signature-of-other-body":
        return slack_headers(body + b"&x=1", SIGNING_SECRET)
    if fault == "stale":  # just over Slack's 5-minute window
        return slack_headers(body, SIGNING_SECRET, now - 5 * 60 - 30)
    if fault == "future":
        return slack_headers(body, SIGNING_SECRET, now + 5 * 60 + 30)
    if fault == "timestamp-swapped":  # a valid signature replayed under a fresh timestamp
        headers = slack_headers(body, SIGNING_SECRET, now - 5 * 60 - 30)
        headers["X-Slack-Request-Timestamp"] = str(now)
        return headers
    if fault == "no-timestamp":
        headers = slack_headers(body, SIGNING_SECRET)
        del headers["X-Slack-Request-Timestamp"]
        return headers
    if fault == "non-numeric-timestamp":
        headers = slack_headers(body, SIGNING_SECRET)
        headers["X-Slack-Request-Timestamp"] = "soon"
        return headers
    raise AssertionError(fault)


SLACK_FAULTS = [
    "unsigned",
    "wrong-secret",
    "signature-of-other-body",
    "stale",
    "future",
    "timestamp-swapped",
    "no-timestamp",
    "non-numeric-timestamp",  # a 500 until 90d29c5
]


@pytest.mark.parametrize("fault", SLACK_FAULTS)
@pytest.mark.parametrize("kind", ["event", "interactivity", "slash-command"])
async def test_slack_request_with_a_bad_signature_gets_401_and_does_nothing(
    bot: Bot, kind: str, fault: str
) -> None:
    conversation_id, root_ts = await _conversation_with_root(bot)
    bot.slack.reset_calls()
    before = await row_counts(bot)
    if kind == "event":
        body = slack_thread_reply_body(bot, root_ts, "should never reach the customer")
        content_type = "application/json"
    elif kind == "interactivity":
        body = slack_click_body(conversation_id, root_ts)
        content_type = "application/x-www-form-urlencoded"
    else:
        body = slack_command_body(command="/oncall", channel_id=INBOX, user_id=AGENT)
        content_type = "application/x-www-form-urlencoded"
    response = await bot.client.post(
        "/slack/events",
        data=body,
        headers={"Content-Type": content_type, **_bad_slack_headers(fault, body)},
    )
    assert response.status == 401, await response.text()
    await settle()
    assert await row_counts(bot) == before
    conversation = await bot.services.repo.conversation(conversation_id)
    assert conversation is not None and conversation.owner is None
    assert outbound_calls(bot) == []
    # not even auth.test: refused before bolt's authorization middleware
    assert "auth.test" not in [c.method for c in bot.slack.calls]

    # The service still answers a good, signed request: a thread reply goes out.
    response, reply_ts = await bot.thread_reply(INBOX, root_ts, "a real answer")
    assert response.status == 200
    sent = await bot.telegram.wait_for("sendMessage")
    assert [call.params["text"] for call in sent] == ["a real answer"]


async def test_slack_timestamp_inside_the_window_is_accepted(bot: Bot) -> None:
    """The other side of the boundary: 4.5 minutes old is still fine."""
    _, root_ts = await _conversation_with_root(bot)
    body = slack_thread_reply_body(bot, root_ts, "late but valid")
    headers = slack_headers(body, SIGNING_SECRET, int(time.time()) - 270)
    response = await bot.client.post(
        "/slack/events", data=body, headers={"Content-Type": "application/json", **headers}
    )
    assert response.status == 200
    sent = await bot.telegram.wait_for("sendMessage")
    assert sent[0].params["text"] == "late but valid"


async def test_slack_url_verification_is_answered(bot: Bot) -> None:
    challenge = ref_json("slack/url_verification.json")
    body = json.dumps(challenge).encode()
    response = await bot.client.post(
        "/slack/events",
        data=body,
        headers={"Content-Type": "application/json", **slack_headers(body, SIGNING_SECRET)},
    )
    assert response.status == 200
    assert challenge["challenge"] in await response.text()


async def test_slack_body_over_one_mib_gets_413(bot: Bot) -> None:
    _, root_ts = await _conversation_with_root(bot)
    body = slack_thread_reply_body(bot, root_ts, "x" * (MIB + 1))
    response = await bot.client.post(
        "/slack/events",
        data=body,
        headers={"Content-Type": "application/json", **slack_headers(body, SIGNING_SECRET)},
    )
    assert response.status == 413
    await settle()
    assert (await row_counts(bot))["TeamReply"] == 0
    assert bot.telegram.calls == []


SLACK_MALFORMED: dict[str, tuple[str, bytes]] = {
    "event-not-json": ("application/json", b"{not json"),
    "event-json-array": ("application/json", b"[1, 2]"),
    "event-field-of-wrong-type": (
        "application/json",
        json.dumps({"type": "event_callback", "event_id": "Ev1", "event": "message"}).encode(),
    ),
    "interactivity-payload-not-json": ("application/x-www-form-urlencoded", b"payload=%7Bnope"),
}


@pytest.mark.parametrize(
    "case",
    [pytest.param(name) for name in sorted(SLACK_MALFORMED)],
)
async def test_signed_but_malformed_slack_request_gets_400(bot: Bot, case: str) -> None:
    content_type, body = SLACK_MALFORMED[case]
    response = await bot.client.post(
        "/slack/events",
        data=body,
        headers={"Content-Type": content_type, **slack_headers(body, SIGNING_SECRET)},
    )
    assert response.status == 400, f"{response.status}: {await response.text()}"


@pytest.mark.parametrize("case", sorted(SLACK_MALFORMED))
async def test_signed_but_malformed_slack_request_changes_nothing(bot: Bot, case: str) -> None:
    """Whatever the status, a malformed Slack body stores and sends nothing."""
    conversation_id, _ = await _conversation_with_root(bot)
    bot.slack.reset_calls()
    before = await row_counts(bot)
    content_type, body = SLACK_MALFORMED[case]
    response = await bot.client.post(
        "/slack/events",
        data=body,
        headers={"Content-Type": content_type, **slack_headers(body, SIGNING_SECRET)},
    )
    assert response.status != 200
    await settle()
    assert await row_counts(bot) == before
    assert outbound_calls(bot) == []
    root_ts = bot.slack.roots(INBOX)[0]["ts"]
    await bot.thread_reply(INBOX, root_ts, "works after garbage")
    sent = await bot.telegram.wait_for("sendMessage")
    assert sent[0].params["text"] == "works after garbage"
    conversation = await bot.services.repo.conversation(conversation_id)
    assert conversation is not None and conversation.owner == AGENT


# -- Slack's published signing vector ------------------------------------------------

DOCS_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
DOCS_TIMESTAMP = 1531420618
DOCS_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


class FixedClock(Clock):
    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now


def docs_body() -> bytes:
    # The file is the body as text with a final newline; Slack signed the body without it.
    return ref_bytes("slack/slash_command_signed_docs_example.txt").removesuffix(b"\n")


def test_slack_docs_signing_vector_verifies_with_the_verifier_bolt_uses() -> None:
    body = docs_body()
    headers = {
        "X-Slack-Request-Timestamp": str(DOCS_TIMESTAMP),
        "X-Slack-Signature": DOCS_SIGNATURE,
    }
    at_the_time = SignatureVerifier(DOCS_SECRET, clock=FixedClock(DOCS_TIMESTAMP + 10))
    assert at_the_time.is_valid_request(body, headers)
    # Our test signer produces exactly Slack's signature for the same input.
    assert slack_headers(body, DOCS_SECRET, DOCS_TIMESTAMP)["X-Slack-Signature"] == DOCS_SIGNATURE
    # One changed byte, another secret, or a time outside 5 minutes: refused.
    assert not at_the_time.is_valid_request(body.replace(b"roadrunner", b"roadrunnex"), headers)
    assert not SignatureVerifier(DOCS_SECRET[:-1] + "6", clock=FixedClock(DOCS_TIMESTAMP)).is_valid(
        body, str(DOCS_TIMESTAMP), DOCS_SIGNATURE
    )
    assert not SignatureVerifier(DOCS_SECRET, clock=FixedClock(DOCS_TIMESTAMP + 301)).is_valid(
        body, str(DOCS_TIMESTAMP), DOCS_SIGNATURE
    )


async def test_the_app_refuses_the_docs_vector_as_stale_and_accepts_it_re_signed(
    tmp_path: Path,
) -> None:
    """The docs example, signed in 2018, is a replay now; signed now it passes verification."""
    bot, stop = await start_bot(tmp_path, env={"SLACK_SIGNING_SECRET": DOCS_SECRET})
    try:
        body = docs_body()
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        replay = {
            "X-Slack-Request-Timestamp": str(DOCS_TIMESTAMP),
            "X-Slack-Signature": DOCS_SIGNATURE,
        }
        response = await bot.client.post("/slack/events", data=body, headers={**form, **replay})
        assert response.status == 401
        fresh = slack_headers(body, DOCS_SECRET)
        response = await bot.client.post("/slack/events", data=body, headers={**form, **fresh})
        # Verified: bolt goes on to routing (no listener for /webhook-collect: 404), not 401.
        assert response.status != 401
        assert response.status < 500
    finally:
        await stop()


# -- odd but well-signed payloads: 400, never 500 ---------------------------------

GENERIC_EDGE_CASES: dict[str, bytes] = {
    "sent-at-year-1-east-of-utc": generic_body(sent_at="0001-01-01T00:00:00+14:00"),
    "sent-at-year-9999-west-of-utc": generic_body(sent_at="9999-12-31T23:59:59-12:00"),
    "sent-at-z-suffix": generic_body(sent_at="2026-01-05T10:00:00Z"),
    "text-with-nul-and-emoji": generic_body(text="nul \u0000 and \U0001f600"),
}
GENERIC_EDGE_OK = {"sent-at-z-suffix", "text-with-nul-and-emoji"}


@pytest.mark.parametrize("case", sorted(GENERIC_EDGE_CASES))
async def test_generic_payload_edge_cases_get_200_or_400(bot: Bot, case: str) -> None:
    body = GENERIC_EDGE_CASES[case]
    response = await bot.post_raw("/webhooks/generic", body, generic_headers(body, GENERIC_SECRET))
    expected = 200 if case in GENERIC_EDGE_OK else 400
    assert response.status == expected, f"{response.status}: {await response.text()}"
    stored = (await row_counts(bot))["CustomerMessage"]
    assert stored == (1 if expected == 200 else 0)


def _telegram_with_sender(**sender: Any) -> bytes:
    return telegram_body(**{"from": {"id": 4242, "is_bot": False, **sender}})


TELEGRAM_EDGE_CASES: dict[str, bytes] = {
    "from-is-a-string": telegram_body(**{"from": "Ada"}),
    "from-is-a-list": telegram_body(**{"from": [4242]}),
    "first-name-is-a-number": _telegram_with_sender(first_name=7),
    "username-is-an-object": _telegram_with_sender(first_name="Ada", username={"x": 1}),
    "text-is-an-object": telegram_body(text={"bold": "hi"}),
    "date-overflows-time-t": telegram_body(date=10**20),
    "date-year-out-of-range": telegram_body(date=2**40),
    "chat-id-is-a-float": telegram_body(chat={"id": 12.5, "type": "private"}),
}


@pytest.mark.parametrize("case", sorted(TELEGRAM_EDGE_CASES))
async def test_telegram_payload_edge_cases_get_400(bot: Bot, case: str) -> None:
    body = TELEGRAM_EDGE_CASES[case]
    response = await bot.post_raw("/webhooks/telegram", body, telegram_headers(TELEGRAM_SECRET))
    await assert_error_json(response, 400)
    assert (await row_counts(bot))["CustomerMessage"] == 0
    await assert_good_generic_request_works(bot)


# -- PostgreSQL is stricter than SQLite ---------------------------------------------


async def _admin(url: str, statement: str) -> None:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _run(work: Coroutine[Any, Any, None]) -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, work).result()


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A database of this module's own (others use `test` concurrently), dropped after."""
    base = require_postgres()
    name = f"relaydesk_badinput_{secrets.token_hex(4)}"
    _run(_admin(base, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        _run(_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


POSTGRES_CASES: dict[str, dict[str, Any]] = {
    "nul-in-text": {"text": "before\u0000after"},
    "conversation-id-of-300-chars": {"conversation_id": "c" * 300},
    "message-id-of-300-chars": {"message_id": "m" * 300},
    "author-name-of-300-chars": {"author": {"id": "cust-1", "name": "n" * 300}},
}


@pytest.mark.parametrize("case", sorted(POSTGRES_CASES))
async def test_generic_webhook_on_postgresql_answers_200_or_400(
    tmp_path: Path, postgres_url: str, case: str
) -> None:
    bot, stop = await start_bot(tmp_path, database_url=postgres_url, env=_quiet_summary())
    try:
        body = generic_body(conversation_id=f"pg-{case}", message_id=f"pg-{case}")
        data = {**json.loads(body), **POSTGRES_CASES[case]}
        body = json.dumps(data).encode()
        response = await bot.post_raw(
            "/webhooks/generic", body, generic_headers(body, GENERIC_SECRET)
        )
        assert response.status in (200, 400), f"{response.status}: {await response.text()}"
        good = await bot.from_generic(f"pg-good-{case}", f"pg-good-{case}", "fine")
        assert good.status == 200
    finally:
        await stop()


def _quiet_summary() -> dict[str, str]:
    return {"SUMMARY_TIME": "23:59"}


# -- fuzzing the webhooks ------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
offsets = st.sampled_from(
    [UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12)), None]
)
iso_times = st.builds(lambda at, tz: at.replace(tzinfo=tz).isoformat(), st.datetimes(), offsets)
names = st.text(max_size=40)
DELETE = object()


def mutated(
    valid: st.SearchStrategy[dict[str, Any]], paths: list[str]
) -> st.SearchStrategy[dict[str, Any]]:
    """A valid payload with up to two fields deleted or replaced by any JSON value.

    Starting from valid payloads lets the fuzzer get past the first check and
    reach the deeper parsing and storing code.
    """

    def apply(payload: dict[str, Any], changes: list[tuple[str, Any]]) -> dict[str, Any]:
        for path, value in changes:
            *parents, leaf = path.split(".")
            target: Any = payload
            for key in parents:
                target = target.get(key) if isinstance(target, dict) else None
            if not isinstance(target, dict):
                continue
            if value is DELETE:
                target.pop(leaf, None)
            else:
                target[leaf] = value
        return payload

    change = st.tuples(
        st.sampled_from(paths), st.one_of(st.just(DELETE), json_scalars, json_values)
    )
    return st.builds(apply, valid, st.lists(change, max_size=2))


generic_valid = st.fixed_dictionaries(
    {
        "conversation_id": st.text(min_size=1, max_size=300),
        "message_id": st.text(min_size=1, max_size=300),
        "author": st.fixed_dictionaries(
            {"id": st.text(min_size=1, max_size=40), "name": st.text(min_size=1, max_size=300)}
        ),
        "text": st.text(max_size=300),
        "sent_at": iso_times,
    }
)
generic_payloads = mutated(
    generic_valid,
    ["conversation_id", "message_id", "author", "author.id", "author.name", "text", "sent_at"],
)

telegram_user = st.fixed_dictionaries(
    {"id": st.integers(min_value=-(2**52), max_value=2**52)},
    optional={
        "is_bot": st.booleans(),
        "first_name": names,
        "last_name": names,
        "username": names,
        "title": names,
        "type": st.sampled_from(["private", "group", "supergroup", "channel"]),
    },
)
telegram_valid = st.fixed_dictionaries(
    {
        "update_id": st.integers(min_value=0, max_value=2**31),
        "message": st.fixed_dictionaries(
            {
                "message_id": st.integers(min_value=1, max_value=2**31),
                "date": st.integers(min_value=-(2**40), max_value=2**40),
                "chat": telegram_user,
            },
            optional={
                "from": telegram_user,
                "text": st.text(max_size=300),
                "caption": st.text(max_size=50),
                "photo": st.lists(st.fixed_dictionaries({"file_id": names}), max_size=2),
                "sticker": st.fixed_dictionaries({"file_id": names}),
            },
        ),
    }
)
telegram_payloads = mutated(
    telegram_valid,
    [
        "update_id",
        "message",
        "message.message_id",
        "message.date",
        "message.chat",
        "message.chat.id",
        "message.from",
        "message.from.first_name",
        "message.from.last_name",
        "message.from.username",
        "message.text",
        "message.caption",
    ],
)


def _encode(value: Any) -> bytes:
    return json.dumps(value, allow_nan=False).encode()


FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


async def fuzz_webhook(
    bot: Bot, path: str, payloads: st.SearchStrategy[Any], sign: Callable[[bytes], dict[str, str]]
) -> None:
    """Post hypothesis' bodies from a worker thread into the app on this loop.

    Hypothesis drives (and shrinks) synchronously in the thread; each example is
    posted on the test's event loop with `run_coroutine_threadsafe`.
    """
    loop = asyncio.get_running_loop()
    statuses: set[int] = set()
    bodies = st.one_of(
        payloads.map(_encode),
        payloads.map(_encode),
        payloads.map(_encode),
        json_values.map(_encode),
        st.binary(max_size=64),
    )

    async def post_one(body: bytes) -> None:
        before = await row_counts(bot)
        response = await bot.post_raw(path, body, sign(body))
        text = await response.text()
        assert response.status in (200, 400), f"{response.status} for {body[:300]!r}: {text}"
        statuses.add(response.status)
        if response.status == 400:
            assert isinstance(json.loads(text).get("error"), str), text
            assert await row_counts(bot) == before, f"stored something for {body[:300]!r}"

    @FUZZ
    @given(bodies)
    def check(body: bytes) -> None:
        asyncio.run_coroutine_threadsafe(post_one(body), loop).result(timeout=5)

    await asyncio.to_thread(check)
    assert statuses == {200, 400}, "the fuzzer should reach both the accept and refuse paths"
    # Still serving: a good message is accepted and stored (its root may queue behind the
    # fuzzed conversations: Slack posts are paced at about one per second per channel).
    response = await bot.from_generic("after-fuzz", "after-fuzz-1", "alive after fuzzing")
    assert response.status == 200
    async with bot.services.db.session() as session:
        texts = [m.text for m in (await session.execute(select(CustomerMessage))).scalars()]
    assert "alive after fuzzing" in texts
    health = await bot.client.get("/healthz")
    assert health.status == 200


async def test_fuzzed_generic_webhook_answers_200_or_400(bot: Bot) -> None:
    await fuzz_webhook(
        bot, "/webhooks/generic", generic_payloads, lambda b: generic_headers(b, GENERIC_SECRET)
    )


async def test_fuzzed_telegram_webhook_answers_200_or_400(bot: Bot) -> None:
    await fuzz_webhook(
        bot, "/webhooks/telegram", telegram_payloads, lambda b: telegram_headers(TELEGRAM_SECRET)
    )
