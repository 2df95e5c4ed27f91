"""What the team writes in Slack, as the customer should get it (issue 15, points 1-3).

Pure: no I/O except the user-name lookup the caller passes. The one entry point is
`prepare_reply(event, target, resolve_user)`:

    prepared = await prepare_reply(event, TARGETS["telegram"], names)
    match prepared:
        case InternalNote():   ...  # stays in Slack
        case OverLimit():      ...  # say prepared.sentence in the thread
        case PreparedReply():  ...  # send prepared.texts in order, with prepared.parse_mode

`texts` is empty when the message has no text (a file shared without a comment).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.markup.document import Block, BlockKind, Document, Span, Style
from bot.markup.notes import is_note
from bot.markup.render import Markup, render, visible_text
from bot.markup.slack_message import parse_slack_message
from bot.markup.split import split_document
from bot.markup.targets import TARGETS, Target
from bot.markup.users import ResolveUser, UserNameCache, resolve_mentions

__all__ = [
    "TARGETS",
    "Block",
    "BlockKind",
    "Document",
    "InternalNote",
    "Markup",
    "OverLimit",
    "PreparedReply",
    "ResolveUser",
    "Span",
    "Style",
    "Target",
    "UserNameCache",
    "is_note",
    "parse_slack_message",
    "prepare_document",
    "prepare_reply",
    "render",
    "resolve_mentions",
    "visible_text",
]


@dataclass(frozen=True, slots=True)
class PreparedReply:
    """The messages to send, in order; `parse_mode` is Telegram's ("HTML") or None."""

    texts: tuple[str, ...]
    parse_mode: str | None


@dataclass(frozen=True, slots=True)
class OverLimit:
    """A public reply too long for its network: not sent, and the thread is told why."""

    what: str
    limit: int
    length: int

    @property
    def sentence(self) -> str:
        over = self.length - self.limit
        return (
            f"{self.what} are limited to {self.limit:,} characters; "
            f"this reply is {self.length:,} ({over:,} over)."
        )


@dataclass(frozen=True, slots=True)
class InternalNote:
    """The reply starts with `note:` or `private:`: it stays in Slack."""


async def prepare_reply(
    event: Mapping[str, Any], target: Target, resolve_user: ResolveUser
) -> PreparedReply | OverLimit | InternalNote:
    """A Slack message event made ready for `target`."""
    document = parse_slack_message(event)
    if is_note(document):
        return InternalNote()
    return prepare_document(await resolve_mentions(document, resolve_user), target)


def prepare_document(document: Document, target: Target) -> PreparedReply | OverLimit:
    """Render a parsed, resolved reply; split it when private, refuse it when public."""
    whole = render(document, target.markup)
    if not document.text.strip():
        return PreparedReply((), target.parse_mode)
    if target.limit is None or target.length(whole) <= target.limit:
        return PreparedReply((whole,), target.parse_mode)
    if target.public:
        return OverLimit(target.what, target.limit, target.length(whole))
    limit = target.limit

    def fits(piece: Document) -> bool:
        return target.length(render(piece, target.markup)) <= limit

    # every private target's measure counts each visible character at least once
    pieces = split_document(document, fits, longest=limit)
    return PreparedReply(tuple(render(p, target.markup) for p in pieces), target.parse_mode)
