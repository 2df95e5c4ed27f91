"""`/escalate`, `/oncall` and the ack / escalate buttons through signed requests.

A fresh bolt `AsyncApp` per test with only `handlers.oncall.register` on it, as
the bot wires it; every request is signed like Slack signs it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from sqlalchemy import select

from bot.blocks.escalation import NOBODY_HOW_TO
from bot.services.rotation import COVER_USAGE
from handlers import oncall
from storage.models import OncallOverride
from tests.escalation.support import (
    AGENT,
    INBOX,
    MANAGER,
    T0,
    A,
    B,
    C,
    Env,
    date_tag,
    minutes,
    running,
)
from tests.fakes.slack_api import permalink
from tests.signing import slack_command_body, slack_form, slack_headers

SECRET = "test-signing-secret"


@dataclass
class Bolt:
    env: Env
    app: AsyncApp

    async def command(self, name: str, text: str, user: str = AGENT) -> BoltResponse:
        body = slack_command_body(command=name, text=text, user_id=user, channel_id=INBOX)
        return await self._dispatch(body, "application/x-www-form-urlencoded")

    async def click(
        self, action_id: str, value: str, *, user: str, channel: str, message_ts: str = "1.000001"
    ) -> BoltResponse:
        payload = {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower(), "team_id": "T0001"},
            "api_app_id": "A0001",
            "token": "verification-token",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
            "trigger_id": "1.2.3",
            "team": {"id": "T0001", "domain": "example"},
            "channel": {"id": channel, "name": "dm"},
            "message": {"type": "message", "ts": message_ts, "text": "page"},
            "response_url": "https://hooks.slack.com/actions/T0001/1/fake",
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": "relaydesk.escalation",
                    "value": value,
                    "type": "button",
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        return await self._dispatch(slack_form(payload), "application/x-www-form-urlencoded")

    async def _dispatch(self, body: bytes, content_type: str) -> BoltResponse:
        headers: dict[str, str | Sequence[str]] = {
            "content-type": content_type,
            **slack_headers(body, SECRET),
        }
        request = AsyncBoltRequest(body=body.decode(), headers=headers)
        return await self.app.async_dispatch(request)

    async def ephemerals(self, count: int) -> list[dict[str, Any]]:
        """Wait until `count` ephemerals were posted (lazy listeners run after the ack)."""
        for _ in range(250):
            found = self.env.slack.ephemerals()
            if len(found) >= count:
                await asyncio.sleep(0.05)  # and no more than that
                return self.env.slack.ephemerals()
            await asyncio.sleep(0.02)
        raise AssertionError(f"expected {count} ephemerals, got {self.env.slack.ephemerals()}")


def answer(response: BoltResponse) -> str:
    """The ack's text: Slack shows a plain-text body, or the `text` of a JSON one."""
    assert response.status == 200
    if response.headers.get("content-type", [""])[0].startswith("application/json"):
        return str(json.loads(response.body)["text"])
    return response.body


@pytest.fixture
async def bolt(tmp_path: Path) -> AsyncIterator[Bolt]:
    async with running(f"sqlite+aiosqlite:///{tmp_path / 'esc.db'}") as env:
        app = AsyncApp(
            client=env.services.slack.client,
            signing_secret=SECRET,
            process_before_response=True,
            raise_error_for_unhandled_request=False,
        )
        oncall.register(app, env.services)
        yield Bolt(env, app)


# -- /escalate ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "Which conversation? "),
        ("#99", "There is no conversation #99."),
        ("nonsense", "`nonsense` is not a conversation. "),
        (
            f"https://example.slack.com/archives/{INBOX}/p1700000000000001",
            "That message is not part of a Relaydesk conversation. ",
        ),
    ],
)
async def test_escalate_explains_a_missing_or_unknown_reference(
    bolt: Bolt, text: str, expected: str
) -> None:
    await bolt.env.conversation()
    response = await bolt.command("/escalate", text)
    message = answer(response)
    assert message.startswith(expected)
    assert message.endswith(oncall.ESCALATE_USAGE)
    await asyncio.sleep(0.1)
    assert bolt.env.dm_posts() == []
    assert await bolt.env.pages(1) == []


