"""Saved replies, the pure parts: `/replies` parsing, placeholders, search and labels."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.blocks import saved_replies as blocks
from bot.networks.registry import labels
from bot.services.refusal import Refusal
from bot.services.saved_replies import (
    Command,
    fill,
    matches,
    network_keys,
    parse_command,
    placeholder_values,
)
from storage.models import Conversation, SavedReply

NETWORKS = labels()
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def saved(name: str, text: str, network: str = "") -> SavedReply:
    return SavedReply(
        id=1,
        name=name,
        network=network,
        text=text,
        created_by="U1",
        updated_by="U1",
        created_at=T0,
        updated_at=T0,
    )


def conversation(network: str = "telegram", **context: str) -> Conversation:
    return Conversation(
        id=12,
        network=network,
        external_key="k",
        customer_id="c",
        customer_name="Ana",
        reply_context=dict(context),
        created_at=T0,
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("list", Command("list")),
        ("LIST telegram", Command("list", network="telegram")),
        ("list network=x", Command("list", network="x")),
        (
            "add Greeting Hello {customer_name}!",
            Command("add", "greeting", "", "Hello {customer_name}!"),
        ),
        (
            "add greeting network=Telegram  Hi {customer_name} 👋",
            Command("add", "greeting", "telegram", "Hi {customer_name} 👋"),
        ),
        ("add greeting network=instagram Hi", Command("add", "greeting", "instagram", "Hi")),
        (
            "edit refund-policy.v2 Line one\nline two",
            Command("edit", "refund-policy.v2", "", "Line one\nline two"),
        ),
        ("remove greeting", Command("remove", "greeting")),
        ("add greeting\nHello,\n\nsee you", Command("add", "greeting", "", "Hello,\n\nsee you")),
        ("add greeting network=x\n  Hi", Command("add", "greeting", "x", "Hi")),
        ("remove greeting network=whatsapp", Command("remove", "greeting", "whatsapp")),
        # `network=` only counts right after the name: later it is text
        (
            "add tip Set network=telegram in the app",
            Command("add", "tip", "", "Set network=telegram in the app"),
        ),
    ],
)
def test_parse_command(line: str, expected: Command) -> None:
    assert parse_command(line, NETWORKS) == expected


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("", "Usage: `/replies list"),
        ("show greeting", "`show` is not a `/replies` action"),
        ("add", "Which saved reply?"),
        ("add greeting", "needs the text after the name"),
        ("add greeting network=telegram", "needs the text after the name"),
        ("add gr@eting Hi", "not a usable name"),
        ("add " + "a" * 65 + " Hi", "not a usable name"),
        ("add greeting network=fax Hi", "`fax` is not a network. Use one of: generic, instagram"),
        ("add greeting network= Hi", "`(empty)` is not a network"),
        ("list fax", "`fax` is not a network"),
        (
            "add late Sorry {customer_name}, order {order_id} {Eta}",
            "Unknown placeholder {Eta}, {order_id}",
        ),
        ("add long " + "x" * 3001, "at most 3,000"),
        ("remove greeting please", "takes a name and an optional network only"),
    ],
)
def test_parse_command_refuses_with_the_fix(line: str, says: str) -> None:
    with pytest.raises(Refusal) as refused:
        parse_command(line, NETWORKS)
    assert says in refused.value.sentence


def test_fill_replaces_known_placeholders_once() -> None:
    values = {"customer_name": "{agent_name}", "agent_name": "Maya", "conversation": "#12"}
    template = "Hi {customer_name}, {agent_name} on {conversation} ({order_id}, {customer_name})"
    assert fill(template, values) == "Hi {agent_name}, Maya on #12 ({order_id}, {agent_name})"
    assert fill("no placeholders {}", values) == "no placeholders {}"


def test_placeholder_values_escape_names_so_they_never_mention() -> None:
    customer = conversation()
    customer.customer_name = "<!channel> & <@U1>"
    values = placeholder_values(customer, "Maya <b>")
    assert values == {
        "customer_name": "&lt;!channel&gt; &amp; &lt;@U1&gt;",
        "agent_name": "Maya &lt;b&gt;",
        "conversation": "#12",
    }


def test_network_keys_most_specific_first() -> None:
    assert network_keys(conversation("telegram")) == ["telegram"]
    assert network_keys(conversation("meta", channel="instagram")) == ["instagram", "meta"]
    assert network_keys(conversation("meta", channel="facebook_comment")) == ["meta"]


def test_search_matches_every_word_in_name_or_text() -> None:
    refund = saved("refund", "Refunds take 5 days &amp; no fee")
    assert matches(refund, "")
    assert matches(refund, "REFUND")
    assert matches(refund, "days & fee")  # entities are searched as the text reads
    assert not matches(refund, "days shipping")


def test_option_labels_fit_slacks_75_characters() -> None:
    assert blocks.option_label(saved("hi", "Hello\n\n  there &lt;3")) == "hi: Hello there <3"
    long = blocks.option_label(saved("policy", "word " * 40))
    assert len(long) == 75 and long.endswith("…")


def test_posted_blocks_fall_back_to_text_when_too_long() -> None:
    assert blocks.posted("x" * 3001, "policy", "U1") is None
    posted = blocks.posted("Hello", "greeting", "U1")
    assert posted is not None and posted[0]["text"]["text"] == "Hello"
    assert "<@U1>" in str(posted[1])


def test_listing_filters_by_network() -> None:
    rows = [
        saved("greeting", "Hello"),
        saved("greeting", "Hi", "telegram"),
        saved("bye", "Bye", "x"),
    ]
    assert blocks.listing(rows).startswith("*Saved replies* (3)")
    assert "`greeting` _(telegram)_: Hi" in blocks.listing(rows)
    only = blocks.listing(rows, "telegram")
    assert "(2)" in only and "bye" not in only
    assert blocks.listing([], "x") == "No saved replies for x."
