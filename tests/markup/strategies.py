"""Slack message text as Slack delivers it, with what the customer should read."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

SLACK_MARKUP = ("<@", "<#", "<!", "&lt;", "&amp;", "&gt;", "<http")
# no `* _ ~ `` ` or `:`: typed literally they are formatting or emoji in Slack too
ALPHABET = st.sampled_from(list("abcdefxyz ABC 0123456789 .,!?&<>@#|-/é日😄\n\t'\""))
NAMES = {"U1": "Alice", "U2": "Bob Stone"}


def slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True)
class Piece:
    slack: str
    visible: str


def _plain_text() -> st.SearchStrategy[str]:
    return st.text(ALPHABET, max_size=40).filter(
        lambda t: (
            not any(m in t for m in SLACK_MARKUP)
            and not any(line.startswith(">") for line in t.split("\n"))
        )
    )


@st.composite
def pieces(draw: st.DrawFn) -> Piece:
    text = draw(_plain_text())
    escaped = slack_escape(text)
    kind = draw(
        st.sampled_from(
            [
                "plain",
                "bold",
                "italic",
                "strike",
                "code",
                "link",
                "bare_link",
                "user",
                "channel",
                "here",
                "subteam",
                "date",
            ]
        )
    )
    one_line = text.replace("\n", " ")
    label = slack_escape(one_line).replace("|", "/")
    if kind in ("bold", "italic", "strike", "code") and one_line.strip():
        # Slack's emphasis needs text hugging the marks; `**` alone is literal there too
        mark = {"bold": "*", "italic": "_", "strike": "~", "code": "`"}[kind]
        core = one_line.strip()
        return Piece(f" {mark}{slack_escape(core)}{mark} ", core)
    if kind in ("plain", "bold", "italic", "strike", "code"):
        return Piece(escaped, text)
    if kind == "link":
        # An empty label shows the address itself, as a link without one does.
        shown = one_line.replace("|", "/") or "https://ex.example/p?a=1&b=2"
        return Piece(f"<https://ex.example/p?a=1&amp;b=2|{label}>", shown)
    if kind == "bare_link":
        return Piece("<https://ex.example/q>", "https://ex.example/q")
    if kind == "user":
        user = draw(st.sampled_from(sorted(NAMES)))
        return Piece(f"<@{user}>", NAMES[user])
    if kind == "channel":
        return Piece("<#C1|general>", "#general")
    if kind == "here":
        return Piece(draw(st.sampled_from(["<!here>", "<!channel>", "<!everyone>"])), "")
    if kind == "subteam":
        return Piece("<!subteam^S1|@sales-team>", "sales-team")
    return Piece(f"<!date^1392734382^{{date}}|{label}>", one_line.replace("|", "/"))


@st.composite
def slack_messages(draw: st.DrawFn) -> tuple[str, str]:
    """(text as Slack delivers it, the visible text the customer should read)."""
    drawn = draw(st.lists(pieces(), max_size=8))
    return "".join(p.slack for p in drawn), "".join(p.visible for p in drawn)


async def resolve(user_id: str) -> str:
    return NAMES[user_id]
