"""How each network counts a message's length.

Telegram counts the text left after parsing the HTML, in UTF-16 code units. X counts
a weighted length (twitter-text's configuration v3): each code point weighs 2 unless it
lies in the ranges below (1), every emoji sequence weighs 2 and every URL 23, after NFC
normalisation. No maintained PyPI package implements v3 (the `twitter-text*` packages
were last released in 2017-2023), so this is a small implementation checked against
twitter-text's conformance examples (tests/markup/test_lengths.py).
"""

from __future__ import annotations

import re
import unicodedata

import emoji

_LIGHT_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
_DEFAULT_WEIGHT = 2
_URL_WEIGHT = 23
# a URL ends at whitespace, at directional marks and at non-characters
_URL_CHAR = r"[^\s\u202a-\u202e\u2066-\u2069\ufffe\uffff]"
_URL = re.compile(
    rf"(?:https?://(?P<host>[^\s/?#:\u202a-\u202e\u2066-\u2069\ufffe\uffff]+)"
    rf"|(?<![\w@.-])(?P<bare>[\w-]+(?:\.[\w-]+)*\.(?:com|net|org|edu|gov|info|biz|app|dev|shop))"
    rf"(?![\w-]))(?::\d+)?(?:[/?#]{_URL_CHAR}*)?",
    re.IGNORECASE,
)
_TRAILING = ".,;:!?'\")]"


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _valid_host(host: str) -> bool:
    """Every label at most 63 characters once punycode-encoded, as in a real domain."""
    labels = host.split(".")
    if len(labels) < 2 or not all(labels):
        return False
    for label in labels:
        try:
            encoded = label.encode("idna")
        except UnicodeError:
            return False
        if len(encoded) > 63:
            return False
    return True


def _url_ranges(text: str) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for match in _URL.finditer(text):
        if not _valid_host(match.group("host") or match.group("bare")):
            continue
        end = match.end()
        while end > match.start() and text[end - 1] in _TRAILING:
            end -= 1
        ranges.append((match.start(), end))
    return ranges


def _weight(char: str) -> int:
    point = ord(char)
    light = any(lo <= point <= hi for lo, hi in _LIGHT_RANGES)
    return 1 if light else _DEFAULT_WEIGHT


def x_weighted_length(text: str) -> int:
    text = unicodedata.normalize("NFC", text)
    wholes = {start: (end, _URL_WEIGHT) for start, end in _url_ranges(text)}
    for found in emoji.emoji_list(text):
        wholes.setdefault(found["match_start"], (found["match_end"], _DEFAULT_WEIGHT))
    total = 0
    pos = 0
    while pos < len(text):
        if pos in wholes:
            pos, weight = wholes[pos]
            total += weight
            continue
        total += _weight(text[pos])
        pos += 1
    return total
