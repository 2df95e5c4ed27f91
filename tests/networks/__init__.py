"""Helpers for the network adapter tests: our own payloads, signing, fuzz strategies."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from bot.networks.base import OutboundReply

PAYLOADS = Path(__file__).resolve().parent.parent / "payloads"


def payload_bytes(name: str) -> bytes:
    """A payload written for this project (see tests/payloads/SOURCES.md)."""
    return (PAYLOADS / name).read_bytes()


def payload_json(name: str) -> Any:
    return json.loads(payload_bytes(name))


def dumps(data: Any) -> bytes:
    return json.dumps(data).encode()


def hub_signature(secret: str, body: bytes) -> str:
    """`X-Hub-Signature-256` as Meta computes it, independently of the adapter."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def outbound(context: dict[str, Any], text: str = "Thanks, on it!") -> OutboundReply:
    return OutboundReply(
        conversation_key="any",
        reply_context=context,
        text=text,
        author_id="U0AGENT01",
        author_name="Agent",
        reply_id=1,
        sent_at=datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
    )


JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)


def shaped(shape: Any) -> st.SearchStrategy[Any]:
    """JSON that mostly follows `shape` (a dict of key -> shape, `[shape]` for a list, or a
    strategy) with any key missing and any value possibly replaced by arbitrary JSON."""
    inner: st.SearchStrategy[Any]
    if isinstance(shape, dict):
        inner = st.fixed_dictionaries({}, optional={k: shaped(v) for k, v in shape.items()})
    elif isinstance(shape, list):
        inner = st.lists(shaped(shape[0]), max_size=3)
    else:
        inner = shape
    return st.one_of(inner, inner, inner, JSON_VALUES)


IDS = st.one_of(st.text(max_size=4), st.integers(), st.sampled_from(["1", "2", "page"]))
TIMES = st.one_of(
    st.integers(), st.floats(), st.text(max_size=12), st.sampled_from(["1697043223", "1e400"])
)
