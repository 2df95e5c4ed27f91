"""Pure Block Kit builders: no I/O, easy to test.

Everything a customer wrote passes through `escape` so that `<!channel>`,
`<@U123>` or `<http://x|y>` in it render as text and ping or link nobody; a URL a
network or a customer supplied goes through `link` (http(s) only, %-encoded).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote as percent_encode
from urllib.parse import urlsplit

from bot.networks.registry import labels as network_labels
from storage.models import Conversation, CustomerMessage

Block = dict[str, Any]

NETWORK_LABELS = network_labels()
MAX_URL = 2000


def escape(text: str) -> str:
    """Slack's control characters as entities: the text can no longer mention or link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# Characters a URL may keep as they are inside `<url|label>`: `<`, `>` and `|` end or split
# the link, and spaces and control characters are no URL's; all of those are %-encoded.
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~-._"


def link(url: object, label: str) -> str:
    """`<url|label>` for an http(s) URL, else the label alone: a customer-supplied URL
    such as `!here` or `@U123` must neither ping nor link anywhere but the web.

    `label` is plain text (escaped here); the URL is %-encoded where Slack would read
    markup, and `&` is written as `&amp;` as Slack expects.
    """
    text = escape(label)
    if not isinstance(url, str) or len(url) > MAX_URL:
        return text
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return text
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return text
    safe = percent_encode(parts.geturl(), safe=_URL_SAFE)
    return f"<{escape(safe)}|{text}>"


def network_label(conversation: Conversation) -> str:
    channel = conversation.reply_context.get("channel") if conversation.reply_context else None
    return NETWORK_LABELS.get(str(channel or conversation.network), conversation.network)


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


def status_line(conversation: Conversation) -> str:
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
    conversation: Conversation, teams: Sequence[str], note: str | None = None
) -> list[Block]:
    """The conversation's root: who, where, #N, the first message, status and buttons."""
    header = (
        f"*{network_label(conversation)}* · {customer_label(conversation)} · *#{conversation.id}*"
    )
    blocks: list[Block] = [{"type": "section", "text": {"type": "mrkdwn", "text": header}}]
    if note:
        blocks.append(context([note]))
    blocks.append(
        {"type": "section", "text": {"type": "mrkdwn", "text": quote(conversation.root_text)}}
    )
    blocks.append(context([status_line(conversation)]))
    blocks.extend(_actions(conversation, teams))
    return blocks


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


def customer_messages_text(messages: Sequence[CustomerMessage]) -> str:
    """Follow-ups that queued up are posted together, one paragraph each."""
    return "\n\n".join(_one_message(message) for message in messages)


def _one_message(message: CustomerMessage) -> str:
    lines = [escape(message.text)] if message.text else []
    for attachment in message.attachments or []:
        kind = str(attachment.get("kind", "file"))
        title = str(attachment.get("title") or kind)
        lines.append(link(attachment.get("url"), f"[{title}]"))
    return "\n".join(lines) or "_(empty message)_"


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
    header = (
        f"*{network_label(conversation)}* · {customer_label(conversation)} · *#{conversation.id}*"
    )
    moved = f":arrow_right: Handed off to *{escape(team.title())}* by <@{by_user}>"
    if new_thread:
        moved += f" · <{new_thread}|continue in the new thread>"
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": header}},
        {"type": "section", "text": {"type": "mrkdwn", "text": quote(conversation.root_text)}},
        context([moved]),
    ]
