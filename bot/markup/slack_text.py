"""Slack's message `text` format (mrkdwn as events deliver it) into a `Document`.

Control sequences are `<...>` (links, mentions, broadcasts, dates) and `&amp; &lt; &gt;`;
emphasis is `*bold*` `_italic_` `~strike~` at word boundaries, `` `code` `` and
```` ``` ```` fences; a line starting with `>` (delivered as `&gt;`) is quoted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from bot.markup.document import Block, BlockKind, Document, Span, Style, merge_spans
from bot.markup.emoji_names import emoji_text

_ANGLE = re.compile(r"<([^<>\n]+)>")
_CODE = re.compile(r"`([^`\n]+)`")
_FENCE = "```"
_QUOTE = re.compile(r"^(?:&gt;|>) ?")
# `*x*`, `_x_`, `~x~`: the marker not inside a word, the content not starting or ending
# with a space (Slack's rule, which keeps snake_case and 2*3*4 literal)
_EMPHASIS = re.compile(r"(?<![^\W_])([*_~])(?=\S)(.+?)(?<=\S)\1(?![^\W_])")
_MARKER_STYLE = {"*": Style.BOLD, "_": Style.ITALIC, "~": Style.STRIKE}
_EMOJI = re.compile(r":([a-z0-9_+'-]+):(?::skin-tone-([2-6]):)?")
_SKIN_TONE_ONLY = re.compile(r"^skin-tone-[2-6]$")
_BROADCAST_NAMES = frozenset({"here", "channel", "everyone"})
# a broadcast and one space beside it go, so no double space is left behind
_BROADCAST = re.compile(r"(?:^|(?<=\s))<!(?:here|channel|everyone)(?:\|[^<>\n]*)?>[ \t]?", re.M)


def unescape(text: str) -> str:
    """Slack escapes only these three; `&amp;` last so `&amp;lt;` stays `&lt;`."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


@dataclass
class Labels:
    """Names Slack's text carries that rich_text elements lack (`<#C1|general>`)."""

    channels: dict[str, str] = field(default_factory=dict)
    usergroups: dict[str, str] = field(default_factory=dict)


def collect_labels(text: str) -> Labels:
    labels = Labels()
    for match in _ANGLE.finditer(text):
        target, _, label = match.group(1).partition("|")
        if target.startswith("#") and label:
            labels.channels[target[1:]] = unescape(label)
        elif target.startswith("!subteam^") and label:
            labels.usergroups[target.removeprefix("!subteam^")] = unescape(label)
    return labels


def channel_text(name: str | None) -> str:
    return f"#{name}" if name else "#channel"


def usergroup_text(label: str | None) -> str:
    """A user group reads as its handle without the `@`, like a person's name."""
    return label.lstrip("@") if label else "the team"


def angle_spans(content: str, style: Style) -> list[Span]:
    """One `<...>` sequence as the customer should read it.

    `<!here>`, `<!channel>` and `<!everyone>` disappear: they notify the team in Slack
    and mean nothing to a customer (as words they would read like part of the sentence).
    A user group reads as its name, a date as its fallback text.
    """
    target, _, label = content.partition("|")
    label = unescape(label)
    if target.startswith("@"):
        return [Span(label or "a colleague", style, user=target[1:])]
    if target.startswith("#"):
        return [Span(channel_text(label), style)]
    if target.startswith("!"):
        command = target[1:]
        if command.partition("^")[0] in _BROADCAST_NAMES:
            return []
        if command.startswith("subteam^"):
            return [Span(usergroup_text(label), style)]
        # `<!date^...|fallback>` and any newer command: the fallback text, else nothing
        return [Span(label, style)] if label else []
    url = unescape(target)
    return [Span(label or url, style, url=url)]


def _text_spans(text: str, style: Style) -> list[Span]:
    """Plain text: entities and emoji shortcodes; a lone `:skin-tone-N:` is dropped."""
    out: list[Span] = []
    pos = 0
    for match in _EMOJI.finditer(text):
        name, tone = match.group(1), match.group(2)
        if _SKIN_TONE_ONLY.match(name):
            continue
        out.append(Span(unescape(text[pos : match.start()]), style))
        out.append(Span(emoji_text(name, int(tone) if tone else None), style))
        pos = match.end()
    out.append(Span(unescape(text[pos:]), style))
    return out


