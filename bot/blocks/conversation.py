"""Pure Block Kit builders: no I/O, easy to test.

Everything a customer wrote passes through `escape` so that `<!channel>`,
`<@U123>` or `<http://x|y>` in it render as text and ping or link nobody; a URL a
network or a customer supplied goes through `link` (http(s) only, %-encoded).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import emoji

from bot.networks.registry import labels as network_labels
from bot.routing import URGENT
from storage.core import Mark, ReplyKind
from storage.models import Conversation, CustomerMessage, TeamReply

Block = dict[str, Any]

# Slack's limits, counted after escaping (in UTF-16 code units, never fewer than
# Python's characters): a section's text, a message's text, blocks per message.
SECTION_LIMIT = 3_000
TEXT_LIMIT = 40_000
MAX_BLOCKS = 50
METADATA_EVENT = "relaydesk_message"

NETWORK_LABELS = network_labels()


def escape(text: str) -> str:
    """Slack's control characters as entities: the text can no longer mention or link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def network_label(conversation: Conversation) -> str:
    channel = conversation.reply_context.get("channel") if conversation.reply_context else None
    return NETWORK_LABELS.get(str(channel or conversation.network), conversation.network)


def is_public(conversation: Conversation) -> bool:
    """Page and Instagram comments and X mentions: everyone sees the answers."""
    context = conversation.reply_context or {}
    return context.get("channel") in ("facebook_comment", "instagram_comment") or (
        conversation.network == "x" and context.get("kind") == "tweet"
    )


def slack_date(at: datetime, fmt: str = "{date_short_pretty} {time}") -> str:
    """Slack renders this in each reader's own time zone."""
    fallback = at.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(at.timestamp())}^{fmt}|{fallback}>"


def customer_label(conversation: Conversation) -> str:
    name = f"*{escape(conversation.customer_name)}*"
    handle = conversation.customer_handle
    if handle:
        # Phone numbers (WhatsApp) are not @handles.
        name += f" ({escape(handle)})" if handle.startswith("+") else f" (@{escape(handle)})"
    return name


def status_line(conversation: Conversation, opens_at: datetime | None = None) -> str:
    """`opens_at`: the desk is closed until then (said while the conversation is open)."""
    parts: list[str] = []
    if conversation.status == "resolved" and conversation.resolved_at is not None:
        parts.append(
            f":white_check_mark: Resolved by <@{conversation.resolved_by}> "
            f"{slack_date(conversation.resolved_at)}"
        )
    elif _waiting(conversation):
        assert conversation.last_customer_at is not None
        parts.append(
            f":hourglass_flowing_sand: Waiting since {slack_date(conversation.last_customer_at)}"
        )
    elif conversation.last_reply_at is not None:
        parts.append(
            f":speech_balloon: Answered by <@{conversation.last_replier}> "
            f"{slack_date(conversation.last_reply_at)}"
        )
    else:
        parts.append(":large_blue_circle: Open")
    if conversation.team:
        parts.append(f"Team: *{escape(conversation.team.title())}*")
    if conversation.owner:
        parts.append(f"Owner: <@{conversation.owner}>")
    if conversation.escalated_to and conversation.status != "resolved":
        parts.append(f":rotating_light: escalated to <@{conversation.escalated_to}>")
    window = (
        conversation.reply_context.get("window_closes_at") if conversation.reply_context else None
    )
    if window and conversation.status != "resolved":
        parts.append(f"Reply window closes {slack_date(datetime.fromisoformat(window))}")
    if opens_at is not None and conversation.status != "resolved":
        parts.append(f":crescent_moon: Desk closed · opens {slack_date(opens_at)}")
    return " · ".join(parts)


def _waiting(conversation: Conversation) -> bool:
    if conversation.last_customer_at is None:
        return False
    return (
        conversation.last_reply_at is None
        or conversation.last_reply_at < conversation.last_customer_at
    )


def root_fallback(conversation: Conversation) -> str:
    return (
        f"{network_label(conversation)} · {escape(conversation.customer_name)} · "
        f"#{conversation.id}: {escape(conversation.root_text)[:200]}"
    )


