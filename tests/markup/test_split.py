"""Limits: long private replies are split with valid formatting in each message, long
public replies are refused with the limit and the overrun (issue 15, point 3)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.markup import (
    TARGETS,
    Document,
    Markup,
    OverLimit,
    PreparedReply,
    parse_slack_message,
    prepare_document,
    prepare_reply,
    render,
    resolve_mentions,
    visible_text,
)
from bot.markup.split import split_document
from tests.markup.strategies import resolve, slack_messages
from tests.markup.test_properties import valid_telegram_html

LIMITS = {
    "telegram": 4096,
    "whatsapp": 4096,
    "messenger": 2000,
    "instagram": 1000,
    "x_dm": 10_000,
    "facebook_comment": 8000,
    "x_reply": 280,
}


@pytest.mark.parametrize(("name", "limit"), sorted(LIMITS.items()))
def test_each_network_has_the_limit_of_the_issue(name: str, limit: int) -> None:
    assert TARGETS[name].limit == limit


def test_only_comments_and_x_replies_are_public() -> None:
    public = sorted(name for name, target in TARGETS.items() if target.public)
    assert public == ["facebook_comment", "instagram_comment", "instagram_mention", "x_reply"]


def prepared(text: str, target_name: str, limit: int | None = None) -> PreparedReply | OverLimit:
    target = TARGETS[target_name]
    if limit is not None:
        target = replace(target, limit=limit)
    document = parse_slack_message({"text": text})
    return prepare_document(asyncio.run(resolve_mentions(document, resolve)), target)


def test_a_long_public_x_reply_is_refused_with_the_overrun() -> None:
    result = prepared("a" * 312, "x_reply")
    assert isinstance(result, OverLimit)
    assert result.sentence == (
        "X public replies are limited to 280 characters; this reply is 312 (32 over)."
    )


def test_x_counts_a_long_link_as_23() -> None:
    long_link = "<https://shop.example/" + "p" * 300 + ">"
    result = prepared("see " + long_link, "x_reply")
    assert isinstance(result, PreparedReply) and len(result.texts) == 1


def test_a_long_facebook_comment_is_refused() -> None:
    result = prepared("word " * 2000, "facebook_comment")
    assert isinstance(result, OverLimit)
    assert result.sentence.startswith("Facebook comment replies are limited to 8,000 characters")


def test_a_reply_within_the_limit_is_one_message() -> None:
    assert prepared("x" * 1000, "instagram") == PreparedReply(("x" * 1000,), None)


# (text, limit, expected messages on plain networks)
SPLITS = [
    ("First para.\n\nSecond para is here.", 25, ["First para.", "Second para is here."]),
    ("One sentence here. Two sentence here.", 25, ["One sentence here.", "Two sentence here."]),
    ("alpha beta gamma delta epsilon", 12, ["alpha beta", "gamma delta", "epsilon"]),
    ("abcdefghijklmnopqrstuvwxyz", 10, ["abcdefghij", "klmnopqrst", "uvwxyz"]),
    ("line one\nline two\nline three", 18, ["line one\nline two", "line three"]),
]


@pytest.mark.parametrize(("text", "limit", "expected"), SPLITS)
def test_private_replies_split_at_paragraph_sentence_word_then_anywhere(
    text: str, limit: int, expected: list[str]
) -> None:
    assert prepared(text, "messenger", limit) == PreparedReply(tuple(expected), None)


def test_a_bold_span_split_is_closed_and_reopened() -> None:
    result = prepared("*" + "bold words " * 6 + "end*", "telegram", 40)
    assert isinstance(result, PreparedReply)
    assert len(result.texts) > 1
    assert all(t.startswith("<b>") and t.endswith("</b>") for t in result.texts)
    whatsapp = prepared("*" + "bold words " * 6 + "end*", "whatsapp", 40)
    assert isinstance(whatsapp, PreparedReply)
    assert all(t.startswith("*") and t.endswith("*") for t in whatsapp.texts)


def test_a_code_block_split_is_closed_and_reopened() -> None:
    code = "```\n" + "\n".join(f"line {n} &lt; {n + 1}" for n in range(12)) + "\n```"
    result = prepared(code, "telegram", 60)
    assert isinstance(result, PreparedReply)
    assert len(result.texts) > 1
    for text in result.texts:
        assert text.startswith("<pre>") and text.endswith("</pre>")
        assert "&lt;" in text


def test_telegram_counts_visible_utf16_units_not_tags() -> None:
    # 30 emoji are 60 UTF-16 units; the tags and the link address do not count
    text = "*" + "😄" * 30 + "* <https://shop.example/a-long-path|x>"
    assert prepared(text, "telegram", 62) == PreparedReply(
        ("<b>" + "😄" * 30 + '</b> <a href="https://shop.example/a-long-path">x</a>',), "HTML"
    )
    split = prepared(text, "telegram", 61)
    assert isinstance(split, PreparedReply) and len(split.texts) == 2


def test_a_continued_list_item_does_not_repeat_its_marker() -> None:
    event = {
        "text": "",
        "blocks": [
            {
                "type": "rich_text",
                "elements": [
                    {
                        "type": "rich_text_list",
                        "style": "ordered",
                        "elements": [
                            {
                                "type": "rich_text_section",
                                "elements": [{"type": "text", "text": "word " * 10}],
                            }
                        ],
                    }
                ],
            }
        ],
    }
    result = asyncio.run(prepare_reply(event, replace(TARGETS["messenger"], limit=30), resolve))
    assert isinstance(result, PreparedReply)
    assert result.texts[0].startswith("1. word")
    assert not any(t.startswith("1.") for t in result.texts[1:])


def _whatsapp_balanced(text: str) -> bool:
    if text.count("```") % 2:
        return False
    outside_code = re.sub(r"```.*?```", "", text, flags=re.S)
    return all(line.count(mark) % 2 == 0 for line in outside_code.split("\n") for mark in "*_~")


def _rejoins(pieces: list[Document], original: str) -> bool:
    """Each piece follows the previous one in the original; only whitespace is lost."""
    pos = 0
    for piece in pieces:
        text = piece.text
        while (
            pos < len(original) and original[pos].isspace() and not text.startswith(original[pos])
        ):
            pos += 1
        if not original.startswith(text, pos):
            return False
        pos += len(text)
    return not original[pos:].strip()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(slack_messages(), min_size=1, max_size=6),
    st.sampled_from(["telegram", "whatsapp", "messenger"]),
    st.integers(min_value=40, max_value=200),
)
def test_split_pieces_fit_keep_the_text_and_stay_valid(
    messages: list[tuple[str, str]], name: str, limit: int
) -> None:
    text = "\n\n".join(slack for slack, _ in messages)
    document = asyncio.run(resolve_mentions(parse_slack_message({"text": text}), resolve))
    target = replace(TARGETS[name], limit=limit)

    def fits(piece: Document) -> bool:
        return target.length(render(piece, target.markup)) <= limit

    pieces = split_document(document, fits)
    assert _rejoins(pieces, document.text)
    for piece in pieces:
        rendered = render(piece, target.markup)
        assert target.length(rendered) <= limit, rendered
        assert visible_text(rendered, target.markup).strip()
        if target.markup is Markup.TELEGRAM_HTML:
            assert valid_telegram_html(rendered), rendered
        if target.markup is Markup.WHATSAPP:
            assert _whatsapp_balanced(rendered), rendered
