"""The one intermediate form of a team reply: blocks of styled spans.

Slack's two encodings of a message (rich_text `blocks`, mrkdwn `text`) are parsed into it,
every network renders from it, and splitting cuts it, so formatting stays valid in each
piece. Its visible text is the blocks' span texts joined by newlines.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag, StrEnum


class Style(IntFlag):
    NONE = 0
    BOLD = 1
    ITALIC = 2
    STRIKE = 4
    CODE = 8


class BlockKind(StrEnum):
    PARAGRAPH = "paragraph"
    QUOTE = "quote"
    CODE = "code"
    BULLET = "bullet"
    ORDERED = "ordered"


@dataclass(frozen=True, slots=True)
class Span:
    """Text in one style; `url` makes it a link (text is the label).

    `user` marks a mention still to be resolved: `text` holds what to show meanwhile.
    """

    text: str
    style: Style = Style.NONE
    url: str | None = None
    user: str | None = None


@dataclass(frozen=True, slots=True)
class Block:
    """A paragraph, quote, code block or list item; `continued` marks the second half
    of a block that was split (a list item's marker is not repeated)."""

    kind: BlockKind
    spans: tuple[Span, ...]
    indent: int = 0
    number: int = 1
    continued: bool = False

    @property
    def text(self) -> str:
        return "".join(span.text for span in self.spans)


@dataclass(frozen=True, slots=True)
class Document:
    blocks: tuple[Block, ...] = ()

    @property
    def text(self) -> str:
        """The visible text: what a reader sees with every formatting mark removed."""
        return "\n".join(block.text for block in self.blocks)

    def slice(self, start: int, end: int) -> Document:
        """The part of the document between two offsets of `text`, formatting kept."""
        blocks: list[Block] = []
        offset = 0
        for block in self.blocks:
            length = len(block.text)
            lo, hi = max(start, offset), min(end, offset + length)
            if lo < hi or (lo == hi and length == 0 and start <= offset < end):
                blocks.append(_slice_block(block, lo - offset, hi - offset))
            offset += length + 1
        return Document(tuple(blocks))


def _slice_block(block: Block, start: int, end: int) -> Block:
    spans: list[Span] = []
    offset = 0
    for span in block.spans:
        length = len(span.text)
        if offset >= end:
            break
        lo, hi = max(start, offset), min(end, offset + length)
        if lo == offset and hi == offset + length:
            spans.append(span)
        elif lo < hi:
            spans.append(
                Span(span.text[lo - offset : hi - offset], span.style, span.url, span.user)
            )
        offset += length
    continued = block.continued or start > 0
    return Block(block.kind, tuple(spans), block.indent, block.number, continued)


def merge_spans(spans: list[Span]) -> tuple[Span, ...]:
    """Join neighbours of the same style and link; drop empty spans."""
    merged: list[Span] = []
    for span in spans:
        if not span.text:
            continue
        last = merged[-1] if merged else None
        if (
            last is not None
            and last.user is None
            and span.user is None
            and (last.style, last.url) == (span.style, span.url)
        ):
            merged[-1] = Span(last.text + span.text, last.style, last.url)
        else:
            merged.append(span)
    return tuple(merged)
