"""Every route driven with arbitrary bytes, headers, queries and forms: never a 5xx but 503.

Hypothesis drives each route from a worker thread; every example is sent to the
real app on the test's loop. Signed variants get past the signature checks, so
the parsers behind them are reached too. Only 503 (a dependency unavailable) may
be a 5xx, and nothing here makes a dependency unavailable.
"""

from __future__ import annotations

import asyncio
import json
import string
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness import (
    GENERIC_SECRET,
    META_SECRET,
    SIGNING_SECRET,
    TELEGRAM_SECRET,
    X_SECRET,
    Bot,
    start_bot,
)
from tests.signing import (
    generic_headers,
    meta_headers,
    slack_headers,
    telegram_headers,
    x_headers,
)

API_TOKEN = "fuzz-api-token"
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
Sign = Callable[[bytes], Mapping[str, str]]
SIGNERS: dict[str, Sign] = {
    "/slack/events": lambda body: slack_headers(body, SIGNING_SECRET),
    "/webhooks/telegram": lambda body: telegram_headers(TELEGRAM_SECRET),
    "/webhooks/meta": lambda body: meta_headers(body, META_SECRET),
    "/webhooks/whatsapp": lambda body: meta_headers(body, META_SECRET),
    "/webhooks/x": lambda body: x_headers(body, X_SECRET),
    "/webhooks/generic": lambda body: generic_headers(body, GENERIC_SECRET),
}
POST_ROUTES = [*SIGNERS, "/webhooks/nowhere"]
GET_ROUTES = ["/healthz", "/metrics", "/api/stats", "/api/moments", *POST_ROUTES]

# Header values as an attacker sends them: any latin-1 text (what HTTP carries).
header_values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=80,
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)


@pytest.fixture
async def bot(tmp_path: Path) -> Any:
    running, stop = await start_bot(tmp_path, env={"API_TOKEN": API_TOKEN})
    try:
        yield running
    finally:
        await stop()


def _ok(status: int) -> bool:
    return status < 500 or status == 503


async def _drive(bot: Bot, strategy: st.SearchStrategy[Any], send: Any) -> set[int]:
    """Run hypothesis in a thread; each example is sent on this loop by `send`."""
    loop = asyncio.get_running_loop()
    seen: set[int] = set()

    async def one(example: Any) -> None:
        status, what = await send(example)
        assert _ok(status), f"{status} for {what}"
        seen.add(status)

    @FUZZ
    @given(strategy)
    def check(example: Any) -> None:
        asyncio.run_coroutine_threadsafe(one(example), loop).result(timeout=10)

    await asyncio.to_thread(check)
    return seen


async def test_any_bytes_and_headers_on_every_post_route(bot: Bot) -> None:
    requests = st.tuples(
        st.sampled_from(POST_ROUTES),
        st.binary(max_size=200),
        st.dictionaries(
            st.sampled_from(
                [
                    "X-Slack-Signature",
                    "X-Slack-Request-Timestamp",
                    "X-Hub-Signature-256",
                    "X-Telegram-Bot-Api-Secret-Token",
                    "x-twitter-webhooks-signature",
                    "X-Relaydesk-Signature",
                    "Content-Type",
                    "X-Slack-Retry-Num",
                ]
            ),
            header_values,
            max_size=4,
        ),
    )

    async def send(example: tuple[str, bytes, dict[str, str]]) -> tuple[int, str]:
        path, body, headers = example
        response = await bot.client.post(path, data=body, headers=headers)
        return response.status, f"POST {path} {headers!r} {body[:100]!r}"

    await _drive(bot, requests, send)
    assert (await bot.client.get("/healthz")).status == 200


async def test_signed_arbitrary_bodies_reach_the_parsers(bot: Bot) -> None:
    """Signed correctly, so only the parsers stand between the body and the app."""
    bodies = st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda value: json.dumps(value).encode()),
        st.text(max_size=60).map(lambda text: text.encode("utf-8", "surrogatepass")),
    )
    content_types = st.sampled_from(
        ["application/json", "application/x-www-form-urlencoded", "text/plain", ""]
    )
    requests = st.tuples(st.sampled_from(list(SIGNERS)), bodies, content_types)

    async def send(example: tuple[str, bytes, str]) -> tuple[int, str]:
        path, body, content_type = example
        headers = {**SIGNERS[path](body)}
        if content_type:
            headers["Content-Type"] = content_type
        response = await bot.client.post(path, data=body, headers=headers)
        return response.status, f"POST {path} ({content_type}) {body[:120]!r}"

    await _drive(bot, requests, send)


