"""Our forms: what a modal carries in its metadata is read back by its submission, and
a form that is not ours is refused."""

from __future__ import annotations

import json

import pytest

from bot.blocks.form import modal
from bot.services.refs import MAX_ID
from handlers.forms import form_metadata


def test_a_modal_carries_its_metadata_back() -> None:
    view = modal("relaydesk.x_modal", {"conversation": 7, "channel": "C1"}, "X #7", "Go", [])
    assert (view["callback_id"], view["close"]["text"]) == ("relaydesk.x_modal", "Cancel")
    assert form_metadata(view["private_metadata"]) == (7, {"conversation": 7, "channel": "C1"})


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "{}",
        "[1]",
        "not json",
        json.dumps({"conversation": "seven"}),
        json.dumps({"conversation": None}),
        json.dumps({"conversation": 0}),
        json.dumps({"conversation": -3}),
        json.dumps({"conversation": MAX_ID + 1}),
    ],
)
def test_a_form_that_is_not_ours_is_refused(raw: str | None) -> None:
    with pytest.raises(ValueError, match="This form is not ours."):
        form_metadata(raw)