async def test_escalate_by_number_pages_level_one_with_reason_and_who(bolt: Bolt) -> None:
    conversation = await bolt.env.conversation()
    assert conversation.thread_ts is not None
    bolt.env.clock.now = minutes(3)
    response = await bolt.command("/escalate", "#1 VIP customer, order lost")
    assert answer(response) == ""
    ephemerals = await bolt.ephemerals(1)
    assert [(e["channel"], e["user"], e["text"]) for e in ephemerals] == [
        (INBOX, AGENT, f"Paged <@{A}> for #1.")
    ]
    assert await bolt.env.dmed() == [A]
    assert bolt.env.dm_posts()[0]["blocks"][0]["text"]["text"] == (
        ":rotating_light: *Manual escalation, level 1* · *#1* · Telegram · *Ada* (@ada)\n"
        "Waiting for an answer for *3 min*.\n"
        f"Escalated by <@{AGENT}>: VIP customer, order lost\n"
        f"<{permalink(INBOX, conversation.thread_ts)}|Open the conversation thread>"
    )
    rows = await bolt.env.escalations.store.pages_of(1)
    assert [(r.level, r.kind, r.target_user, r.reason, r.by_user) for r in rows] == [
        (1, "manual", A, "VIP customer, order lost", AGENT)
    ]


@pytest.mark.parametrize("form", ["plain", "escaped", "thread reply"])
async def test_escalate_by_slack_link(bolt: Bolt, form: str) -> None:
    conversation = await bolt.env.conversation()
    assert conversation.thread_ts is not None
    link = permalink(INBOX, conversation.thread_ts)
    if form == "escaped":
        link = f"<{link}>"
    elif form == "thread reply":
        reply = bolt.env.slack.add_message(INBOX, "a note", thread_ts=conversation.thread_ts)
        link = permalink(INBOX, reply["ts"], conversation.thread_ts)
    assert answer(await bolt.command("/escalate", link)) == ""
    ephemerals = await bolt.ephemerals(1)
    assert [e["text"] for e in ephemerals] == [f"Paged <@{A}> for #1."]
    assert await bolt.env.pages(1) == [(1, "manual", A)]


async def test_escalate_twice_tells_who_escalated_first(bolt: Bolt) -> None:
    await bolt.env.conversation()
    await bolt.command("/escalate", "#1 first", user=AGENT)
    await bolt.ephemerals(1)
    await bolt.command("/escalate", "1 second", user=C)
    ephemerals = await bolt.ephemerals(2)
    assert ephemerals[1]["user"] == C
    assert ephemerals[1]["text"] == (
        f"#1 was already escalated to <@{A}> by <@{AGENT}> {date_tag(T0)}."
    )
    assert await bolt.env.dmed() == [A]


async def test_escalate_button_on_the_root(bolt: Bolt) -> None:
    root = (await bolt.env.conversation()).thread_ts or ""
    response = await bolt.click(
        "relaydesk.escalate", "1", user=AGENT, channel=INBOX, message_ts=root
    )
    assert response.status == 200
    ephemerals = await bolt.ephemerals(1)
    assert [(e["user"], e["text"]) for e in ephemerals] == [(AGENT, f"Paged <@{A}> for #1.")]
    rows = await bolt.env.escalations.store.pages_of(1)
    assert [(r.kind, r.target_user, r.reason, r.by_user) for r in rows] == [
        ("manual", A, None, AGENT)
    ]


# -- ack --------------------------------------------------------------------------


async def test_ack_records_once_and_tells_later_clickers_who_acked(bolt: Bolt) -> None:
    conversation = await bolt.env.conversation()
    assert await bolt.env.tick(minutes(30)) == 1
    dm = await bolt.env.dm_channel(A)
    bolt.env.clock.now = minutes(33)

    first = await bolt.click("relaydesk.ack", "1", user=A, channel=dm)
    assert first.status == 200
    await bolt.ephemerals(1)
    retried = await bolt.click("relaydesk.ack", "1", user=A, channel=dm)  # Slack retry
    assert retried.status == 200
    await bolt.ephemerals(2)
    bolt.env.clock.now = minutes(40)
    await bolt.click(
        "relaydesk.ack", "1", user=B, channel=INBOX, message_ts=conversation.thread_ts or ""
    )
    ephemerals = await bolt.ephemerals(3)

    assert [(e["channel"], e["user"], e["text"]) for e in ephemerals] == [
        (dm, A, "You acknowledged #1: it will not escalate further."),
        (dm, A, "You already acknowledged #1."),
        (INBOX, B, f"<@{A}> already acknowledged #1 {date_tag(minutes(33))}."),
    ]
    assert bolt.env.thread_texts(conversation) == [
        f"<@{A}>: escalation level 1 for #1",
        f":ok_hand: <@{A}> acknowledged the escalation of #1; it will not be escalated further.",
    ]
    rows = await bolt.env.escalations.store.pages_of(1)
    assert [(r.acked_by, r.acked_at) for r in rows] == [(A, minutes(33))]
    assert await bolt.env.tick(minutes(120)) == 0
    assert await bolt.env.dmed() == [A]


