"""The rating question's answers as every network carries them.

Each answer's payload (Telegram `callback_data`, Messenger / Instagram quick reply
`payload`, WhatsApp list row `id`, the generic reply's `csat.options[].payload`) names
the survey and the score, so a tap is matched to its question without any state:
`relaydesk.csat:<survey id>:<score>`. Anything else is a tap like any other.
"""

from __future__ import annotations

import re

SCORES = (1, 2, 3, 4, 5)
LABELS = {1: "1 ★ Poor", 2: "2 ★★ Fair", 3: "3 ★★★ Good", 4: "4 ★★★★ Very good", 5: "5 ★★★★★ Great"}
PROMPT = "Rate us"  # the button that opens WhatsApp's list (20 characters at most)
# Where the network has no buttons (X DMs): the question says how to answer.
DIGIT_HINT = "Reply with a number from 1 to 5."
_PAYLOAD = re.compile(r"relaydesk\.csat:([0-9]{1,18}):([1-5])")


def payload(survey_id: int, score: int) -> str:
    return f"relaydesk.csat:{survey_id}:{score}"


def read_payload(value: object) -> tuple[int, int] | None:
    """(survey id, score) of one of our answers' payloads; None for anything else."""
    found = _PAYLOAD.fullmatch(value) if isinstance(value, str) else None
    return (int(found[1]), int(found[2])) if found else None


def digit_answer(text: str) -> int | None:
    """A message that is only a score ("4", " 5 "): the answer typed instead of tapped."""
    stripped = text.strip()
    return int(stripped) if len(stripped) == 1 and stripped in "12345" else None


def stars(score: int) -> str:
    return "★" * score + "☆" * (5 - score)
