"""A Slack message event (its rich_text `blocks`, else its `text`) into a `Document`.

rich_text is what Slack's composer produces and is exact; `text` is the fallback for
messages without it (older clients, other apps). Names that rich_text elements lack
(channel names, user-group handles) are read from `text`, which carries them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bot.markup.document import Block, BlockKind, Document, Span, Style, merge_spans
from bot.markup.emoji_names import emoji_text
from bot.markup.slack_text import (
    Labels,
    channel_text,
    collect_labels,
    parse_text,
    usergroup_text,
)

_STYLE_FLAGS = (
    ("bold", Style.BOLD),
    ("italic", Style.ITALIC),
    ("strike", Style.STRIKE),
    ("code", Style.CODE),
)
_LIST_KINDS = {"bullet": BlockKind.BULLET, "ordered": BlockKind.ORDERED}


def parse_slack_message(event: Mapping[str, Any]) -> Document:
    text = str(event.get("text") or "")
    rich = [b for b in event.get("blocks") or () if isinstance(b, Mapping)]
    rich = [b for b in rich if b.get("type") == "rich_text"]
    if not rich:
        return parse_text(text)
    labels = collect_labels(text)
    blocks: list[Block] = []
    for block in rich:
        for element in block.get("elements") or ():
            blocks.extend(_container(element, labels))
    return Document(tuple(b for b in blocks if b.text.strip()))


def _container(element: Mapping[str, Any], labels: Labels) -> list[Block]:
    kind = element.get("type")
    children = element.get("elements") or ()
    if kind == "rich_text_list":
        list_kind = _LIST_KINDS.get(str(element.get("style")), BlockKind.BULLET)
        first = int(element.get("offset") or 0) + 1
        indent = int(element.get("indent") or 0)
        return [
            Block(list_kind, _spans(item.get("elements") or (), labels), indent, first + i)
            for i, item in enumerate(children)
        ]
    spans = _spans(children, labels)
    if kind == "rich_text_preformatted":
        plain = "".join(span.text for span in spans)
        return [Block(BlockKind.CODE, merge_spans([Span(plain.strip("\n"))]))]
    if kind == "rich_text_quote":
        return [Block(BlockKind.QUOTE, _strip_newlines(spans))]
    return [Block(BlockKind.PARAGRAPH, _strip_newlines(spans))]


def _strip_newlines(spans: tuple[Span, ...]) -> tuple[Span, ...]:
    """Slack ends a section with its line break; blocks are joined by one newline."""
    text = "".join(span.text for span in spans)
    lead, trail = len(text) - len(text.lstrip("\n")), len(text.rstrip("\n"))
    if (lead, trail) == (0, len(text)):
        return spans
    return Document((Block(BlockKind.PARAGRAPH, spans),)).slice(lead, trail).blocks[0].spans


def _style(element: Mapping[str, Any]) -> Style:
    flags = element.get("style") or {}
    style = Style.NONE
    for name, flag in _STYLE_FLAGS:
        if flags.get(name):
            style |= flag
    return style


def _spans(elements: Any, labels: Labels) -> tuple[Span, ...]:
    out: list[Span] = []
    drop_space = False
    for element in elements:
        span = _element(element, labels)
        if span is None:  # a broadcast: drop it and one space after it
            drop_space = True
            continue
        if drop_space and span.user is None and span.url is None:
            span = Span(span.text.removeprefix(" "), span.style)
        drop_space = False
        out.append(span)
    return merge_spans(out)


def _element(element: Mapping[str, Any], labels: Labels) -> Span | None:
    kind = element.get("type")
    style = _style(element)
    if kind == "text":
        return Span(str(element.get("text") or ""), style)
    if kind == "link":
        url = str(element.get("url") or "")
        return Span(str(element.get("text") or url), style, url=url)
    if kind == "user":
        return Span("a colleague", style, user=str(element.get("user_id")))
    if kind == "usergroup":
        group = str(element.get("usergroup_id"))
        return Span(usergroup_text(labels.usergroups.get(group)), style)
    if kind == "channel":
        return Span(channel_text(labels.channels.get(str(element.get("channel_id")))), style)
    if kind == "emoji":
        tone = element.get("skin_tone")
        name = str(element.get("name") or "")
        return Span(emoji_text(name, int(tone) if tone else None, element.get("unicode")), style)
    if kind == "broadcast":
        return None
    if kind == "date":
        return Span(_date_text(element), style)
    # color, team and newer element types: whatever text they carry, never raw markup
    return Span(str(element.get("fallback") or element.get("text") or element.get("value") or ""))


def _date_text(element: Mapping[str, Any]) -> str:
    fallback = element.get("fallback")
    if fallback:
        return str(fallback)
    stamp = datetime.fromtimestamp(int(element.get("timestamp") or 0), UTC)
    return stamp.strftime("%Y-%m-%d %H:%M UTC")
