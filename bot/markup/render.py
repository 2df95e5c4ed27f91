"""A `Document` in each network's own formatting.

Telegram: HTML parse mode (`<b> <i> <s> <code> <pre> <blockquote> <a href>`), all other
text escaped. WhatsApp: `*bold*` `_italic_` `~strike~`, triple-backtick monospace and
`> ` quotes. Everywhere else plain text. Outside Telegram a link reads `label (url)`,
or the bare address when the label only repeats it.
"""

from __future__ import annotations

import html
import re
from enum import StrEnum

from bot.markup.document import Block, BlockKind, Document, Span, Style
from bot.markup.slack_text import same_address


class Markup(StrEnum):
    TELEGRAM_HTML = "telegram_html"
    WHATSAPP = "whatsapp"
    PLAIN = "plain"


_WHATSAPP_MARKERS = ((Style.STRIKE, "~"), (Style.ITALIC, "_"), (Style.BOLD, "*"))
_TELEGRAM_TAGS = ((Style.STRIKE, "s"), (Style.ITALIC, "i"), (Style.BOLD, "b"))
_TAG = re.compile(r"<[^>]*>")


def render(document: Document, markup: Markup) -> str:
    return "\n".join(_block(block, markup) for block in document.blocks)


def visible_text(rendered: str, markup: Markup) -> str:
    """What the customer reads: Telegram's HTML without tags and entities."""
    if markup is Markup.TELEGRAM_HTML:
        return html.unescape(_TAG.sub("", rendered))
    return rendered


def _block(block: Block, markup: Markup) -> str:
    if block.kind is BlockKind.CODE:
        code = block.text
        if markup is Markup.TELEGRAM_HTML:
            return f"<pre>{html.escape(code, quote=False)}</pre>"
        return f"```{code}```" if markup is Markup.WHATSAPP else code
    body = "".join(_span(span, markup) for span in block.spans)
    if block.kind is BlockKind.QUOTE:
        if markup is Markup.TELEGRAM_HTML:
            return f"<blockquote>{body}</blockquote>"
        return "\n".join(f"> {line}" for line in body.split("\n"))
    if block.kind in (BlockKind.BULLET, BlockKind.ORDERED):
        indent = "    " * block.indent
        if block.continued:
            return indent + body
        marker = "•" if block.kind is BlockKind.BULLET else f"{block.number}."
        return f"{indent}{marker} {body}"
    return body


def _span(span: Span, markup: Markup) -> str:
    if markup is Markup.TELEGRAM_HTML:
        return _telegram_span(span)
    text = _whatsapp_styled(span.text, span.style) if markup is Markup.WHATSAPP else span.text
    if span.url is None:
        return text
    if same_address(span.text, span.url):
        return span.url.removeprefix("mailto:")
    return f"{text} ({span.url})"


def _telegram_span(span: Span) -> str:
    text = html.escape(span.text, quote=False)
    if span.url is not None:
        return f'<a href="{html.escape(span.url)}">{_telegram_styled(text, span.style)}</a>'
    return _telegram_styled(text, span.style)


def _telegram_styled(text: str, style: Style) -> str:
    if Style.CODE in style:  # Telegram's code may not hold other formatting
        return f"<code>{text}</code>"
    for flag, tag in _TELEGRAM_TAGS:
        if flag in style:
            text = f"<{tag}>{text}</{tag}>"
    return text


def _whatsapp_styled(text: str, style: Style) -> str:
    """Markers hug the words: WhatsApp ignores `* bold*`, and they do not cross lines."""
    if style is Style.NONE:
        return text
    return "\n".join(_whatsapp_line(line, style) for line in text.split("\n"))


def _whatsapp_line(line: str, style: Style) -> str:
    core = line.strip()
    if not core:
        return line
    lead, trail = line[: len(line) - len(line.lstrip())], line[len(line.rstrip()) :]
    if Style.CODE in style:
        core = f"```{core}```"
    else:
        for flag, marker in _WHATSAPP_MARKERS:
            if flag in style:
                core = f"{marker}{core}{marker}"
    return lead + core + trail
