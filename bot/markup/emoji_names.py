"""Slack emoji shortcodes to Unicode, through the maintained `emoji` package.

Slack's names are mostly the package's aliases (`smile`, `+1`); a few use hyphens
(`flag-us`, `man-woman-girl-boy`). A workspace's custom emoji has no Unicode form and
stays `:name:`.
"""

from __future__ import annotations

import functools

import emoji

# Slack's `skin-tone-N` (2 lightest .. 6 darkest) are the Fitzpatrick modifiers.
SKIN_TONES = {2: "\U0001f3fb", 3: "\U0001f3fc", 4: "\U0001f3fd", 5: "\U0001f3fe", 6: "\U0001f3ff"}
_VARIATION_SELECTOR = "\ufe0f"


@functools.lru_cache(maxsize=4096)
def _lookup(name: str) -> str | None:
    candidates = [name, name.replace("-", "_")]
    if name.startswith("flag-"):
        candidates.append(name.removeprefix("flag-"))
    for candidate in candidates:
        shortcode = f":{candidate}:"
        found = emoji.emojize(shortcode, language="alias")
        if found != shortcode:
            return found
    return None


def emoji_text(name: str, skin_tone: int | None = None, unicode_hex: str | None = None) -> str:
    """The character(s) for a Slack emoji; `:name:` when it has none.

    `unicode_hex` is rich_text's `unicode` field (code points in hex joined by `-`),
    authoritative when present; it already carries the skin tone.
    """
    if unicode_hex:
        try:
            return "".join(chr(int(part, 16)) for part in unicode_hex.split("-"))
        except ValueError:
            pass
    base = _lookup(name)
    if base is None:
        tone = f":skin-tone-{skin_tone}:" if skin_tone else ""
        return f":{name}:{tone}"
    modifier = SKIN_TONES.get(skin_tone or 0)
    if modifier is None:
        return base
    # the modifier follows the first code point, replacing its variation selector
    rest = base[1:].removeprefix(_VARIATION_SELECTOR)
    toned = base[0] + modifier + rest
    return toned if emoji.is_emoji(toned) else base
