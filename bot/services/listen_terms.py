"""Brand terms to listen for, and where a public post names one (pure).

`LISTEN_TERMS` is a comma-separated list of terms; a term may list its own variants
after `|`, the first spelling being the term's name: `Relaydesk|relay desk, Acme|akme`.

Text and variants are compared in one normal form: NFKD, combining marks dropped
(accents, Arabic harakat), casefolded; tatweel and zero-width joiners removed;
Arabic-script letter variants unified (ی ى -> ي, ک -> ك, ە ة -> ه, ٱ -> ا) and
Arabic-Indic digits read as 0-9; a zero-width non-joiner (the Persian half-space)
separates words like a space. A variant of W words is compared with every run of W
consecutive words of the post (and of W-1 and W+1 words, spaces ignored, so
"relay desk" finds "relaydesk" and a Persian name written with a half-space, a space or
nothing is one name). Misspellings are found automatically: an edit distance
(insertion, deletion, substitution, or two neighbours swapped) of 1 for a variant of 5
to 8 letters, 2 for 9 or more. A variant under 5 letters matches exactly only, and a
very common word never counts as a misspelling ("nation" is not "Notion").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Letters Persian, Arabic, Urdu and Kurdish write differently for the same sound.
ARABIC_LETTERS = str.maketrans(
    {
        "\u06cc": "\u064a",  # ی Farsi yeh
        "\u0649": "\u064a",  # ى alef maksura
        "\u06d2": "\u064a",  # ے yeh barree
        "\u06a9": "\u0643",  # ک keheh
        "\u06aa": "\u0643",  # ڪ swash kaf
        "\u06d5": "\u0647",  # ە ae
        "\u0629": "\u0647",  # ة teh marbuta
        "\u06c1": "\u0647",  # ہ heh goal
        "\u0671": "\u0627",  # ٱ alef wasla
        "\u0640": None,  # tatweel
        "\u200d": None,  # zero-width joiner
        **{chr(0x0660 + d): str(d) for d in range(10)},  # Arabic-Indic digits
        **{chr(0x06F0 + d): str(d) for d in range(10)},  # Extended (Persian) digits
    }
)
# A word: letters and digits, with the marks, tatweel and joiners written inside it.
WORD = re.compile(r"(?:\w|[\u0300-\u036f\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u200d])+")
EXACT_BELOW = 5  # letters: shorter variants match exactly only
TWO_EDITS_FROM = 9
# Frequent English words a five-to-eight-letter brand is easily one edit away from.
COMMON_WORDS = frozenset(
    """about above after again along always among another answer around asked
    away back because become before began being below better between black
    bring brought build called came cannot carry cause change children city
    close come could country course cover dance days different does done door
    down during early earth english enough even every example face family
    father feel field find first follow food form found friend from give going
    good great group grow hand hard have head hear heard help here high home
    horse house idea important just keep kind know land large last later learn
    leave left letter life light line list little live long look made make many
    mark matter mean might mile mind money more most mother mountain move much
    music must name nation near need never next night nothing notice number
    often only open order other over page paper part people picture place plant
    play point power problem product question quite read real right river room
    round said same saw school second seem sentence should show side since
    small something song sound south space stand start state still stood story
    study such sure table take talk tell than that their them then there these
    thing think those though thought three through time together took toward
    travel tree true under until upon using very voice walk want watch water
    well went were what when where which while white whole will with without
    word words work world would write year young your""".split()
)


class TermError(ValueError):
    """LISTEN_TERMS cannot be read; the message says which part."""


@dataclass(frozen=True)
class Variant:
    spelling: str  # as configured
    words: tuple[str, ...]  # normal form, one per word
    max_edits: int


@dataclass(frozen=True)
class Term:
    name: str
    variants: tuple[Variant, ...]


@dataclass(frozen=True)
class Match:
    """`found` is the post's own words that matched `variant` of `term`."""

    term: str
    variant: str
    found: str
    edits: int


def normal(text: str) -> str:
    """The comparison form of a word or text."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return bare.translate(ARABIC_LETTERS).casefold()


def parse_terms(value: str | None) -> tuple[Term, ...]:
    """`Relaydesk|relay desk, Acme` -> terms; raises `TermError` naming the bad part."""
    terms = []
    for part in (value or "").split(","):
        if not part.strip():
            continue
        spellings = [spelling.strip() for spelling in part.split("|")]
        if not all(spellings):
            raise TermError(f"'{part.strip()}' has an empty variant (around '|')")
        variants = []
        for spelling in spellings:
            words = tuple(normal(word) for word in WORD.findall(spelling))
            if not words or "".join(words) == "":
                raise TermError(f"'{spelling}' has no letters or digits to match")
            letters = sum(len(word) for word in words)
            edits = 0 if letters < EXACT_BELOW else 1 if letters < TWO_EDITS_FROM else 2
            variants.append(Variant(spelling, words, edits))
        terms.append(Term(spellings[0], tuple(variants)))
    return tuple(terms)


def x_query(terms: tuple[Term, ...]) -> str:
    """An X search query naming every spelling (X itself ignores case), no retweets."""
    quoted = [f'"{variant.spelling}"' for term in terms for variant in term.variants]
    return f"({' OR '.join(quoted)}) -is:retweet"


def find(terms: tuple[Term, ...], text: str) -> Match | None:
    """The best match in `text`: the fewest edits, then the earliest, then a variant of
    as many words as the post's; None if none."""
    spans = [(m.start(), m.end(), normal(m.group())) for m in WORD.finditer(text)]
    spans = [span for span in spans if span[2]]
    best: tuple[tuple[int, int, bool], Match] | None = None
    for term in terms:
        for variant in term.variants:
            target = "".join(variant.words)
            widths = {max(1, len(variant.words) - 1), len(variant.words), len(variant.words) + 1}
            for width in widths:
                for index in range(len(spans) - width + 1):
                    window = spans[index : index + width]
                    candidate = "".join(span[2] for span in window)
                    edits = _edits(candidate, target, variant.max_edits)
                    if edits is None or (edits and candidate in COMMON_WORDS):
                        continue
                    rank = (edits, window[0][0], width != len(variant.words))
                    if best is None or rank < best[0]:
                        found = text[window[0][0] : window[-1][1]]
                        best = (rank, Match(term.name, variant.spelling, found, edits))
    return best[1] if best else None


def _edits(a: str, b: str, limit: int) -> int | None:
    """Optimal string alignment distance of `a` and `b` if at most `limit`, else None."""
    if a == b:
        return 0
    if limit == 0 or abs(len(a) - len(b)) > limit:
        return None
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return None
        previous2, previous = previous, current
    return previous[-1] if previous[-1] <= limit else None