async def test_signed_slack_forms_with_any_payload(bot: Bot) -> None:
    """Interactivity and slash commands: form fields of any shape, signed."""
    fields = st.dictionaries(
        st.sampled_from(["payload", "command", "text", "user_id", "channel_id", "trigger_id"]),
        st.one_of(
            st.text(max_size=40),
            json_values.map(json.dumps),
            st.sampled_from(
                [
                    '{"type": "block_actions", "actions": [{"action_id": "relaydesk.claim",'
                    ' "value": "999999"}], "user": {"id": "U0AGENT01"}}',
                    '{"type": "block_actions", "actions": [{"action_id": "relaydesk.ack",'
                    ' "value": "x"}], "user": {"id": "U0AGENT01"}, "container": {}}',
                    '{"type": "view_submission", "view": {"callback_id":'
                    ' "relaydesk.handoff_modal", "private_metadata": "[]"}}',
                    '{"type": "message_action", "callback_id": "relaydesk.handoff"}',
                ]
            ),
        ),
        min_size=1,
        max_size=4,
    )

    async def send(form: dict[str, str]) -> tuple[int, str]:
        body = urlencode(form).encode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            **slack_headers(body, SIGNING_SECRET),
        }
        response = await bot.client.post("/slack/events", data=body, headers=headers)
        return response.status, f"form {form!r}"

    await _drive(bot, fields, send)


async def test_any_query_on_every_get_route(bot: Bot) -> None:
    queries = st.tuples(
        st.sampled_from(GET_ROUTES),
        st.dictionaries(
            st.sampled_from(
                [
                    "since",
                    "until",
                    "network",
                    "team",
                    "hub.mode",
                    "hub.verify_token",
                    "hub.challenge",
                    "crc_token",
                ]
            ),
            st.one_of(
                st.text(alphabet=string.printable, max_size=40),
                st.sampled_from(
                    [
                        "0001-01-01T00:00:00+00:00",
                        "9999-12-31T23:59:59+00:00",
                        "9999-12-31T23:59:59-14:00",
                        "0001-01-01T00:00:00+14:00",
                        "2026-13-45",
                        "subscribe",
                    ]
                ),
            ),
            max_size=4,
        ),
        st.booleans(),
    )

    async def send(example: tuple[str, dict[str, str], bool]) -> tuple[int, str]:
        path, query, authorised = example
        headers = {"Authorization": f"Bearer {API_TOKEN}"} if authorised else {}
        response = await bot.client.get(path, params=query, headers=headers)
        return response.status, f"GET {path} {query!r}"

    await _drive(bot, queries, send)


@pytest.mark.parametrize("path", list(SIGNERS))
async def test_deeply_nested_json_is_a_400(bot: Bot, path: str) -> None:
    body = b"[" * 10_000 + b"]" * 10_000
    if path == "/slack/events":
        body = b'{"type": "event_callback", "event": ' + body + b"}"
    response = await bot.client.post(
        path, data=body, headers={"Content-Type": "application/json", **SIGNERS[path](body)}
    )
    assert response.status == 400, await response.text()
    assert "error" in json.loads(await response.text())


async def test_undecodable_slack_body_and_bad_signature_headers_are_refused(bot: Bot) -> None:
    for headers, body in (
        ({"X-Slack-Signature": "v0=zz", "X-Slack-Request-Timestamp": "1e9"}, b"\xff\xfe\x00"),
        ({"X-Slack-Signature": "\xe9", "X-Slack-Request-Timestamp": "-1"}, b"token=1"),
        ({}, b"\x80\x81payload=%ff"),
    ):
        response = await bot.client.post("/slack/events", data=body, headers=headers)
        assert response.status == 401, (headers, response.status)
    body = b"\xff\xfe payload"
    signed = {"Content-Type": "application/x-www-form-urlencoded"}
    signed.update(slack_headers(body, SIGNING_SECRET))
    response = await bot.client.post("/slack/events", data=body, headers=signed)
    assert response.status == 400, response.status


