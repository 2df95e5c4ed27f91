"""Internal notes: a reply whose plain text starts with `note:` or `private:`."""

from __future__ import annotations

import re

from bot.markup.document import Document
from bot.markup.slack_text import parse_text

# what is left of formatting marks the parser did not take as formatting (`**note:**`)
_LEADING_MARKS = re.compile(r"^[\s*_~`>]+")
_NOTE = re.compile(r"(?:note|private):", re.IGNORECASE)


def is_note(message: Document | str) -> bool:
    """Whether a reply stays in Slack, whatever bold, italic, code or quote wraps it.

    A `str` is Slack message text (mrkdwn); a `Document` is an already parsed reply.
    """
    document = parse_text(message) if isinstance(message, str) else message
    plain = _LEADING_MARKS.sub("", document.text)
    return _NOTE.match(plain) is not None
