"""Matching LISTEN_TERMS in public posts: table-driven, one row per case."""

from __future__ import annotations

import pytest

from bot.services.listen_terms import TermError, find, normal, parse_terms, x_query

TERMS = parse_terms(
    "Relaydesk|relay desk, Acme|akme, Notion, Kodak, Superfantastic, نوین‌پرداز, کیک, Café Olé, Zoë"
)

# (post, term, variant, words of the post that matched, edits); term None: no match.
CASES = [
    # exact, any case
    ("We love Relaydesk!", "Relaydesk", "Relaydesk", "Relaydesk", 0),
    ("RELAYDESK is down?", "Relaydesk", "Relaydesk", "RELAYDESK", 0),
    ("try @relaydesk or #relaydesk", "Relaydesk", "Relaydesk", "relaydesk", 0),
    ("the relay desk app", "Relaydesk", "relay desk", "relay desk", 0),
    ("Relay Desk, again", "Relaydesk", "relay desk", "Relay Desk", 0),
    # misspellings: one edit from 5 letters, two from 9
    ("anyone using relaydsk?", "Relaydesk", "Relaydesk", "relaydsk", 1),
    ("realydesk support rocks", "Relaydesk", "Relaydesk", "realydesk", 1),  # a swap
    ("relayydeskk broke", "Relaydesk", "Relaydesk", "relayydeskk", 2),
    ("relaaydesskk broke", None, None, None, None),  # three edits
    ("my Kodack camera", "Kodak", "Kodak", "Kodack", 1),
    ("Codak film", "Kodak", "Kodak", "Codak", 1),
    ("Kodakkk film", None, None, None, None),  # two edits from five letters
    ("Notoin pages", "Notion", "Notion", "Notoin", 1),
    ("Superfantsatic deal", "Superfantastic", "Superfantastic", "Superfantsatic", 1),
    ("Superfantasik deal", "Superfantastic", "Superfantastic", "Superfantasik", 2),
    # accents and compatibility forms
    ("réLäydesk", "Relaydesk", "Relaydesk", "réLäydesk", 0),
    ("cafe ole tonight", "Café Olé", "Café Olé", "cafe ole", 0),
    ("CAFÉ OLÉ tonight", "Café Olé", "Café Olé", "CAFÉ OLÉ", 0),
    ("cafe\u0301 ole\u0301", "Café Olé", "Café Olé", "cafe\u0301 ole\u0301", 0),
    ("zoe is here", "Zoë", "Zoë", "zoe", 0),
    ("ＲＥＬＡＹＤＥＳＫ", "Relaydesk", "Relaydesk", "ＲＥＬＡＹＤＥＳＫ", 0),  # full-width
    # Persian and Arabic letters: ی/ي/ى, ک/ك, half-space, tatweel, harakat
    ("نوين‌پرداز عالیه", "نوین‌پرداز", "نوین‌پرداز", "نوين‌پرداز", 0),
    ("نوین پرداز", "نوین‌پرداز", "نوین‌پرداز", "نوین پرداز", 0),
    ("نوینپرداز", "نوین‌پرداز", "نوین‌پرداز", "نوینپرداز", 0),
    ("نویـــن‌پرداز", "نوین‌پرداز", "نوین‌پرداز", "نویـــن‌پرداز", 0),
    ("نَوِین‌پَرداز", "نوین‌پرداز", "نوین‌پرداز", "نَوِین‌پَرداز", 0),
    ("نوین‌پردز", "نوین‌پرداز", "نوین‌پرداز", "نوین‌پردز", 1),  # a letter missing
    ("كيك خوشمزه", "کیک", "کیک", "كيك", 0),
    ("کىک", "کیک", "کیک", "کىک", 0),
    # short terms match exactly only: no false hit on common words near them
    ("acne cream", None, None, None, None),
    ("a cme", "Acme", "Acme", "a cme", 0),  # spaces ignored within one more word
    ("akme anvils", "Acme", "akme", "akme", 0),  # a listed variant
    ("ACME!", "Acme", "Acme", "ACME", 0),
    ("the acme of style", "Acme", "Acme", "acme", 0),
    ("come back", None, None, None, None),
    ("kick the cake", None, None, None, None),
    ("کیف", None, None, None, None),  # one letter from a three-letter term
    # common words are no misspelling of a longer term
    ("the nation's notice", None, None, None, None),
    ("nothing to see", None, None, None, None),
    # the best match wins: fewest edits, then earliest
    ("relaydsk or Relaydesk", "Relaydesk", "Relaydesk", "Relaydesk", 0),
    # no text, no match
    ("", None, None, None, None),
    ("!!! ???", None, None, None, None),
]


@pytest.mark.parametrize(("post", "term", "variant", "found", "edits"), CASES)
def test_matching(
    post: str, term: str | None, variant: str | None, found: str | None, edits: int | None
) -> None:
    match = find(TERMS, post)
    if term is None:
        assert match is None, match
        return
    assert match is not None
    assert (match.term, match.variant, match.found, match.edits) == (term, variant, found, edits)


@pytest.mark.parametrize(
    ("value", "names", "edits"),
    [
        ("Acme", ["Acme"], [0]),
        (" Acme | akme ,, Relaydesk ", ["Acme", "Relaydesk"], [0, 2]),
        ("Notion", ["Notion"], [1]),
        ("", [], []),
        (None, [], []),
    ],
)
def test_terms_are_read(value: str | None, names: list[str], edits: list[int]) -> None:
    terms = parse_terms(value)
    assert [t.name for t in terms] == names
    assert [t.variants[0].max_edits for t in terms] == edits


@pytest.mark.parametrize("value", ["Acme||akme", "Acme|", "!!!", "Acme, |x"])
def test_unreadable_terms_are_refused(value: str) -> None:
    with pytest.raises(TermError):
        parse_terms(value)


def test_normal_form_unifies_arabic_script_letters_and_digits() -> None:
    assert normal("يکىةۀ") == normal("یكيهه")
    assert normal("٢٠٢٦ ۲۰۲۶") == "2026 2026"
    assert normal("ـمـ") == normal("م")


def test_the_x_query_names_every_spelling_and_skips_retweets() -> None:
    assert x_query(parse_terms("Acme|akme, Relaydesk")) == (
        '("Acme" OR "akme" OR "Relaydesk") -is:retweet'
    )
