"""X's weighted length against twitter-text's conformance examples (config v3).

Examples from twitter/twitter-text conformance/validate.yml,
`WeightedTweetsWithDiscountedEmojiCounterTest` and `UnicodeDirectionalMarkerCounterTest`
(Apache-2.0); the long ones are rebuilt from their description.
"""

from __future__ import annotations

import pytest

from bot.markup.lengths import utf16_length, x_weighted_length

_X = "xxxxxxxxxx-"
_CJK = "故人西辞黄鹤楼，烟花三月下扬州。孤帆远影碧空尽，唯见长江天际流。"
_KANA = "あいうえおかきくけこ"
_ENGLAND = "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"
_FAMILY = "👨\u200d👩\u200d👧\u200d👦"

CONFORMANCE = [
    ("Regular Tweet with url", "Hi http://test.co", 26),
    ("Just url", "http://test.co", 23),
    ("Long tweet, overflow at char index 280", "285 chars-" + _X * 25, 285),
    (
        "Long tweet with url in the middle",
        "285 chars- http://www.twitter.com/jack " + _X * 24,
        299,
    ),
    ("Long tweet with url at the end", _X * 24 + " http://www.twitter.com/jack ", 289),
    ("10 url string, no overflow", "https://www.twitter.com/aloha " * 10, 240),
    ("160 CJK characters", _CJK * 5, 320),
    ("160 emoji", "😷" * 160, 320),
    ("3 latin + 160 CJK", "the" + _CJK * 5, 323),
    ("Normalized character", "282 chars-" + _X * 24 + "xxxxxA\u0301x", 281),
    ("Single and double word characters", "H🐱☺" + _FAMILY, 7),
    ("Emoji inside the BMP", "😷👾😡🔥💩", 10),
    ("Emoji outside the BMP with skin tone", "🙋🏽👨\u200d🎤", 4),
    (
        "General punctuation",
        "This is a tweet with general punctuation characters: "
        "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u200b"
        " ‐ ‑ ‒ – — ― ‖  ‗ ‘ ’ ‚ ‛ “ ” „ ‟ ′ ″ ‴ ‵ ‶ ‷",
        110,
    ),
    ("64 character domain without protocol", "randomurl" * 7 + "s.com", 68),
    (
        "CJK host over 63 punycode characters",
        _KANA * 12 + " http://" + _KANA * 5 + "あいう.com",
        358,
    ),
    (
        "CJK host under 63 punycode characters",
        _KANA * 12 + " http://" + _KANA * 5 + "あい.com",
        264,
    ),
    ("140 family emoji", _FAMILY * 140, 280),
    ("Keycap with a latin first character", "1\u20e3", 2),
    (
        "Unicode 10 emoji",
        "Unicode 10.0 emoji: 🤪; 🧕; 🧕🏾; " + _ENGLAND,
        34,
    ),
    ("Unicode 9 emoji", "Unicode 9.0 emoji: 🤠; 💃; 💃🏾", 29),
    ("Invalid characters", "ABC\u202a\uffffABC\ufffe", 12),
    ("Directional marks around a URL", "\u2066\u202ahttp://foobar.پاکستان/\u202c\u2069", 31),
]


@pytest.mark.parametrize(("description", "text", "expected"), CONFORMANCE)
def test_x_weighted_length_matches_twitter_text(description: str, text: str, expected: int) -> None:
    assert x_weighted_length(text) == expected, description


def test_telegram_counts_utf16_code_units() -> None:
    assert utf16_length("abc") == 3
    assert utf16_length("😄") == 2
    assert utf16_length("é") == 1
