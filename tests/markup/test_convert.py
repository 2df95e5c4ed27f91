"""Every Slack construct, on every network: table-driven (issue 15, point 1)."""

from __future__ import annotations

import ast
from typing import Any

import pytest

from bot.markup import (
    TARGETS,
    InternalNote,
    Markup,
    PreparedReply,
    parse_slack_message,
    prepare_reply,
    render,
    resolve_mentions,
)
from tests.refs import ref_json, ref_path

NAMES = {"U0123456": "Alice Martin", "W111": "Bob"}


async def names(user_id: str) -> str:
    return NAMES[user_id]


async def convert(event: dict[str, Any], markup: Markup) -> str:
    document = await resolve_mentions(parse_slack_message(event), names)
    return render(document, markup)


# (Slack `text`, Telegram HTML, WhatsApp, plain)
TEXT_CASES = [
    (
        "Hello &amp; &lt;world&gt;",
        "Hello &amp; &lt;world&gt;",
        "Hello & <world>",
        "Hello & <world>",
    ),
    (
        "Under &lt;$50 &amp; free shipping: <https://shop.example/x|our shop> :smile:",
        'Under &lt;$50 &amp; free shipping: <a href="https://shop.example/x">our shop</a> 😄',
        "Under <$50 & free shipping: our shop (https://shop.example/x) 😄",
        "Under <$50 & free shipping: our shop (https://shop.example/x) 😄",
    ),
    (
        "see <https://a.example/p?x=1&amp;y=2>",
        'see <a href="https://a.example/p?x=1&amp;y=2">https://a.example/p?x=1&amp;y=2</a>',
        "see https://a.example/p?x=1&y=2",
        "see https://a.example/p?x=1&y=2",
    ),
    (
        "<http://www.foo.com|www.foo.com>",
        '<a href="http://www.foo.com">www.foo.com</a>',
        "http://www.foo.com",
        "http://www.foo.com",
    ),
    (
        "write <mailto:help@shop.example|help@shop.example>",
        'write <a href="mailto:help@shop.example">help@shop.example</a>',
        "write help@shop.example",
        "write help@shop.example",
    ),
    (
        "<mailto:help@shop.example|our desk>",
        '<a href="mailto:help@shop.example">our desk</a>',
        "our desk (mailto:help@shop.example)",
        "our desk (mailto:help@shop.example)",
    ),
    ("ask <@U0123456>", "ask Alice Martin", "ask Alice Martin", "ask Alice Martin"),
    ("ask <@U0123456|alice>", "ask Alice Martin", "ask Alice Martin", "ask Alice Martin"),
    ("in <#C0123|general>", "in #general", "in #general", "in #general"),
    (
        "<!here> your order shipped",
        "your order shipped",
        "your order shipped",
        "your order shipped",
    ),
    ("Hi <!channel> and <!everyone>!", "Hi and !", "Hi and !", "Hi and !"),
    ("ask <!subteam^S0123|@sales-team>", "ask sales-team", "ask sales-team", "ask sales-team"),
    (
        "on <!date^1392734382^{date_pretty}|Feb 18, 2014 at 6:39 AM PST>",
        "on Feb 18, 2014 at 6:39 AM PST",
        "on Feb 18, 2014 at 6:39 AM PST",
        "on Feb 18, 2014 at 6:39 AM PST",
    ),
    ("*bold* text", "<b>bold</b> text", "*bold* text", "bold text"),
    ("_italic_ text", "<i>italic</i> text", "_italic_ text", "italic text"),
    ("~gone~ text", "<s>gone</s> text", "~gone~ text", "gone text"),
    ("*bold _both_*", "<b>bold </b><b><i>both</i></b>", "*bold* *_both_*", "bold both"),
    ("run `a &lt; b`", "run <code>a &lt; b</code>", "run ```a < b```", "run a < b"),
    (
        "snake_case_name and 2*3*4",
        "snake_case_name and 2*3*4",
        "snake_case_name and 2*3*4",
        "snake_case_name and 2*3*4",
    ),
    (
        "```\nif a &lt; b:\n    go()\n```",
        "<pre>if a &lt; b:\n    go()</pre>",
        "```if a < b:\n    go()```",
        "if a < b:\n    go()",
    ),
    (
        "&gt; quoted *here*\nreply",
        "<blockquote>quoted <b>here</b></blockquote>\nreply",
        "> quoted *here*\nreply",
        "> quoted here\nreply",
    ),
    ("thanks :+1::skin-tone-4: :wave:", "thanks 👍🏽 👋", "thanks 👍🏽 👋", "thanks 👍🏽 👋"),
    (
        "our :partyparrot: mascot",
        "our :partyparrot: mascot",
        "our :partyparrot: mascot",
        "our :partyparrot: mascot",
    ),
    ("• one\n• two", "• one\n• two", "• one\n• two", "• one\n• two"),
]


