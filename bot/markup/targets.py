"""Where a reply goes: its formatting, its length limit, how that length is counted,
and whether it is public (a public reply over the limit is refused, never split)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.markup.lengths import utf16_length, x_weighted_length
from bot.markup.render import Markup, visible_text


def _characters(rendered: str, markup: Markup) -> int:
    return len(rendered)


def _telegram_visible(rendered: str, markup: Markup) -> int:
    return utf16_length(visible_text(rendered, markup))


def _x_weighted(rendered: str, markup: Markup) -> int:
    return x_weighted_length(rendered)


@dataclass(frozen=True, slots=True)
class Target:
    """`what` names the messages in the refusal sentence ("X public replies")."""

    what: str
    markup: Markup
    limit: int | None
    public: bool = False
    counter: Callable[[str, Markup], int] = _characters

    def length(self, rendered: str) -> int:
        return self.counter(rendered, self.markup)

    @property
    def parse_mode(self) -> str | None:
        """Telegram's `parse_mode` for the rendered texts; None for plain text."""
        return "HTML" if self.markup is Markup.TELEGRAM_HTML else None


TELEGRAM = Target("Telegram messages", Markup.TELEGRAM_HTML, 4096, counter=_telegram_visible)
WHATSAPP = Target("WhatsApp messages", Markup.WHATSAPP, 4096)
MESSENGER = Target("Messenger messages", Markup.PLAIN, 2000)
INSTAGRAM = Target("Instagram messages", Markup.PLAIN, 1000)
X_DM = Target("X direct messages", Markup.PLAIN, 10_000)
# Meta's reference for POST /{ig-comment-id}/replies states no limit; 2,200 characters
# is Instagram's documented limit for a comment (and a caption).
INSTAGRAM_COMMENT = Target("Instagram comment replies", Markup.PLAIN, 2200, public=True)
# A reply to a mention (POST /{ig-user-id}/mentions) is an Instagram comment too.
INSTAGRAM_MENTION = Target("Instagram mention replies", Markup.PLAIN, 2200, public=True)
FACEBOOK_COMMENT = Target("Facebook comment replies", Markup.PLAIN, 8000, public=True)
X_REPLY = Target("X public replies", Markup.PLAIN, 280, public=True, counter=_x_weighted)
GENERIC = Target("generic webhook replies", Markup.PLAIN, None)

TARGETS: dict[str, Target] = {
    "telegram": TELEGRAM,
    "whatsapp": WHATSAPP,
    "messenger": MESSENGER,
    "instagram": INSTAGRAM,
    "x_dm": X_DM,
    "facebook_comment": FACEBOOK_COMMENT,
    "instagram_comment": INSTAGRAM_COMMENT,
    "instagram_mention": INSTAGRAM_MENTION,
    "x_reply": X_REPLY,
    "generic": GENERIC,
}
