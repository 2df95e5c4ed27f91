"""Whatever the team types, no Slack markup reaches the customer and nothing visible is
lost (issue 15, tests)."""

from __future__ import annotations

import asyncio
from html.parser import HTMLParser

from hypothesis import example, given, settings

from bot.markup import Markup, parse_slack_message, render, resolve_mentions, visible_text
from tests.markup.strategies import SLACK_MARKUP, resolve, slack_messages

TELEGRAM_TAGS = {"b", "i", "s", "code", "pre", "blockquote", "a"}


class TagChecker(HTMLParser):
    """Fails on a tag Telegram does not know and on unbalanced tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag in TELEGRAM_TAGS, tag
        assert tag != "a" or [name for name, _ in attrs] == ["href"]
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open.pop() == tag, tag


def valid_telegram_html(rendered: str) -> bool:
    checker = TagChecker()
    checker.feed(rendered)
    checker.close()
    return not checker.open


def is_subsequence(needle: str, haystack: str) -> bool:
    chars = iter(haystack)
    return all(char in chars for char in needle)


def visible_chars(text: str) -> str:
    return "".join(char for char in text if not char.isspace())


@settings(max_examples=300, deadline=None)
@given(slack_messages())
@example(("&lt;<https://ex.example/p?a=1&amp;b=2|>", "<https://ex.example/p?a=1&b=2"))
def test_no_slack_markup_reaches_the_customer(message: tuple[str, str]) -> None:
    slack_text, visible = message
    document = asyncio.run(resolve_mentions(parse_slack_message({"text": slack_text}), resolve))
    for markup in Markup:
        rendered = render(document, markup)
        shown = visible_text(rendered, markup)
        for mark in SLACK_MARKUP:  # only what the person typed literally
            assert shown.count(mark) <= visible.count(mark), (markup, mark, slack_text, shown)
        assert is_subsequence(visible_chars(visible), visible_chars(shown)), (markup, shown)
        if markup is Markup.TELEGRAM_HTML:
            assert valid_telegram_html(rendered), rendered