@pytest.mark.parametrize(("text", "telegram", "whatsapp", "plain"), TEXT_CASES)
async def test_text_markup_becomes_each_networks_text(
    text: str, telegram: str, whatsapp: str, plain: str
) -> None:
    event = {"type": "message", "text": text}
    assert await convert(event, Markup.TELEGRAM_HTML) == telegram
    assert await convert(event, Markup.WHATSAPP) == whatsapp
    assert await convert(event, Markup.PLAIN) == plain


def section(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"type": "rich_text_section", "elements": list(elements)}


def text(value: str, **style: bool) -> dict[str, Any]:
    return {"type": "text", "text": value, **({"style": style} if style else {})}


def rich(*elements: dict[str, Any], fallback: str = "") -> dict[str, Any]:
    return {
        "type": "message",
        "text": fallback,
        "blocks": [{"type": "rich_text", "elements": list(elements)}],
    }


# (event with rich_text blocks, Telegram HTML, WhatsApp, plain)
BLOCK_CASES = [
    (
        rich(
            section(
                text("Hi "),
                text("there", bold=True),
                text(", "),
                text("really", italic=True),
                text(" "),
                text("old", strike=True),
                text(" "),
                text("x < y", code=True),
            )
        ),
        "Hi <b>there</b>, <i>really</i> <s>old</s> <code>x &lt; y</code>",
        "Hi *there*, _really_ ~old~ ```x < y```",
        "Hi there, really old x < y",
    ),
    (
        rich(
            section(
                text("see "),
                {"type": "link", "url": "https://shop.example/x", "text": "our shop"},
                text(" or "),
                {"type": "link", "url": "https://shop.example/"},
            )
        ),
        'see <a href="https://shop.example/x">our shop</a> or '
        '<a href="https://shop.example/">https://shop.example/</a>',
        "see our shop (https://shop.example/x) or https://shop.example/",
        "see our shop (https://shop.example/x) or https://shop.example/",
    ),
    (
        rich(
            section(
                {"type": "broadcast", "range": "here"},
                text(" ask "),
                {"type": "user", "user_id": "U0123456"},
                text(" in "),
                {"type": "channel", "channel_id": "C0123"},
                text(" or "),
                {"type": "usergroup", "usergroup_id": "S0123"},
            ),
            fallback="<!here> ask <@U0123456> in <#C0123|general> or <!subteam^S0123|@sales>",
        ),
        "ask Alice Martin in #general or sales",
        "ask Alice Martin in #general or sales",
        "ask Alice Martin in #general or sales",
    ),
    (
        rich(
            section(
                {"type": "emoji", "name": "wave", "unicode": "1f44b-1f3fd", "skin_tone": 4},
                {"type": "emoji", "name": "+1", "skin_tone": 2},
                {"type": "emoji", "name": "partyparrot"},
                {
                    "type": "date",
                    "timestamp": 1392734382,
                    "format": "{date}",
                    "fallback": "Feb 18, 2014",
                },
            )
        ),
        "👋🏽👍🏻:partyparrot:Feb 18, 2014",
        "👋🏽👍🏻:partyparrot:Feb 18, 2014",
        "👋🏽👍🏻:partyparrot:Feb 18, 2014",
    ),
    (
        rich(
            section(text("Steps:\n")),
            {
                "type": "rich_text_list",
                "style": "ordered",
                "elements": [section(text("open")), section(text("click"))],
            },
            {
                "type": "rich_text_list",
                "style": "bullet",
                "indent": 1,
                "elements": [section(text("detail"))],
            },
        ),
        "Steps:\n1. open\n2. click\n    • detail",
        "Steps:\n1. open\n2. click\n    • detail",
        "Steps:\n1. open\n2. click\n    • detail",
    ),
    (
        rich(
            {"type": "rich_text_quote", "elements": [text("you said "), text("this", bold=True)]},
            {"type": "rich_text_preformatted", "elements": [text("a < b\nc")]},
        ),
        "<blockquote>you said <b>this</b></blockquote>\n<pre>a &lt; b\nc</pre>",
        "> you said *this*\n```a < b\nc```",
        "> you said this\na < b\nc",
    ),
]


