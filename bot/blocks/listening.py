"""Block Kit for listening: one mention, or a digest chunk of many (pure)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from bot.blocks.conversation import actions, button, context, escape, quote, slack_date
from bot.networks.payload import web_url
from storage.models import ListenMention, MentionState

Block = dict[str, Any]

OPEN = "relaydesk.listen_open"
DISMISS = "relaydesk.listen_dismiss"
METADATA_EVENT = "relaydesk_listen"
SOURCES = {"x": "X", "facebook": "Facebook", "instagram": "Instagram", "generic": "the web"}
TEXT_SHOWN = 2_500  # of a mention's text, alone (a section holds 3,000 after escaping)
EXCERPT = 200  # of each mention's text in a digest
DIGEST_CHUNK = 45  # mentions per digest message: one section each, under Slack's 50 blocks
TAGGED = "@mention"  # the term recorded for a tagging mention with no term in its words


def can_open(mention: ListenMention, networks: Collection[str]) -> bool:
    """Whether it can become a conversation: its network is configured here."""
    return (mention.opening or {}).get("network") in networks


def source_label(mention: ListenMention) -> str:
    return SOURCES.get(mention.source, mention.source)


def matched_line(mention: ListenMention) -> str:
    """The term, the configured variant and the post's own words that matched."""
    if mention.term == TAGGED:
        return f"@mention of the account on {source_label(mention)}"
    how = "exact" if mention.edits == 0 else f"misspelling, {mention.edits} edit"
    if mention.edits > 1:
        how += "s"
    return (
        f"*{escape(mention.term)}* on {source_label(mention)} · matched "
        f"`{escape(mention.found)}` ({how} of _{escape(mention.variant)}_)"
    )


def author_line(mention: ListenMention) -> str:
    name = f"*{escape(mention.author_name)}*"
    if mention.author_handle:
        name += f" (@{escape(mention.author_handle)})"
    link = _link(mention)
    parts = [name, slack_date(mention.sent_at)]
    if link:
        parts.append(link)
    return " · ".join(parts)


def _link(mention: ListenMention) -> str | None:
    """A link only to an http(s) address, %-encoded where Slack would read markup."""
    url = mention.url
    if url is None or not web_url(url):
        return None
    safe = url.strip().replace("|", "%7C").replace("<", "%3C").replace(">", "%3E")
    safe = safe.replace(" ", "%20").replace("&", "&amp;")
    return f"<{safe}|open on {source_label(mention)}>"


def outcome_line(mention: ListenMention) -> str | None:
    if mention.state == MentionState.OPENED:
        number = f" as conversation #{mention.conversation_id}" if mention.conversation_id else ""
        return f":speech_balloon: Opened by <@{mention.acted_by}>{number}"
    if mention.state == MentionState.DISMISSED:
        return f":heavy_minus_sign: Dismissed by <@{mention.acted_by}>"
    return None


def mention_text(mention: ListenMention) -> str:
    return f"Mention of {mention.term} on {source_label(mention)} by {mention.author_name}"


def mention_blocks(mention: ListenMention, networks: Collection[str]) -> list[Block]:
    """One mention: what matched, the words (escaped), who and where, and the buttons
    until someone opens or dismisses it."""
    text = mention.text if len(mention.text) <= TEXT_SHOWN else mention.text[:TEXT_SHOWN] + "…"
    blocks: list[Block] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f":mega: {matched_line(mention)}"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": quote(text)}},
        context([author_line(mention)]),
    ]
    outcome = outcome_line(mention)
    if outcome:
        blocks.append(context([outcome]))
        return blocks
    value = str(mention.id)
    elements = [button("Dismiss", DISMISS, value)]
    if can_open(mention, networks):
        elements.insert(0, button("Open as conversation", OPEN, value, style="primary"))
    else:
        blocks.append(
            context([f"_Answer it on {source_label(mention)}: it cannot be opened here._"])
        )
    blocks.append(actions("relaydesk.listen", elements))
    return blocks


def digest_text(count: int, chunk: int, chunks: int) -> str:
    part = f" (part {chunk + 1} of {chunks})" if chunks > 1 else ""
    return f"Listening digest: {count} mentions{part}"


def digest_blocks(
    window_start: datetime,
    count: int,
    summary: Sequence[tuple[str, str, int]],
    mentions: Sequence[ListenMention],
    chunk: int,
    chunks: int,
    networks: Collection[str],
) -> list[Block]:
    """A digest message: on its first part the totals by term and source, then one
    section per mention with an Open button (or what became of it)."""
    blocks: list[Block] = []
    if chunk == 0:
        terms: dict[str, int] = {}
        sources: dict[str, int] = {}
        for term, source, number in summary:
            terms[term] = terms.get(term, 0) + number
            label = SOURCES.get(source, source)
            sources[label] = sources.get(label, 0) + number
        by_term = ", ".join(f"{escape(t)} {n}" for t, n in sorted(terms.items()))
        by_source = ", ".join(f"{s} {n}" for s, n in sorted(sources.items()))
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f":bar_chart: *{count} mentions* since {slack_date(window_start)} "
                    f"(over 60 an hour: one digest every 10 minutes)\n"
                    f"By term: {by_term}\nBy source: {by_source}",
                },
            }
        )
    if chunks > 1:
        blocks.append(context([f"Part {chunk + 1} of {chunks}"]))
    for mention in mentions:
        blocks.append(_digest_entry(mention, can_open(mention, networks)))
    return blocks


def _digest_entry(mention: ListenMention, openable: bool) -> Block:
    excerpt = mention.text if len(mention.text) <= EXCERPT else mention.text[:EXCERPT] + "…"
    excerpt = " ".join(excerpt.split())
    lines = [matched_line(mention), author_line(mention), f"> {escape(excerpt)}"]
    outcome = outcome_line(mention)
    if outcome:
        lines.append(outcome)
    section: Block = {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}
    if outcome is None and openable:
        section["accessory"] = button("Open", OPEN, str(mention.id))
    return section
