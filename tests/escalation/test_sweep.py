"""Automatic escalation ticks on SQLite, driven by a clock moved by hand."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.blocks.escalation import NOBODY_HOW_TO
from bot.services.escalation import RECOVER_AFTER
from bot.services.refusal import Refusal
from storage.models import Handoff
from tests.escalation.support import (
    AGENT,
    INBOX,
    MANAGER,
    T0,
    A,
    B,
    Env,
    blocks_text,
    date_tag,
    minutes,
    running,
)
from tests.fakes.slack_api import permalink


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with running(f"sqlite+aiosqlite:///{tmp_path / 'esc.db'}") as started:
        yield started


async def test_level_one_pages_the_on_call_person_at_the_sla(env: Env) -> None:
    conversation = await env.conversation()
    assert conversation.id == 1 and conversation.thread_ts is not None

    assert await env.tick(minutes(29.99)) == 0
    assert env.dm_posts() == []
    assert await env.tick(minutes(30)) == 1

    assert await env.dmed() == [A]
    dm = env.dm_posts()[0]
    assert dm["text"] == "Escalation level 1: #1 needs an answer"
    assert dm["blocks"][0]["text"]["text"] == (
        ":rotating_light: *Escalation, level 1* · *#1* · Telegram · *Ada* (@ada)\n"
        "Waiting for an answer for *30 min*.\n"
        f"<{permalink(INBOX, conversation.thread_ts)}|Open the conversation thread>"
    )
    assert dm["blocks"][1]["text"]["text"] == "> Where is my order?"  # what they asked
    assert [(e["action_id"], e["value"]) for e in dm["blocks"][2]["elements"]] == [
        ("relaydesk.ack", "1"),
        ("relaydesk.claim", "1"),
    ]
    assert env.thread_texts(conversation) == [f"<@{A}>: escalation level 1 for #1"]

    rows = await env.escalations.store.pages_of(1)
    assert [(r.level, r.kind, r.target_user, r.sent_at) for r in rows] == [
        (1, "auto", A, minutes(30))
    ]
    after = await env.services.repo.conversation(1)
    assert after is not None
    assert after.escalated_to == A
    assert after.version == conversation.version + 1

    assert await env.tick(minutes(31)) == 0
    assert len(env.dm_posts()) == 1


async def test_next_in_rotation_then_manager_then_nothing(env: Env) -> None:
    await env.conversation()
    assert await env.tick(minutes(30)) == 1
    assert await env.tick(minutes(44.9)) == 0
    assert await env.tick(minutes(45)) == 1
    assert await env.tick(minutes(59.9)) == 0
    assert await env.tick(minutes(60)) == 1
    assert await env.tick(minutes(600)) == 0

    assert await env.dmed() == [A, B, MANAGER]
    assert await env.pages(1) == [(1, "auto", A), (2, "auto", B), (3, "auto", MANAGER)]
    assert "Waiting for an answer for *45 min*." in blocks_text(env.dm_posts()[1])
    conversation = await env.services.repo.conversation(1)
    assert conversation is not None and conversation.escalated_to == MANAGER


async def test_a_late_tick_pages_each_missing_level_once_in_order(env: Env) -> None:
    conversation = await env.conversation()
    assert await env.tick(minutes(75)) == 3
    assert await env.tick(minutes(76)) == 0
    assert await env.tick(minutes(500)) == 0

    assert await env.dmed() == [A, B, MANAGER]
    assert await env.pages(1) == [(1, "auto", A), (2, "auto", B), (3, "auto", MANAGER)]
    assert env.thread_texts(conversation) == [
        f"<@{A}>: escalation level 1 for #1",
        f"<@{B}>: escalation level 2 for #1",
        f"<@{MANAGER}>: escalation level 3 for #1",
    ]


async def test_a_tick_between_levels_catches_up_only_what_is_due(env: Env) -> None:
    await env.conversation()
    assert await env.tick(minutes(50)) == 2  # levels 1 (due 30) and 2 (due 45)
    assert await env.tick(minutes(59)) == 0
    assert await env.tick(minutes(60)) == 1  # level 3 on the original schedule, no drift
    assert await env.dmed() == [A, B, MANAGER]


async def stop_by_reply(env: Env, conversation_id: int) -> None:
    await env.answer(conversation_id, minutes(35))


async def stop_by_ack(env: Env, conversation_id: int) -> None:
    answer = await env.escalations.ack(conversation_id, A)
    assert answer == f"You acknowledged #{conversation_id}: it will not escalate further."


async def stop_by_resolve(env: Env, conversation_id: int) -> None:
    result = await env.services.repo.resolve(conversation_id, AGENT, minutes(35))
    assert result.ok


async def stop_by_handoff(env: Env, conversation_id: int) -> None:
    async with env.services.db.session() as session:
        session.add(
            Handoff(
                conversation_id=conversation_id,
                from_team=None,
                to_team="sales",
                by_user=AGENT,
                created_at=minutes(35),
            )
        )


@pytest.mark.parametrize(
    "stop", [stop_by_reply, stop_by_ack, stop_by_resolve, stop_by_handoff], ids=lambda f: f.__name__
)
async def test_reply_ack_resolve_or_handoff_stops_the_escalation(env: Env, stop: object) -> None:
    await env.conversation()
    assert await env.tick(minutes(30)) == 1
    env.clock.now = minutes(35)
    await stop(env, 1)  # type: ignore[operator]
    assert await env.tick(minutes(45)) == 0
    assert await env.tick(minutes(300)) == 0
    assert await env.dmed() == [A]
    assert await env.pages(1) == [(1, "auto", A)]


async def test_a_handoff_before_the_first_page_does_not_stop_it(env: Env) -> None:
    await env.conversation()
    await stop_by_handoff(env, 1)  # at minute 35, before the late first tick
    assert await env.tick(minutes(40)) == 1
    assert await env.dmed() == [A]


async def test_a_new_turn_escalates_again_from_its_own_start(env: Env) -> None:
    await env.conversation()
    assert await env.tick(minutes(30)) == 1
    await env.answer(1, minutes(32))
    await env.customer_writes("c1", "c1-2", minutes(40))  # a new turn
    assert await env.tick(minutes(69)) == 0
    assert await env.tick(minutes(70)) == 1
    assert await env.dmed() == [A, A]


async def test_nobody_on_call_is_said_once_in_the_thread(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'esc.db'}"
    async with running(url, {"ONCALL_USERS": "", "ESCALATION_MANAGER": ""}) as env:
        conversation = await env.conversation()
        assert await env.tick(minutes(30)) == 1
        for later in (31, 45, 60, 600):
            assert await env.tick(minutes(later)) == 0
        assert env.dm_posts() == []
        assert env.thread_texts(conversation) == [
            ":warning: #1 has waited 30 min for an answer, but nobody is on call to page. "
            + NOBODY_HOW_TO
        ]
        assert "ONCALL_USERS" in NOBODY_HOW_TO
        assert await env.pages(1) == [(1, "auto", None)]
        after = await env.services.repo.conversation(1)
        assert after is not None and after.escalated_to is None


async def test_without_a_rotation_the_manager_is_paged_once(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'esc.db'}"
    async with running(url, {"ONCALL_USERS": ""}) as env:
        await env.conversation()
        assert await env.tick(minutes(30)) == 1
        for later in (45, 60, 600):
            assert await env.tick(minutes(later)) == 0
        assert await env.dmed() == [MANAGER]
        assert await env.pages(1) == [(1, "auto", MANAGER)]


async def test_a_cover_wins_level_one_and_level_two_skips_the_same_person(env: Env) -> None:
    await env.escalations.cover(B, timedelta(hours=8), A, now=T0)
    await env.conversation()
    assert await env.tick(minutes(30)) == 1
    assert await env.tick(minutes(45)) == 0  # level 2 would be B again: skipped
    assert await env.tick(minutes(60)) == 1
    assert await env.dmed() == [B, MANAGER]
    assert await env.pages(1) == [(1, "auto", B), (3, "auto", MANAGER)]


async def test_an_unknown_user_is_logged_and_does_not_block_other_pages(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    first = await env.conversation("c1")
    await env.conversation("c2", at=minutes(1))
    env.slack.fail(
        "conversations.open", status=200, count=1, body={"ok": False, "error": "user_not_found"}
    )
    with caplog.at_level(logging.ERROR, logger="bot.services.escalation"):
        assert await env.tick(minutes(31)) == 2
    assert [r.getMessage() for r in caplog.records] == [
        f"escalation 1 of #1: cannot DM {A} (Slack error user_not_found from "
        "conversations.open); check the user ID with `python -m bot check`"
    ]
    assert await env.dmed() == [A]  # the second conversation's page
    assert env.thread_texts(first) == [f"<@{A}>: escalation level 1 for #1"]
    rows = [*await env.escalations.store.pages_of(1), *await env.escalations.store.pages_of(2)]
    assert [row.sent_at for row in rows] == [minutes(31), minutes(31)]


async def test_a_page_left_unsent_by_a_stopped_process_is_sent_later_once(env: Env) -> None:
    await env.conversation()
    async with env.escalations.store.locked(1) as locked:  # claimed, then the process died
        await locked.add_page(level=1, kind="auto", target=A, now=minutes(30))
    assert await env.tick(minutes(30) + RECOVER_AFTER - timedelta(seconds=1)) == 0
    assert env.dm_posts() == []
    assert await env.tick(minutes(30) + RECOVER_AFTER) == 1
    assert await env.tick(minutes(30) + RECOVER_AFTER + timedelta(seconds=1)) == 0
    assert await env.dmed() == [A]


async def test_manual_escalation_pages_at_once_and_starts_the_clock(env: Env) -> None:
    conversation = await env.conversation()
    env.clock.now = minutes(5)
    answer = await env.escalations.escalate(1, AGENT, "VIP, very angry")
    assert answer == f"Paged <@{A}> for #1."
    with pytest.raises(Refusal) as again:
        await env.escalations.escalate(1, AGENT, "again")
    assert again.value.sentence == (
        f"#1 was already escalated to <@{A}> by <@{AGENT}> {date_tag(minutes(5))}."
    )
    assert await env.dmed() == [A]
    assert blocks_text(env.dm_posts()[0]).count(f"Escalated by <@{AGENT}>: VIP, very angry") == 1
    assert env.thread_texts(conversation) == [f"<@{A}>: escalation level 1 for #1"]
    assert "*Manual escalation, level 1*" in blocks_text(env.dm_posts()[0])
    rows = await env.escalations.store.pages_of(1)
    assert [(r.level, r.kind, r.target_user, r.reason, r.by_user) for r in rows] == [
        (1, "manual", A, "VIP, very angry", AGENT)
    ]
    # level 2 is due a repeat after the manual page, before the SLA would have paged level 1
    assert await env.tick(minutes(19)) == 0
    assert await env.tick(minutes(20)) == 1
    assert await env.tick(minutes(30)) == 0  # level 1 was paged by hand: not again
    assert await env.tick(minutes(35)) == 1
    assert await env.dmed() == [A, B, MANAGER]


async def test_manual_escalation_of_a_resolved_conversation_is_refused(env: Env) -> None:
    await env.conversation()
    await env.services.repo.resolve(1, AGENT, minutes(1))
    with pytest.raises(Refusal) as refused:
        await env.escalations.escalate(1, AGENT, None)
    assert refused.value.sentence == "#1 is resolved; reopen it before escalating."
    assert env.dm_posts() == []


async def test_no_page_before_the_conversation_has_its_slack_thread(env: Env) -> None:
    """A backlog message already past the SLA waits for its root, then pages with a link."""
    conversation_id = await env.customer_writes("late", "late-1", T0)
    assert await env.tick(minutes(45)) == 0
    assert env.dm_posts() == []
    root = env.slack.add_message(INBOX, "root of late", user=env.slack.bot_user_id)
    await env.services.repo.set_thread(conversation_id, INBOX, root["ts"])
    assert await env.tick(minutes(45.1)) >= 1
    assert "Open the conversation thread" in env.dm_posts()[0]["blocks"][0]["text"]["text"]
