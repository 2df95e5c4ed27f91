"""Every payload of the shared conformance corpus, replayed through the bot against the fakes.

Each entry's expectation comes from `MANIFEST.json` (its `kind`, `must_contain`,
`must_not_contain`). Entries the bot does not meet yet are listed in `KNOWN_GAPS`
with the issue that fixes them; they are strict xfails, so a fix that makes one
pass fails the run until the entry is taken off the list.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.replay import Counts, Replay, entry, manifest, unescape
from tests.harness import start_bot
from tests.refs import ref_path

ABSENT = "corpus-absent"
NAMES = [e["name"] for e in manifest()] or [ABSENT]

# name -> why it does not meet its expectation yet.
KNOWN_GAPS: dict[str, str] = {}

IGNORING = {"ignore", "team_or_ignore", "edit"}  # never a customer message


def _gap(name: str) -> Any:
    if name in KNOWN_GAPS:
        return pytest.param(name, marks=pytest.mark.xfail(reason=KNOWN_GAPS[name], strict=True))
    return name


@pytest.mark.parametrize("name", [_gap(name) for name in NAMES])
async def test_corpus_payload(name: str, tmp_path: Path) -> None:
    if name == ABSENT:
        ref_path("conformance/MANIFEST.json")  # skips, or fails under CI=true
        return
    spec = entry(name)
    running, stop = await start_bot(tmp_path)
    try:
        replay = Replay(running)
        status = await replay.send(name)
        check(replay, spec, status)
        after = await replay.counts()
        check_counts(spec, replay.before[name], after)
    finally:
        await stop()


def check(replay: Replay, spec: dict[str, Any], status: int) -> None:
    expect = spec["expect"]
    kind = expect["kind"]
    name = spec["name"]
    assert status < 500, f"{name}: answered {status}"
    if spec["network"] != "slack":
        assert status == 200, f"{name}: a signed, well-formed delivery is accepted ({status})"
    if spec["network"] == "slack":
        shown = _sends_text(replay, replay.sends_before[name])
    else:
        shown = unescape(replay.slack_text(replay.posts_before[name]))
    lowered = shown.lower()
    for wanted in expect.get("must_contain", []):
        assert wanted.lower() in lowered, f"{name}: {wanted!r} not in {shown!r}"
    for unwanted in [*expect.get("must_not_contain", []), "(empty message)"]:
        assert unwanted.lower() not in lowered, f"{name}: {unwanted!r} in {shown!r}"
    new_sends = replay.network_sends()[replay.sends_before[name] :]
    if kind == "reply_sent":
        assert new_sends, f"{name}: nothing reached the customer"
        if expect.get("file_must_reach"):
            told = "file" in unescape(replay.slack_text(replay.posts_before[name])).lower()
            assert _carries_file(new_sends) or told, f"{name}: the file neither sent nor refused"
    if kind == "no_send":
        assert not new_sends, f"{name}: sent to the customer: {new_sends}"
    if kind == "no_empty_send":
        for send in new_sends:
            assert _send_text(send).strip() or _carries_file([send]), f"{name}: empty send {send}"


def check_counts(spec: dict[str, Any], before: Counts, after: Counts) -> None:
    kind = spec["expect"]["kind"]
    name = spec["name"]
    new_messages = after.customer_messages - before.customer_messages
    if kind == "post":
        assert new_messages >= 1, f"{name}: no customer message stored"
    if kind in IGNORING:
        assert new_messages == 0, f"{name}: counted as {new_messages} customer message(s)"
        assert after.conversations == before.conversations, f"{name}: opened a conversation"
    if kind == "team":
        assert after.team_replies > before.team_replies, f"{name}: not shown as a team reply"
        assert new_messages == 0, f"{name}: counted as a customer message"
    if kind == "thread":
        assert new_messages == 1, f"{name}: {new_messages} customer messages stored"
        assert after.conversations == before.conversations, f"{name}: opened a new conversation"


def _send_text(send: dict[str, Any]) -> str:
    for key in ("text", "caption"):
        if isinstance(send.get(key), str):
            return str(send[key])
    message = send.get("message")
    if isinstance(message, dict):
        return str(message.get("text") or "")
    if isinstance(message, str):
        return message
    text = send.get("text")
    return str(text.get("body", "")) if isinstance(text, dict) else ""


def _sends_text(replay: Replay, since: int) -> str:
    return "\n".join(
        json.dumps(send, ensure_ascii=False) for send in replay.network_sends()[since:]
    )


def _carries_file(sends: list[dict[str, Any]]) -> bool:
    keys = {"photo", "document", "video", "audio", "attachment", "files", "media", "image"}
    return any(keys & set(send) for send in sends)