def root_blocks(
    conversation: Conversation,
    teams: Sequence[str],
    note: str | None = None,
    *,
    tone: str | None = None,
    opens_at: datetime | None = None,
) -> list[Block]:
    """The conversation's root: who, where, #N, the first message, status and buttons.

    `tone`: the network's TONE_<NETWORK> guidance; `opens_at`: when the closed desk opens."""
    header = _header(conversation)
    if is_public(conversation):
        header += " · :globe_with_meridians: *public*: replies here are seen by everyone"
    blocks: list[Block] = [{"type": "section", "text": {"type": "mrkdwn", "text": header}}]
    if note:
        blocks.append(context([note]))
    blocks.append(
        {"type": "section", "text": {"type": "mrkdwn", "text": root_message(conversation)}}
    )
    if root_rest(conversation.root_text):
        blocks.append(context(["_The message continues in the thread._"]))
    blocks.append(context([status_line(conversation, opens_at)]))
    routed = routing_line(conversation)
    if routed:
        blocks.append(context([routed]))
    if tone:
        blocks.append(context([f":speaking_head_in_silhouette: Tone: {escape(tone)}"]))
    blocks.extend(_actions(conversation, teams))
    return blocks


def routing_line(conversation: Conversation) -> str | None:
    """The priority and tags routing rules gave the conversation, if any."""
    parts = []
    if conversation.priority == URGENT:
        parts.append(":rotating_light: *urgent*")
    elif conversation.priority:
        parts.append(f"priority: *{escape(conversation.priority)}*")
    if conversation.tags:
        parts.append(":label: " + " ".join(f"`{escape(tag)}`" for tag in conversation.tags))
    return " · ".join(parts) or None


def _header(conversation: Conversation) -> str:
    """Network, group (a Telegram group's title), customer and #N."""
    title = conversation.reply_context.get("title") if conversation.reply_context else None
    where = f"*{network_label(conversation)}*"
    if isinstance(title, str) and title:
        where += f" · *{escape(title)}*"
    return f"{where} · {customer_label(conversation)} · *#{conversation.id}*"


def _actions(conversation: Conversation, teams: Sequence[str]) -> list[Block]:
    """Buttons. Slack wants action_ids unique within a block, so every handoff
    button after the first gets a block of its own (value = the team's name)."""
    value = str(conversation.id)
    if conversation.status == "resolved":
        return [actions("relaydesk.root", [button("Reopen", "relaydesk.reopen", value)])]
    main: list[Block] = []
    if conversation.owner is None:
        main.append(button("Claim", "relaydesk.claim", value, style="primary"))
    main.append(button("Resolve", "relaydesk.resolve", value))
    main.append(button("Escalate", "relaydesk.escalate", value, style="danger"))
    main.append(button("Saved reply", "relaydesk.saved_reply", value))
    handoffs = [
        button(f"Hand off to {team.title()}", "relaydesk.handoff", team)
        for team in teams
        if team != conversation.team
    ]
    blocks = [actions("relaydesk.root", main + handoffs[:1])]
    blocks.extend(actions(f"relaydesk.handoff.{i}", [b]) for i, b in enumerate(handoffs[1:], 1))
    return blocks


def actions(block_id: str, elements: list[Block]) -> Block:
    return {"type": "actions", "block_id": block_id, "elements": elements}


def button(label: str, action_id: str, value: str, *, style: str | None = None) -> Block:
    element: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action_id,
        "value": value,
    }
    if style:
        element["style"] = style
    return element


def context(texts: Sequence[str]) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": t} for t in texts]}


def quote(text: str) -> str:
    body = escape(text) or "_(empty message)_"
    return "\n".join(f"> {line}" for line in body.splitlines() or [""])


DELETED_LINE = ":wastebasket: _deleted by the customer_"
EDITED_LINE = "_(edited)_"


NOTHING_YET = (
    "_No message from the customer yet: the conversation began with the reply in the thread._"
)


def root_message(conversation: Conversation) -> str:
    """The first message as the root shows it, with what the customer did to it since
    (a conversation a colleague opened from the network's own inbox has none)."""
    if not conversation.root_text:
        return NOTHING_YET
    return _marked(root_quote(conversation), conversation.root_mark)


def _marked(body: str, mark: Mark | None) -> str:
    """Deleted: struck through (the team keeps the text); edited: said so."""
    if mark == Mark.DELETED:
        struck = "\n".join(_strike(line) for line in body.splitlines())
        return f"{struck}\n{DELETED_LINE}"
    if mark == Mark.EDITED:
        return f"{body}\n{EDITED_LINE}"
    return body


def _strike(line: str) -> str:
    quoted = line.startswith("> ")
    content = line[2:] if quoted else line
    struck = f"~{content}~" if content.strip() else content
    return f"> {struck}" if quoted else struck


def customer_messages_text(
    messages: Sequence[CustomerMessage], customer_id: str | None = None
) -> str:
    """Messages that share one thread post (short follow-ups that queued up), as it shows
    them: one paragraph each. A message by someone other than the conversation's
    customer (a group member, another commenter) names its author."""
    return "\n\n".join(_one_message(message, customer_id) for message in messages)


