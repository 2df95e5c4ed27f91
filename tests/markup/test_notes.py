"""Notes stay internal whatever formatting wraps them (issue 15, point 2)."""

from __future__ import annotations

import pytest

from bot.markup import is_note, parse_slack_message

NOTES = [
    "note: refund approved",
    "NOTE: refund approved",
    "Private: do not tell them",
    "   note: leading spaces",
    "*note:* bold",
    "*Note*: bold word only",
    "_private:_ italic",
    "`note:` code",
    "~note:~ struck",
    "&gt; note: quoted",
    "&gt; *_note:_* quoted, bold and italic",
    "**note:** doubled marks",
    "\n\nnote: after blank lines",
]
NOT_NOTES = [
    "Thanks, a note: we ship on Monday",
    "notes: plural is not the keyword",
    "note - no colon",
    "privately: not the keyword",
    "",
]


@pytest.mark.parametrize("text", NOTES)
def test_notes_whatever_wraps_them(text: str) -> None:
    assert is_note(text)
    assert is_note(parse_slack_message({"text": text}))


@pytest.mark.parametrize("text", NOT_NOTES)
def test_replies_that_are_not_notes(text: str) -> None:
    assert not is_note(text)


def test_a_note_in_rich_text_blocks() -> None:
    event = {
        "text": "*note:* internal",
        "blocks": [
            {
                "type": "rich_text",
                "elements": [
                    {
                        "type": "rich_text_quote",
                        "elements": [
                            {"type": "text", "text": "note:", "style": {"bold": True}},
                            {"type": "text", "text": " internal"},
                        ],
                    }
                ],
            }
        ],
    }
    assert is_note(parse_slack_message(event))
