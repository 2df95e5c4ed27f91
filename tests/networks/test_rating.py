"""The rating answers' payloads: only ours, with a score of 1-5, name a survey."""

from __future__ import annotations

import json

import pytest

from bot.networks.base import CustomerRating
from bot.networks.rating import LABELS, digit_answer, payload, read_payload
from bot.networks.telegram import TelegramNetwork
from tests.refs import ref_json


def test_payloads_round_trip_and_fit_every_network() -> None:
    for score in range(1, 6):
        made = payload(123456789012345678, score)
        assert read_payload(made) == (123456789012345678, score)
        assert len(made.encode()) <= 64  # Telegram's callback_data limit
    assert all(len(label) <= 20 for label in LABELS.values())  # Messenger's quick reply title


@pytest.mark.parametrize(
    "value",
    [
        "relaydesk.csat:12:0",
        "relaydesk.csat:12:6",
        "relaydesk.csat:12:45",
        "relaydesk.csat::4",
        "relaydesk.csat:-1:4",
        "relaydesk.csat:1234567890123456789:4",
        " relaydesk.csat:12:4",
        "relaydesk.csat:12:4\n",
        "PAYLOAD_QUICK_REPLY",
        12,
        None,
    ],
)
def test_anything_else_is_no_rating(value: object) -> None:
    assert read_payload(value) is None


def test_a_digit_alone_is_an_answer() -> None:
    assert [digit_answer(t) for t in ("4", " 5\n", "45", "0", "6", "4 stars", "", "４")] == [
        4,
        5,
        None,
        None,
        None,
        None,
        None,
        None,
    ]


def test_telegram_callbacks_other_than_ours_are_ignored() -> None:
    network = TelegramNetwork(token="t", secret="s", api_url="http://127.0.0.1:9")
    update = ref_json("conformance/telegram/tgdoc_callback_query.json")
    assert network.parse(json.dumps(update).encode()) == []  # another button's data
    update["callback_query"]["data"] = payload(7, 3)
    assert network.parse(json.dumps(update).encode()) == []  # inline mode: no chat
    update["callback_query"]["message"] = {"message_id": 5, "date": 0, "chat": {"id": 42}}
    [rating] = network.parse(json.dumps(update).encode())
    assert isinstance(rating, CustomerRating)
    assert (rating.conversation_key, rating.survey_id, rating.score) == ("42", 7, 3)
    assert rating.tap_id == update["callback_query"]["id"]