def _one_message(message: CustomerMessage, customer_id: str | None = None) -> str:
    """The adapters put every part of a message (media, location...) in its text."""
    text = escape(message.text) if message.text.strip() else "_(no content)_"
    if customer_id is not None and message.author_id != customer_id:
        text = f"*{escape(message.author_name)}:* {text}"
    return _marked(text, message.mark)


def not_posted(conversation: Conversation, count: int, reason: str) -> str:
    """Why customer messages are missing from the thread (or the channel, rootless)."""
    what = "A message" if count == 1 else f"{count} messages"
    return (
        f":warning: {what} from {customer_label(conversation)} (#{conversation.id}, "
        f"{network_label(conversation)}) could not be posted here: Slack refused it "
        f"({escape(reason)}). Later messages follow as usual."
    )


def auto_reply_sent(text: str) -> str:
    """The thread's record of the out-of-hours auto-reply (not a team reply)."""
    return f":crescent_moon: Out-of-hours auto-reply sent to the customer:\n{quote(text)}"


def auto_reply_failed(reason: str) -> str:
    return f":warning: The out-of-hours auto-reply was not delivered: {escape(reason)}"


def in_doubt_blocks(reply_id: int) -> list[Block]:
    """A reply whose send was cut short: it may or may not have reached the customer."""
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": IN_DOUBT}},
        actions("relaydesk.resend", [button("Resend", "relaydesk.resend", str(reply_id))]),
    ]


IN_DOUBT = (
    ":grey_question: This reply may not have been delivered: the bot stopped while sending it. "
    "If the customer did not get it, press *Resend*."
)


def inbox_reply_text(conversation: Conversation, echo: TeamReply) -> str:
    """A reply sent outside Slack (the network's inbox or app), or an automation's message."""
    who = escape(echo.user_name or echo.user_id)
    where = network_label(conversation)
    if echo.kind == ReplyKind.AUTOMATED:
        return (
            f":robot_face: *{who}* sent an automated message on {where} "
            f"(not counted as a reply):\n{quote(echo.text)}"
        )
    return f":outbox_tray: *{who}* answered from the {where} inbox:\n{quote(echo.text)}"


def edited_note(before: str) -> str:
    """The thread keeps what an edited message said before."""
    return f":pencil2: The customer edited a message. Before:\n{quote(before)}"


def notice_text(text: str) -> str:
    return f":information_source: {escape(text)}"


# Reactions named by the network rather than by an emoji (Messenger's `reaction`).
NAMED_REACTIONS = {
    "like": "thumbsup",
    "dislike": "thumbsdown",
    "love": "heart",
    "smile": "smile",
    "haha": "laughing",
    "wow": "open_mouth",
    "sad": "cry",
    "angry": "angry",
}
# Shown when the customer's reaction has no Slack emoji of the same name.
FALLBACK_REACTION = "heart"
_SKIN_TONES = "".join(chr(code) for code in range(0x1F3FB, 0x1F400))


def reaction_name(reaction: str) -> str:
    """The Slack reaction for a customer's emoji (or a network's name for one).

    Slack's names are mostly the GitHub / `alias` names `emoji.demojize` gives; skin
    tones are dropped (the base emoji is shown). Anything else is `FALLBACK_REACTION`;
    a name Slack does not know is replaced by it when the reaction is added.
    """
    named = NAMED_REACTIONS.get(reaction.strip().lower())
    if named:
        return named
    base = reaction.strip().translate({ord(tone): None for tone in _SKIN_TONES})
    if not base or not emoji.purely_emoji(base) or emoji.emoji_count(base) != 1:
        return FALLBACK_REACTION
    return emoji.demojize(base, language="alias").strip(":").lower() or FALLBACK_REACTION


def handoff_note(by_user: str, team: str, note: str | None, earlier: str | None) -> str:
    text = f":arrows_counterclockwise: Handed off to *{escape(team.title())}* by <@{by_user}>"
    if earlier:
        text += f" · <{earlier}|earlier thread>"
    if note:
        text += f"\n*Note:* {escape(note)}"
    return text


def digest(lines: Sequence[tuple[datetime, str, str]], limit: int = 5) -> Block | None:
    """The last messages before a handoff: (time, who as mrkdwn, text)."""
    if not lines:
        return None
    recent = sorted(lines)[-limit:]
    body = "\n".join(
        f"• {who} {slack_date(at, '{time}')}: {escape(text)[:300]}" for at, who, text in recent
    )
    return {"type": "section", "text": {"type": "mrkdwn", "text": f"*Recent messages*\n{body}"}}


