"""The spike rule and the frequent words: pure functions, table-driven."""

from __future__ import annotations

import pytest

from bot.services.spikes import WORDS, frequent_words, is_spike


@pytest.mark.parametrize(
    ("count", "baseline", "factor", "minimum", "spike"),
    [
        (0, 0.0, 3, 20, False),  # quiet
        (19, 0.0, 3, 20, False),  # no history, but under SPIKE_MIN
        (20, 0.0, 3, 20, True),  # no history: SPIKE_MIN alone decides
        (20, 6.0, 3, 20, True),  # 20 > 18
        (21, 7.0, 3, 20, False),  # exactly 3x is not more than 3x
        (22, 7.0, 3, 20, True),
        (60, 20.0, 3, 20, False),  # a busy hour, as busy as usual x3
        (61, 20.0, 3, 20, True),
        (100, 40.0, 3, 20, False),  # heavy, but normal for this time of day
        (5, 1.0, 3, 5, True),  # a small desk with SPIKE_MIN=5
        (30, 4.9, 6, 20, True),  # SPIKE_FACTOR=6: 30 > 29.4
        (30, 5.0, 6, 20, False),
        (30, 9.9, 3.0, 20, True),  # fractional baselines (an average over 7 days)
        (30, 10.0, 3.0, 20, False),
        (1_000_000, 1.0, 3, 20, True),
    ],
)
def test_is_spike(count: int, baseline: float, factor: float, minimum: int, spike: bool) -> None:
    assert is_spike(count, baseline, factor, minimum) is spike


@pytest.mark.parametrize(
    ("texts", "words"),
    [
        ([], []),
        (["hi", "ok", "123 4567"], []),  # short words and numbers dropped
        (["The app is down", "app down again", "Is the APP down?"], ["app", "down"]),
        (["refund refund refund", "refund please", "where is my parcel"], ["refund", "parcel"]),
        (["Thank you, thanks!", "please help", "hello there"], ["help"]),  # stop words
        (
            ["¿Dónde está mi pedido?", "pedido perdido", "Pedido #4411"],
            ["pedido", "dónde", "está", "perdido"],
        ),
        (["https://status.example.com is down", "down"], ["down", "example", "status"]),
        (
            ["alpha beta gamma delta epsilon zeta eta theta"],
            ["alpha", "beta", "delta", "epsilon", "eta"],  # ties alphabetical, never more than 5
        ),
    ],
)
def test_frequent_words(texts: list[str], words: list[str]) -> None:
    assert frequent_words(texts) == words


def test_never_more_than_a_few_words() -> None:
    many = [" ".join(f"word{chr(97 + i)}{chr(97 + j)}" for j in range(26)) for i in range(26)]
    assert len(frequent_words(many, limit=50)) == WORDS