@pytest.mark.parametrize(("event", "telegram", "whatsapp", "plain"), BLOCK_CASES)
async def test_rich_text_becomes_each_networks_text(
    event: dict[str, Any], telegram: str, whatsapp: str, plain: str
) -> None:
    assert await convert(event, Markup.TELEGRAM_HTML) == telegram
    assert await convert(event, Markup.WHATSAPP) == whatsapp
    assert await convert(event, Markup.PLAIN) == plain


async def test_blocks_are_preferred_to_text() -> None:
    event = rich(section(text("from blocks", bold=True)), fallback="from text")
    assert await convert(event, Markup.PLAIN) == "from blocks"


@pytest.mark.parametrize("name", sorted(TARGETS))
async def test_every_target_gets_the_issue_example_unescaped(name: str) -> None:
    event = {"text": "Under &lt;$50 &amp; free shipping: <https://shop.example/x|our shop> :smile:"}
    prepared = await prepare_reply(event, TARGETS[name], names)
    assert isinstance(prepared, PreparedReply)
    (sent,) = prepared.texts
    if name == "telegram":
        assert prepared.parse_mode == "HTML"
        assert sent == (
            'Under &lt;$50 &amp; free shipping: <a href="https://shop.example/x">our shop</a> 😄'
        )
    else:
        assert prepared.parse_mode is None
        assert sent == "Under <$50 & free shipping: our shop (https://shop.example/x) 😄"


def _slack_conformance() -> list[dict[str, Any]]:
    manifest = ref_json("conformance/MANIFEST.json")
    return [entry for entry in manifest if entry["network"] == "slack"]


async def test_conformance_slack_payloads_meet_their_expectations() -> None:
    """The captured Slack payloads whose MANIFEST expectation concerns the sent text."""
    checked = 0
    for entry in _slack_conformance():
        expect = entry["expect"]
        event = ref_json(f"conformance/{entry['file']}").get("event", {})
        if expect["kind"] not in ("reply_sent", "no_empty_send") or event.get("type") != "message":
            continue
        for name, target in TARGETS.items():
            prepared = await prepare_reply(event, target, names)
            assert isinstance(prepared, PreparedReply), (entry["name"], name)
            assert all(t.strip() for t in prepared.texts), (entry["name"], name)
            shown = "\n".join(prepared.texts)
            if target.parse_mode == "HTML":
                shown = shown.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
                shown = shown.replace('<a href="http://www.foo.com">', "").replace("</a>", "")
            for needle in expect.get("must_contain", []):
                assert needle in shown, (entry["name"], name, shown)
            if target.parse_mode is None:
                for needle in expect.get("must_not_contain", []):
                    assert needle not in shown, (entry["name"], name, shown)
        checked += 1
    assert checked >= 3


async def test_shared_slack_thread_broadcast_reply_is_plain() -> None:
    source = ref_path("slack/event_thread_broadcast.pydict.txt").read_text()
    event = ast.literal_eval(source.partition("=")[2].strip())["event"]
    prepared = await prepare_reply(event, TARGETS["whatsapp"], names)
    assert prepared == PreparedReply(("Hi there!",), None)


async def test_a_note_is_not_prepared_for_sending() -> None:
    prepared = await prepare_reply(
        {"text": "&gt; *Note:* refund approved"}, TARGETS["telegram"], names
    )
    assert prepared == InternalNote()


async def test_a_file_without_text_gives_no_message() -> None:
    prepared = await prepare_reply(
        {"text": "", "subtype": "file_share"}, TARGETS["telegram"], names
    )
    assert prepared == PreparedReply((), "HTML")
