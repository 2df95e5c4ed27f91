"""Telegram's rendered HTML as plain text plus `entities`, the form the adapter sends.

Why entities rather than `parse_mode=HTML`: with HTML the `text` field carries escapes
(`Hello &amp; &lt;world&gt;`), one unescaped `<` makes Telegram refuse the whole
message, and anyone reading the request sees markup instead of what the customer
reads. With entities, `text` is exactly the customer's text and the formatting is a
separate list of ranges (offsets and lengths in UTF-16 code units, as Telegram counts).
The HTML renderer stays the one description of Telegram formatting (splitting measures
it); this module only reads back the tags that renderer writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from bot.markup.lengths import utf16_length

_ENTITY_TYPES = {
    "b": "bold",
    "i": "italic",
    "s": "strikethrough",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "a": "text_link",
}


@dataclass(frozen=True, slots=True)
class TelegramText:
    """`text` to send as is (no parse_mode) and its `entities`."""

    text: str
    entities: tuple[dict[str, Any], ...] = field(default=())


def telegram_text(rendered: str) -> TelegramText:
    """Read back what `render(..., Markup.TELEGRAM_HTML)` produced."""
    reader = _Reader()
    reader.feed(rendered)
    reader.close()
    return TelegramText("".join(reader.parts), tuple(reader.entities))


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.entities: list[dict[str, Any]] = []
        self._offset = 0  # UTF-16 units so far
        self._open: list[tuple[str, int, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        url = dict(attrs).get("href") if tag == "a" else None
        self._open.append((tag, self._offset, url))

    def handle_endtag(self, tag: str) -> None:
        if not self._open or self._open[-1][0] != tag:
            return  # the renderer never writes unbalanced tags
        name, start, url = self._open.pop()
        kind = _ENTITY_TYPES.get(name)
        if kind is None or self._offset == start:
            return
        entity: dict[str, Any] = {"type": kind, "offset": start, "length": self._offset - start}
        if url is not None:
            entity["url"] = url
        self.entities.append(entity)

    def handle_data(self, data: str) -> None:
        self.parts.append(data)
        self._offset += utf16_length(data)
