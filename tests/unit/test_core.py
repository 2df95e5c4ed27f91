"""The conversation core's rules, as tables of current values -> plan (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from storage import core
from storage.business_hours import BusinessHours, parse_hours
from storage.core import (
    REOPENED,
    ConversationPlan,
    ConversationStatus,
    NewTurn,
    OpenTurns,
    Reply,
    TurnAnswer,
    TurnState,
    Unchanged,
)

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def t(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# -- opening and extending turns ----------------------------------------------------------

OPEN_TURNS = [
    # (case, latest turn (start, answer), new messages in arrival order, reply times,
    #  the latest turn's new start if it moves, turns opened (start, is first))
    ("a new conversation's first message opens its first turn", None, [0], [], None, [(0, True)]),
    (
        "messages of one batch before any reply form one turn",
        None,
        [0, 30, 50],
        [],
        None,
        [(0, True)],
    ),
    ("a message extends the open turn", (0, None), [30], [], None, []),
    (
        "a message after a pending or delivered reply opens the next turn",
        (0, None),
        [90],
        [60],
        None,
        [(90, False)],
    ),
    (
        "a reply between the turn's start and the message splits them",
        (0, None),
        [30, 90],
        [60],
        None,
        [(90, False)],
    ),
    ("a message after the answer opens the next turn", (0, 60), [300], [60], None, [(300, False)]),
    ("a message written before the latest answer changes nothing", (0, 60), [20], [60], None, []),
    ("an earlier message moves the open turn's start", (30, None), [0], [], 0, []),
    (
        "an earlier message behind a reply belongs to an earlier turn",
        (30, None),
        [0],
        [10],
        None,
        [],
    ),
    (
        "out of order in one batch: the new turn's start moves earlier",
        (0, 60),
        [200, 100],
        [60],
        None,
        [(100, False)],
    ),
    (
        "the latest turn moves, then a later message opens another",
        (30, None),
        [10, 90],
        [60],
        10,
        [(90, False)],
    ),
    (
        "a reply exactly at the message's time splits the turn",
        (0, None),
        [60],
        [60],
        None,
        [(60, False)],
    ),
    ("replies before every start change nothing", (30, None), [40], [5], None, []),
]


@pytest.mark.parametrize(
    ("latest", "sent", "replies", "moved", "opened"),
    [case[1:] for case in OPEN_TURNS],
    ids=[case[0] for case in OPEN_TURNS],
)
def test_open_turns(
    latest: tuple[float, float | None] | None,
    sent: list[float],
    replies: list[float],
    moved: float | None,
    opened: list[tuple[float, bool]],
) -> None:
    turn = None
    if latest is not None:
        start, answered = latest
        turn = TurnState(t(start), None if answered is None else t(answered))
    plan = core.open_turns(turn, [t(s) for s in sent], [t(r) for r in replies])
    expected_move = None if moved is None else t(moved)
    assert plan == OpenTurns(expected_move, tuple(NewTurn(t(s), first) for s, first in opened))


def test_a_conversation_without_turns_opens_one_whatever_the_replies() -> None:
    """No turn yet (a new conversation, which has no replies either): the batch's
    messages form its first turn, as the batch has always stored them."""
    plan = core.open_turns(None, [t(0), t(30)], [t(10)])
    assert plan == OpenTurns(None, (NewTurn(t(0), True),))


# -- answering and un-answering -----------------------------------------------------------


ANSWER = [
    # (case, turn, reply (id, time), last reply time, expected turn answer)
    ("a reply answers its open turn", (0, None), (1, 100), None, (100, 1, 100.0)),
    ("an earlier reply delivered last answers instead", (0, 90), (1, 60), 90, (60, 1, 60.0)),
    ("a later reply keeps the earlier answer", (0, 60), (2, 90), 60, None),
    ("no turn: nothing to answer", None, (1, 100), None, None),
]


@pytest.mark.parametrize(
    ("turn", "reply", "last_reply", "answer"),
    [case[1:] for case in ANSWER],
    ids=[case[0] for case in ANSWER],
)
def test_answer_turn(
    turn: tuple[float, float | None] | None,
    reply: tuple[int, float],
    last_reply: float | None,
    answer: tuple[float, int, float] | None,
) -> None:
    state = None
    if turn is not None:
        state = TurnState(t(turn[0]), None if turn[1] is None else t(turn[1]))
    plan = core.answer_turn(
        state,
        Reply(reply[0], t(reply[1]), "U0AGENT01"),
        "sales",
        None if last_reply is None else t(last_reply),
    )
    assert plan.turn == (
        None if answer is None else TurnAnswer(t(answer[0]), answer[1], answer[2], answer[2])
    )
    assert plan.team == "sales"
    assert plan.conversation.values["escalated_to"] is None  # a delivered reply stops paging


def test_the_newest_reply_is_the_conversations_last() -> None:
    newer = core.answer_turn(None, Reply(2, t(90), "U0BOB0001"), None, t(60))
    assert newer.conversation == ConversationPlan(
        {"escalated_to": None, "last_reply_at": t(90), "last_replier": "U0BOB0001"}
    )
    older = core.answer_turn(None, Reply(1, t(30), "U0ANN0001"), None, t(60))
    assert older.conversation == ConversationPlan({"escalated_to": None})


UNANSWER = [
    # (case, turn start, next turn's start, replies still delivered (id, time), expected)
    ("no other delivered reply: unanswered", 0, None, [], None),
    ("another delivered reply in the turn answers it", 0, None, [(2, 75)], (75, 2, 75.0)),
    ("the earliest of several answers", 0, None, [(3, 80), (2, 75)], (75, 2, 75.0)),
    ("a reply after the next turn started is that turn's", 0, 600, [(3, 605)], None),
    ("a reply before the turn started is an earlier turn's", 30, None, [(2, 10)], None),
    ("a reply at the turn's very start answers it", 30, 600, [(2, 30)], (30, 2, 0.0)),
]


@pytest.mark.parametrize(
    ("start", "later", "delivered", "answer"),
    [case[1:] for case in UNANSWER],
    ids=[case[0] for case in UNANSWER],
)
def test_unanswer_turn(
    start: float,
    later: float | None,
    delivered: list[tuple[int, float]],
    answer: tuple[float, int, float] | None,
) -> None:
    result = core.unanswer_turn(
        TurnState(t(start), t(start + 60)),
        None if later is None else t(later),
        [Reply(id_, t(at)) for id_, at in delivered],
    )
    assert result == (
        TurnAnswer(None, None, None)
        if answer is None
        else TurnAnswer(t(answer[0]), answer[1], answer[2], answer[2])
    )


# -- actions on a conversation ------------------------------------------------------------

OPEN, RESOLVED = ConversationStatus.OPEN, ConversationStatus.RESOLVED

ACTIONS = [
    (
        "claim an ownerless conversation",
        core.claim(None, "U0ANN0001"),
        ConversationPlan({"owner": "U0ANN0001"}),
    ),
    ("claim your own", core.claim("U0ANN0001", "U0ANN0001"), Unchanged.ALREADY_YOURS),
    ("claim someone else's", core.claim("U0BOB0001", "U0ANN0001"), Unchanged.OWNED),
    (
        "resolve an open conversation",
        core.resolve(OPEN, "U0ANN0001", T0),
        ConversationPlan(
            {
                "status": RESOLVED,
                "resolved_by": "U0ANN0001",
                "resolved_at": T0,
                "escalated_to": None,
            }
        ),
    ),
    ("resolve a resolved one", core.resolve(RESOLVED, "U0ANN0001", T0), Unchanged.ALREADY_RESOLVED),
    ("reopen a resolved conversation", core.reopen(RESOLVED), ConversationPlan(REOPENED)),
    ("reopen an open one", core.reopen(OPEN), Unchanged.NOT_RESOLVED),
    (
        "hand off to another team",
        core.hand_off(
            "support", "sales", in_flight=False, by_user="U0ANN0001", channel="C0SALES01"
        ),
        ConversationPlan(
            {
                "team": "sales",
                "handed_off_by": "U0ANN0001",
                "channel": "C0SALES01",
                "thread_ts": None,
                "escalated_to": None,
            }
        ),
    ),
    (
        "hand off to its own team",
        core.hand_off("sales", "sales", in_flight=True, by_user="U0ANN0001", channel="C0SALES01"),
        Unchanged.SAME_TEAM,
    ),
    (
        "hand off while another handoff is in flight",
        core.hand_off("support", "sales", in_flight=True, by_user="U0ANN0001", channel="C0SALES01"),
        Unchanged.IN_FLIGHT,
    ),
]


@pytest.mark.parametrize(
    ("outcome", "expected"), [case[1:] for case in ACTIONS], ids=[case[0] for case in ACTIONS]
)
def test_actions(outcome: object, expected: object) -> None:
    assert outcome == expected


def test_reopened_is_open_and_unresolved() -> None:
    assert dict(REOPENED) == {"status": "open", "resolved_by": None, "resolved_at": None}


def test_states_are_the_strings_stored_in_sql() -> None:
    assert [str(state) for state in core.ReplyState] == [
        "pending",
        "sent",
        "failed",
        "refused",
        "internal",
        "echo",
        "uncertain",
    ]
    assert [str(state) for state in core.MessageState] == ["pending", "posted", "failed"]
    assert core.ConversationStatus("resolved") is RESOLVED
    assert f"{core.MessageState.POSTED}" == "posted"


def test_a_turn_answered_across_a_weekend_counts_business_hours_only() -> None:
    hours = BusinessHours(parse_hours("mon-fri 09:00-18:00"), frozenset(), ZoneInfo("UTC"))
    friday = datetime(2026, 3, 6, 17, 55, tzinfo=UTC)
    monday = datetime(2026, 3, 9, 9, 25, tzinfo=UTC)
    plan = core.answer_turn(TurnState(friday), Reply(7, monday), "support", None, hours)
    assert plan.turn == TurnAnswer(monday, 7, (monday - friday).total_seconds(), 30 * 60)
    undone = core.unanswer_turn(TurnState(friday, monday), None, [Reply(8, monday)], hours)
    assert undone.business_response_seconds == 30 * 60
