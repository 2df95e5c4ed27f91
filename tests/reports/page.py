"""Reading the reports page back: its figures, links and sections."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any


class PageReader(HTMLParser):
    """Collects each `data-figure`'s exact value, the links, and the section headings."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, Any] = {}
        self.links: list[str] = []
        self.headings: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if "data-figure" in found:
            self.figures[str(found["data-figure"])] = json.loads(str(found["data-value"]))
        if tag == "a" and found.get("href"):
            self.links.append(str(found["href"]))
        self._in_h2 = tag == "h2"

    def handle_data(self, data: str) -> None:
        if self._in_h2:
            self.headings.append(data)
            self._in_h2 = False


def read_page(html: str) -> PageReader:
    reader = PageReader()
    reader.feed(html)
    return reader


HEADLINE = (
    "received",
    "conversations",
    "turns",
    "answered_turns",
    "response_rate",
    "avg_response_seconds",
    "median_response_seconds",
    "p90_response_seconds",
    "avg_first_response_seconds",
    "unanswered",
    "oldest_unanswered_seconds",
)