def _code_spans(text: str, style: Style) -> list[Span]:
    """Inside code only `<...>` and entities are read; a link keeps its address visible."""
    out: list[Span] = []
    pos = 0
    for match in _ANGLE.finditer(text):
        out.append(Span(unescape(text[pos : match.start()]), style))
        for span in angle_spans(match.group(1), style):
            shown = span.text
            if span.url and not same_address(span.text, span.url):
                shown = f"{span.text} ({span.url})"
            out.append(Span(shown, style, user=span.user))
        pos = match.end()
    out.append(Span(unescape(text[pos:]), style))
    return out


def same_address(label: str, url: str) -> bool:
    """Whether a link's label only repeats its address (`<http://a.b|a.b>`)."""
    bare = re.sub(r"^(?:https?://|mailto:)", "", url, flags=re.IGNORECASE).rstrip("/")
    return label in (url, bare, bare + "/")


def _protected(line: str) -> list[tuple[int, int, str]]:
    """`<...>` and `` `code` `` ranges, which emphasis never looks inside."""
    ranges: list[tuple[int, int, str]] = []
    pos = 0
    while pos < len(line):
        angle, code = _ANGLE.search(line, pos), _CODE.search(line, pos)
        first = min((m for m in (angle, code) if m), key=lambda m: m.start(), default=None)
        if first is None:
            break
        ranges.append((first.start(), first.end(), "angle" if first is angle else "code"))
        pos = first.end()
    return ranges


def inline_spans(line: str, style: Style = Style.NONE) -> list[Span]:
    ranges = _protected(line)
    mask = list(line)
    for start, end, _ in ranges:
        mask[start:end] = "x" * (end - start)
    return _emphasis(line, "".join(mask), 0, len(line), style, ranges)


def _emphasis(
    line: str, mask: str, start: int, end: int, style: Style, ranges: list[tuple[int, int, str]]
) -> list[Span]:
    out: list[Span] = []
    pos = start
    while pos < end:
        match = _EMPHASIS.search(mask, pos, end)
        stop = match.start() if match else end
        out.extend(_plain_with_protected(line, pos, stop, style, ranges))
        if match is None:
            break
        inner = style | _MARKER_STYLE[match.group(1)]
        out.extend(_emphasis(line, mask, match.start(2), match.end(2), inner, ranges))
        pos = match.end()
    return out


def _plain_with_protected(
    line: str, start: int, end: int, style: Style, ranges: list[tuple[int, int, str]]
) -> list[Span]:
    out: list[Span] = []
    pos = start
    for lo, hi, kind in ranges:
        if hi <= start or lo >= end:
            continue
        out.extend(_text_spans(line[pos:lo], style))
        if kind == "angle":
            out.extend(angle_spans(line[lo + 1 : hi - 1], style))
        else:
            out.extend(_code_spans(line[lo + 1 : hi - 1], style | Style.CODE))
        pos = hi
    out.extend(_text_spans(line[pos:end], style))
    return out


def _line_blocks(text: str) -> list[Block]:
    """Text outside code fences: runs of quoted lines and runs of other lines."""
    blocks: list[Block] = []
    run: list[str] = []
    quoted = False

    def flush() -> None:
        spans: list[Span] = []
        for index, line in enumerate(run):
            if index:
                spans.append(Span("\n"))
            spans.extend(inline_spans(line))
        kind = BlockKind.QUOTE if quoted else BlockKind.PARAGRAPH
        block = Block(kind, merge_spans(spans))
        if block.text.strip():
            blocks.append(_strip_block(block))
        run.clear()

    for line in text.split("\n"):
        marker = _QUOTE.match(line)
        if run and bool(marker) != quoted:
            flush()
        quoted = bool(marker)
        run.append(line[marker.end() :] if marker else line)
    if run:
        flush()
    return blocks


def _strip_block(block: Block) -> Block:
    """No leading or trailing blank lines: blocks are joined by one newline."""
    text = block.text
    lead = len(text) - len(text.lstrip("\n"))
    trail = len(text.rstrip("\n"))
    return replace(Document((block,)).slice(lead, trail).blocks[0], continued=block.continued)


def parse_text(text: str) -> Document:
    blocks: list[Block] = []
    parts = _BROADCAST.sub("", text).split(_FENCE)
    if len(parts) % 2 == 0:  # an unclosed fence is literal text
        parts[-2:] = [parts[-2] + _FENCE + parts[-1]]
    for index, part in enumerate(parts):
        if index % 2 == 0:
            blocks.extend(_line_blocks(part))
            continue
        code = part.strip("\n")
        spans = merge_spans(_code_spans(code, Style.NONE))
        if code:
            blocks.append(Block(BlockKind.CODE, spans))
    return Document(tuple(blocks))
