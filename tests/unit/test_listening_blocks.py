"""Listening's blocks: customer words and addresses can neither ping nor inject links."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bot.blocks.listening import DIGEST_CHUNK, DISMISS, OPEN, digest_blocks, mention_blocks
from storage.models import ListenMention, MentionState

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def mention(**fields: object) -> ListenMention:
    values: dict[str, object] = {
        "id": 7,
        "source_key": "url:e.example/1",
        "source": "generic",
        "external_id": "1",
        "url": "https://e.example/1",
        "author_id": "a",
        "author_name": "Ada <!here>",
        "text": "<!channel> relaydsk <@U0BOSS01> <https://evil.example|click>",
        "term": "Relaydesk",
        "variant": "Relaydesk",
        "found": "relaydsk",
        "edits": 1,
        "sent_at": T0,
        "found_at": T0,
        "opening": {"network": "generic", "conversation_key": "1", "reply_context": {}},
        "state": MentionState.POSTED,
        **fields,
    }
    return ListenMention(**values)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://e.example/a|b>c&d e", "<https://e.example/a%7Cb%3Ec&amp;d%20e|open on the web>"),
        ("javascript:alert(1)", None),
        ("https://", None),
        (None, None),
    ],
)
def test_only_web_addresses_are_links_and_they_are_encoded(
    url: str | None, shown: str | None
) -> None:
    blocks = json.dumps(mention_blocks(mention(url=url), {"generic"}))
    if shown is None:
        assert "open on" not in blocks
    else:
        assert shown in blocks


def test_words_are_escaped_and_buttons_follow_the_state() -> None:
    blocks = mention_blocks(mention(), {"generic"})
    text = json.dumps(blocks)
    for raw in ("<!channel>", "<@U0BOSS01>", "<https://evil.example|click>", "<!here>"):
        assert raw not in text
    assert "&lt;!channel&gt;" in text and "Ada &lt;!here&gt;" in text
    actions = [e["action_id"] for e in blocks[-1]["elements"]]
    assert actions == [OPEN, DISMISS]
    assert [e["action_id"] for e in mention_blocks(mention(), set())[-1]["elements"]] == [DISMISS]
    done = json.dumps(mention_blocks(mention(state=MentionState.DISMISSED, acted_by="U1"), set()))
    assert "Dismissed by <@U1>" in done and OPEN not in done and DISMISS not in done


def test_a_full_digest_part_stays_under_slacks_50_blocks() -> None:
    many = [mention(id=n, text="x" * 5000) for n in range(DIGEST_CHUNK)]
    blocks = digest_blocks(T0, 500, [("Relaydesk", "generic", 500)], many, 0, 12, {"generic"})
    assert len(blocks) <= 50
    assert all(len(b["text"]["text"]) < 3000 for b in blocks if b["type"] == "section")
    assert len(json.dumps(blocks)) < 40_000 * 2
