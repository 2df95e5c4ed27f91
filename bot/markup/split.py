"""Cutting a long private reply into ordered messages that each fit the target.

Cuts fall at the last paragraph break that fits, else the last line break, else the
last sentence end, else the last space, else anywhere (a hard cut). The document is cut,
not the rendered text, so each piece renders its own formatting: a bold span or a code
block cut in two is closed at the end of one message and reopened in the next. The
whitespace at a cut is dropped.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Sequence

from bot.markup.document import Document

_PARAGRAPH = re.compile(r"\n\s*\n")
_LINE = re.compile(r"\n")
_SENTENCE = re.compile(r"(?<=[.!?…])\s")
_WORD = re.compile(r"\s")


def split_document(
    document: Document, fits: Callable[[Document], bool], longest: int | None = None
) -> list[Document]:
    """Pieces in order; `longest` bounds a piece's visible text when the caller knows
    that its measure counts at least one per visible character (it saves rendering)."""
    text = document.text
    boundaries = _boundaries(document, text)
    pieces: list[Document] = []
    start = _skip_space(text, 0)
    while start < len(text):
        reach = len(text) if longest is None else min(len(text), start + longest)
        if reach == len(text) and fits(document.slice(start, len(text))):
            pieces.append(document.slice(start, len(text)))
            break
        end = _best_end(document, text, start, reach, boundaries, fits)
        pieces.append(document.slice(start, end))
        start = _skip_space(text, end)
    return pieces


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _boundaries(document: Document, text: str) -> list[Sequence[int]]:
    """Cut positions by preference; block ends count as paragraph breaks."""
    block_ends: list[int] = []
    offset = 0
    for block in document.blocks:
        offset += len(block.text)
        block_ends.append(offset)
        offset += 1
    paragraphs = sorted({m.start() for m in _PARAGRAPH.finditer(text)} | set(block_ends))
    return [
        paragraphs,
        [m.start() for m in _LINE.finditer(text)],
        [m.start() for m in _SENTENCE.finditer(text)],
        [m.start() for m in _WORD.finditer(text)],
        range(len(text) + 1),  # a lazy sequence: bisect needs no list of every offset
    ]


def _best_end(
    document: Document,
    text: str,
    start: int,
    reach: int,
    boundaries: list[Sequence[int]],
    fits: Callable[[Document], bool],
) -> int:
    """The furthest cut of the most preferred kind; at least one character (a piece
    that cannot fit even so is sent over the limit rather than looping)."""
    for positions in boundaries:
        lo, hi = bisect_right(positions, start), bisect_right(positions, reach)
        best = None
        while lo < hi:  # longer pieces never get shorter once rendered
            mid = (lo + hi) // 2
            if fits(document.slice(start, positions[mid])):
                best, lo = positions[mid], mid + 1
            else:
                hi = mid
        if best is not None and text[start:best].strip():
            return best
    return start + 1