async def test_ack_without_an_escalation_says_so(bolt: Bolt) -> None:
    root = (await bolt.env.conversation()).thread_ts or ""
    await bolt.click("relaydesk.ack", "1", user=A, channel=INBOX, message_ts=root)
    await bolt.click("relaydesk.ack", "7", user=A, channel=INBOX, message_ts=root)
    await bolt.click("relaydesk.ack", "x", user=A, channel=INBOX, message_ts=root)
    await bolt.click("relaydesk.ack", "9" * 30, user=A, channel=INBOX, message_ts=root)
    ephemerals = await bolt.ephemerals(4)
    assert sorted(e["text"] for e in ephemerals) == [
        "#1 has no escalation to acknowledge.",
        "Conversation #7 no longer exists.",
        f"Conversation #{'9' * 30} no longer exists.",
        "This button does not belong to a Relaydesk conversation.",
    ]


# -- /oncall ----------------------------------------------------------------------


def at(day: int, hour: int = 9) -> str:
    return date_tag(datetime(2026, 3, day, hour, tzinfo=UTC))


async def test_oncall_shows_now_until_when_and_the_next_three_shifts(bolt: Bolt) -> None:
    assert answer(await bolt.command("/oncall", "")) == (
        f":pager: On call now: <@{A}> until {at(9)}\n"
        "Next:\n"
        f"• <@{B}> {at(9)} → {at(16)}\n"
        f"• <@{C}> {at(16)} → {at(23)}\n"
        f"• <@{A}> {at(23)} → {at(30)}\n"
        f"Last escalation level: <@{MANAGER}>"
    )


@pytest.mark.parametrize("mention", [f"<@{B}|bob>", f"<@{B}>", B])
async def test_oncall_cover_records_an_override_that_wins(bolt: Bolt, mention: str) -> None:
    response = await bolt.command("/oncall", f"cover {mention} 2h 30m", user=A)
    assert response.status == 200
    body = json.loads(response.body)
    assert body == {
        "text": f":pager: <@{B}> is on call from {date_tag(T0)} "
        f"until {date_tag(T0 + timedelta(hours=2, minutes=30))} (cover).",
        "response_type": "in_channel",
    }
    async with bolt.env.services.db.session() as session:
        rows = list((await session.execute(select(OncallOverride))).scalars())
    assert [(r.user_id, r.starts_at, r.ends_at, r.created_by, r.created_at) for r in rows] == [
        (B, T0, T0 + timedelta(hours=2, minutes=30), A, T0)
    ]
    end = date_tag(T0 + timedelta(hours=2, minutes=30))
    assert answer(await bolt.command("/oncall", "")) == (
        f":pager: On call now: <@{B}> (covering) until {end}\n"
        "Next:\n"
        f"• <@{A}> {end} → {at(9)}\n"
        f"• <@{B}> {at(9)} → {at(16)}\n"
        f"• <@{C}> {at(16)} → {at(23)}\n"
        f"Last escalation level: <@{MANAGER}>"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cover", COVER_USAGE),
        (f"cover <@{B}>", COVER_USAGE),
        (
            "cover bob 2h",
            f"`bob` is not a Slack user: mention them with @ or give their "
            f"member ID (U…). {COVER_USAGE}",
        ),
        (f"cover {B} soon", f"'soon' is not a duration; try 2h, 90m or 1d. {COVER_USAGE}"),
        ("help", oncall.ONCALL_USAGE),
    ],
)
async def test_oncall_cover_usage(bolt: Bolt, text: str, expected: str) -> None:
    assert answer(await bolt.command("/oncall", text)) == expected
    async with bolt.env.services.db.session() as session:
        assert list((await session.execute(select(OncallOverride))).scalars()) == []