def moved_root_blocks(
    conversation: Conversation, by_user: str, team: str, new_thread: str | None
) -> list[Block]:
    """An earlier root after a handoff: where the conversation went; replies here still work."""
    header = _header(conversation)
    moved = f":arrow_right: Handed off to *{escape(team.title())}* by <@{by_user}>"
    if new_thread:
        moved += f" · <{new_thread}|continue in the new thread>"
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": header}},
        {"type": "section", "text": {"type": "mrkdwn", "text": root_message(conversation)}},
        context([moved]),
    ]


# -- staying within Slack's limits ----------------------------------------------------


def units(text: str) -> int:
    """Length as Slack may count it: UTF-16 code units (an emoji counts two)."""
    return len(text.encode("utf-16-le")) // 2


def chunks(raw: str, limit: int, render: Callable[[str], str] = escape) -> list[str]:
    """Cut `raw` into consecutive pieces whose `render` fits in `limit`, in order.

    Cuts after a line break or a space when one is in the second half of the piece;
    cutting the raw text (not the rendered one) never splits an entity like `&amp;`.
    """
    pieces: list[str] = []
    rest = raw
    while rest and units(render(rest)) > limit:
        low, high = 1, len(rest)  # the longest prefix that fits: binary search
        while low < high:
            middle = (low + high + 1) // 2
            if units(render(rest[:middle])) <= limit:
                low = middle
            else:
                high = middle - 1
        cut = max(rest.rfind("\n", 0, low), rest.rfind(" ", 0, low)) + 1
        if cut <= low // 2:
            cut = low
        pieces.append(rest[:cut])
        rest = rest[cut:]
    if rest or not pieces:
        pieces.append(rest)
    return pieces


def _root_pieces(root_text: str) -> list[str]:
    return chunks(root_text, SECTION_LIMIT, quote)


def root_quote(conversation: Conversation) -> str:
    """The first message as the root shows it: as much as one section holds."""
    return quote(_root_pieces(conversation.root_text)[0])


def root_rest(root_text: str) -> str:
    """What of the first message the root cannot hold (posted in the thread)."""
    return "".join(_root_pieces(root_text)[1:])


@dataclass(frozen=True)
class Post:
    """One thread post of customer messages: several short ones, or one part of a long one."""

    text: str
    message_ids: tuple[int, ...]
    part: int = 0
    parts: int = 1

    @property
    def key(self) -> tuple[int, int]:
        return self.message_ids[0], self.part


def customer_posts(
    messages: Sequence[CustomerMessage],
    root_ts: str | None = None,
    customer_id: str | None = None,
) -> list[Post]:
    """Messages as thread posts within TEXT_LIMIT, in order.

    Short messages that queued up share a post (one paragraph each); a longer one is
    cut into parts. A message whose `slack_ts` is the root `root_ts` already shows its
    first part in the root: only the rest of it is posted. `customer_id`: messages by
    anyone else name their author.
    """
    posts: list[Post] = []
    batch: list[tuple[int, str]] = []

    def flush() -> None:
        if batch:
            posts.append(Post("\n\n".join(text for _, text in batch), tuple(i for i, _ in batch)))
            batch.clear()

    for message in messages:
        assert message.id is not None
        if root_ts is not None and message.slack_ts == root_ts:
            flush()
            rest = chunks(root_rest(message.text), TEXT_LIMIT)
            rest = [] if rest == [""] else rest
            posts.extend(
                Post(escape(piece), (message.id,), part, len(rest) + 1)
                for part, piece in enumerate(rest, 1)
            )
            continue
        text = _one_message(message, customer_id)
        if units(text) > TEXT_LIMIT:
            flush()
            texts = [escape(piece) for piece in chunks(message.text, TEXT_LIMIT)]
            posts.extend(
                Post(text, (message.id,), part, len(texts)) for part, text in enumerate(texts)
            )
            continue
        if batch and units("\n\n".join([t for _, t in batch] + [text])) > TEXT_LIMIT:
            flush()
        batch.append((message.id, text))
    flush()
    return posts


def post_metadata(conversation_id: int, post: Post | None = None, **extra: Any) -> Block:
    """Message metadata naming what a post carries, to find it again after a crash."""
    payload: dict[str, Any] = {"conversation_id": conversation_id, **extra}
    if post is not None:
        payload.update(
            message_id=post.message_ids[0],
            message_ids=",".join(str(i) for i in post.message_ids),
            part=post.part,
            parts=post.parts,
        )
    return {"event_type": METADATA_EVENT, "event_payload": payload}