async def test_lone_surrogates_and_nuls_are_not_a_500(bot: Bot) -> None:
    generic = (
        b'{"conversation_id": "c\\ud800", "message_id": "m1\\u0000", "author": {"id": "a",'
        b' "name": "\\udfff"}, "text": "hi \\ud83d", "sent_at": "2026-12-01T10:00:00Z"}'
    )
    response = await bot.post_raw(
        "/webhooks/generic", generic, generic_headers(generic, GENERIC_SECRET)
    )
    assert response.status in (200, 400), await response.text()
    telegram = (
        b'{"update_id": 1, "message": {"message_id": 1, "date": 1764583200, "chat": {"id": 5,'
        b' "type": "private", "first_name": "\\ud800"}, "text": "x\\udc00\\u0000y"}}'
    )
    response = await bot.post_raw("/webhooks/telegram", telegram, telegram_headers(TELEGRAM_SECRET))
    assert response.status in (200, 400), await response.text()
    assert (await bot.client.get("/healthz")).status == 200


@pytest.mark.parametrize(
    "since,until",
    [
        ("0001-01-01T00:00:00+00:00", None),
        ("0001-01-01T00:00:00+14:00", "0001-01-02T00:00:00+00:00"),
        ("2026-01-01T00:00:00+00:00", "9999-12-31T23:59:59-14:00"),
        ("99999-01-01T00:00:00+00:00", None),
    ],
)
async def test_out_of_range_stats_windows_are_a_400(
    bot: Bot, since: str, until: str | None
) -> None:
    params = {"since": since, **({"until": until} if until else {})}
    response = await bot.client.get(
        "/api/stats", params=params, headers={"Authorization": f"Bearer {API_TOKEN}"}
    )
    assert response.status in (200, 400), await response.text()


@pytest.mark.parametrize("action", ["relaydesk.claim", "relaydesk.resolve", "relaydesk.escalate"])
async def test_a_button_naming_a_missing_conversation_is_answered(bot: Bot, action: str) -> None:
    response = await bot.click(action, "999999")
    assert response.status == 200
    told = await bot.until(
        lambda: [t for t in bot.ephemerals_for() if "no longer exists" in t],
        what="the clicker told",
    )
    assert told == ["Conversation #999999 no longer exists."]


def _claim_from(team: str, conversation: str, app: str = "A0001") -> dict[str, Any]:
    return {
        "type": "block_actions",
        "team": {"id": team, "domain": "elsewhere"},
        "user": {"id": "U0AGENT01", "team_id": team},
        "api_app_id": app,
        "container": {"type": "message", "message_ts": "1.0", "channel_id": "C0INBOX01"},
        "channel": {"id": "C0INBOX01"},
        "actions": [{"action_id": "relaydesk.claim", "value": conversation, "type": "button"}],
    }


async def test_interactivity_from_another_workspace_is_refused(bot: Bot) -> None:
    response = await bot.interact(_claim_from("T0ELSEWHERE", "424242"))
    assert response.status == 403
    assert "T0001" in (await response.json())["error"]
    await asyncio.sleep(0.3)
    assert bot.ephemerals_for() == []  # nothing ran
    ours = await bot.interact(_claim_from("T0001", "424242"))
    assert ours.status == 200
    await bot.until(lambda: bot.ephemerals_for(), what="our own workspace's click answered")


async def test_interactivity_for_another_app_is_refused(bot: Bot) -> None:
    """Our app is the one the token's bot belongs to (bots.info); another app's click
    (signed with a leaked or shared secret) runs nothing."""
    response = await bot.interact(_claim_from("T0001", "424242", app="A0OTHERAPP"))
    assert response.status == 403
    assert "A0OTHERAPP" in (await response.json())["error"]
    assert bot.ephemerals_for() == []
    ours = await bot.interact(_claim_from("T0001", "424242"))
    assert ours.status == 200
    await bot.until(lambda: bot.ephemerals_for(), what="our own app's click answered")


@pytest.mark.parametrize(
    "metadata",
    [
        "[]",
        "{}",
        '{"conversation": "x"}',
        '{"conversation": 1e400}',
        "[" * 5000 + "]" * 5000,
        '{"conversation": 99999999999999999999, "channel": 5}',
        "not json",
    ],
)
async def test_a_handoff_form_with_odd_metadata_is_refused_on_the_form(
    bot: Bot, metadata: str
) -> None:
    response = await bot.interact(
        {
            "type": "view_submission",
            "team": {"id": "T0001"},
            "user": {"id": "U0AGENT01", "team_id": "T0001"},
            "view": {
                "id": "V0001",
                "type": "modal",
                "callback_id": "relaydesk.handoff_modal",
                "private_metadata": metadata,
                "state": {"values": {"team": {"team": {"selected_option": {"value": "sales"}}}}},
            },
        }
    )
    assert response.status == 200, await response.text()
    assert await response.json() == {
        "response_action": "errors",
        "errors": {"team": "This form is not ours."},
    }