async def test_oncall_with_nobody_configured(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'esc.db'}"
    async with running(url, {"ONCALL_USERS": "", "ESCALATION_MANAGER": ""}) as env:
        app = AsyncApp(
            client=env.services.slack.client,
            signing_secret=SECRET,
            process_before_response=True,
        )
        oncall.register(app, env.services)
        text = answer(await Bolt(env, app).command("/oncall", ""))
    assert text == f":pager: Nobody is on call right now ({date_tag(T0)}).\n{NOBODY_HOW_TO}"


# -- authority --------------------------------------------------------------------


async def _overrides(bolt: Bolt) -> list[OncallOverride]:
    async with bolt.env.services.db.session() as session:
        return list((await session.execute(select(OncallOverride))).scalars())


async def test_oncall_cover_only_by_the_rotations_keepers(bolt: Bolt) -> None:
    refused = answer(await bolt.command("/oncall", f"cover <@{B}> 30d", user=AGENT))
    assert refused == (
        "Only the people in ONCALL_USERS, ESCALATION_MANAGER or ONCALL_ADMINS may change "
        f"the rotation (<@{A}>, <@{B}>, <@{C}>, <@{MANAGER}>). Ask one of them, or an admin "
        "to add you to ONCALL_ADMINS."
    )
    assert await _overrides(bolt) == []
    by_manager = json.loads((await bolt.command("/oncall", f"cover <@{B}> 1h", user=MANAGER)).body)
    assert by_manager["response_type"] == "in_channel"
    assert [r.created_by for r in await _overrides(bolt)] == [MANAGER]


async def test_oncall_admins_may_cover_too(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'esc.db'}"
    async with running(url, {"ONCALL_ADMINS": AGENT}) as env:
        app = AsyncApp(
            client=env.services.slack.client, signing_secret=SECRET, process_before_response=True
        )
        oncall.register(app, env.services)
        bolt = Bolt(env, app)
        text = answer(await bolt.command("/oncall", f"cover <@{C}> 2h", user=AGENT))
        assert text.startswith(f":pager: <@{C}> is on call from ")
        assert [(r.user_id, r.created_by) for r in await _overrides(bolt)] == [(C, AGENT)]


async def test_oncall_cover_only_for_a_person_slack_knows(bolt: Bolt) -> None:
    bolt.env.slack.unknown_users.add("U0NOBODY1")
    text = answer(await bolt.command("/oncall", "cover U0NOBODY1 30d", user=A))
    assert text == "`U0NOBODY1` is not an active person in this workspace: nobody to put on call."
    assert await _overrides(bolt) == []


async def test_ack_only_by_the_paged_person_oncall_users_or_the_manager(bolt: Bolt) -> None:
    root = (await bolt.env.conversation()).thread_ts or ""
    assert await bolt.env.tick(minutes(31)) == 1
    await bolt.click("relaydesk.ack", "1", user=AGENT, channel=INBOX, message_ts=root)
    [refusal] = await bolt.ephemerals(1)
    assert refusal["text"] == (
        f"Only the person paged for #1 (<@{A}>), the people in ONCALL_USERS or the "
        "ESCALATION_MANAGER may acknowledge it."
    )
    rows = await bolt.env.escalations.store.pages_of(1)
    assert [r.acked_by for r in rows] == [None]
    await bolt.click("relaydesk.ack", "1", user=MANAGER, channel=INBOX, message_ts=root)
    await bolt.ephemerals(2)
    rows = await bolt.env.escalations.store.pages_of(1)
    assert [r.acked_by for r in rows] == [MANAGER]


async def test_a_button_acts_only_on_the_conversation_of_its_message(bolt: Bolt) -> None:
    first = await bolt.env.conversation("c1")
    second = await bolt.env.conversation("c2")
    # A value naming #2, clicked on the root of #1: refused, nothing paged.
    await bolt.click(
        "relaydesk.escalate",
        str(second.id),
        user=AGENT,
        channel=INBOX,
        message_ts=first.thread_ts or "",
    )
    [refusal] = await bolt.ephemerals(1)
    assert refusal["text"] == (
        f"This button does not belong to #{second.id}: use the buttons on that "
        "conversation's own root."
    )
    assert await bolt.env.escalations.store.pages_of(second.id or 0) == []
