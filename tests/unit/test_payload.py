"""`load_object`: what it refuses, whether or not the body lets it skip its walk."""

from __future__ import annotations

import json

import pytest

from bot.networks.base import PayloadError
from bot.networks.payload import MAX_DEPTH, load_object


def nested(depth: int) -> bytes:
    return b'{"a": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"text": "x\\ud800"}', "unpaired surrogate"),
        (b'{"text": "x\\uDC00y"}', "unpaired surrogate"),
        (b'{"\\udbff": 1}', "unpaired surrogate"),
        ('{"text": "x\ud800"}', "unpaired surrogate"),  # a str body, the surrogate raw
        (b'{"text": "x\xed\xa0\x80"}', "unpaired surrogate"),  # its UTF-8-style bytes
        (
            json.dumps({"text": "\ud800"}, ensure_ascii=False).encode("utf-16", "surrogatepass"),
            "unpaired surrogate",
        ),
        (nested(MAX_DEPTH + 1), "nested deeper"),
        (nested(MAX_DEPTH + 1).decode(), "nested deeper"),
        (b"[1]", "not a JSON object"),
        (b'{"a": NaN}', "not JSON"),
        (b'{"a": 1e999}', "not JSON"),
    ],
)
def test_refused(body: bytes | str, problem: str) -> None:
    with pytest.raises(PayloadError, match=problem):
        load_object(body)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"text": "\\ud83d\\ude00 ok"}', {"text": "\U0001f600 ok"}),  # a paired escape
        ('{"text": "\U0001f600"}'.encode(), {"text": "\U0001f600"}),
        (b'{"text": "\xed\x9f\xbf"}', {"text": "\ud7ff"}),  # ED below A0 is no surrogate
        (b'{"text": "[[[{{{"}', {"text": "[[[{{{"}),
        (json.dumps({"a": 1}).encode("utf-16"), {"a": 1}),
    ],
)
def test_accepted(body: bytes | str, expected: object) -> None:
    assert load_object(body) == expected


@pytest.mark.parametrize("extra", [b"", b', "t": "\\ud83d\\ude00"'])  # without / with the walk
def test_deepest_accepted(extra: bytes) -> None:
    body = nested(MAX_DEPTH)[:-1] + extra + b"}"
    value = load_object(body)["a"]
    for _ in range(MAX_DEPTH - 2):
        value = value[0]
    assert value == []
    with pytest.raises(PayloadError, match="nested deeper"):
        load_object(nested(MAX_DEPTH + 1)[:-1] + extra + b"}")
