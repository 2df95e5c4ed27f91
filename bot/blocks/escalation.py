"""Pure Block Kit and text builders for pages, acks and `/oncall`: no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.blocks.conversation import (
    Block,
    actions,
    button,
    customer_label,
    network_label,
    quote,
    slack_date,
)
from bot.services.rotation import Shift
from storage.models import Conversation, Escalation

ACK = "relaydesk.ack"
CLAIM = "relaydesk.claim"

NOBODY_HOW_TO = (
    "Set `ONCALL_USERS` (Slack user IDs in rotation order, e.g. `U0123456789,U0987654321`) "
    "or `ESCALATION_MANAGER`, or have someone take it now with `/oncall cover @user 8h`."
)


def wait_text(waited: timedelta) -> str:
    """`45 min`, `2 h 5 min`, `3 d 1 h`: how long the customer has waited."""
    minutes = int(waited.total_seconds() // 60)
    if minutes < 1:
        return "less than a minute"
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def _headline(conversation: Conversation, page: Escalation, waited: timedelta | None) -> str:
    kind = "Manual escalation" if page.kind == "manual" else "Escalation"
    line = (
        f":rotating_light: *{kind}, level {page.level}* · *#{conversation.id}* · "
        f"{network_label(conversation)} · {customer_label(conversation)}"
    )
    if waited is not None:
        line += f"\nWaiting for an answer for *{wait_text(waited)}*."
    if page.by_user:
        line += f"\nEscalated by <@{page.by_user}>"
        line += f": {page.reason}" if page.reason else "."
    return line


def _buttons(conversation: Conversation) -> Block:
    value = str(conversation.id)
    return actions(
        "relaydesk.escalation",
        [button("Acknowledge", ACK, value, style="primary"), button("Claim", CLAIM, value)],
    )


def page_dm(
    conversation: Conversation,
    page: Escalation,
    waited: timedelta | None,
    link: str | None,
    last_message: str | None = None,
) -> tuple[str, list[Block]]:
    """The DM to the paged person: who, where, how long, what they asked, a link, buttons."""
    text = f"Escalation level {page.level}: #{conversation.id} needs an answer"
    body = _headline(conversation, page, waited)
    body += f"\n<{link}|Open the conversation thread>" if link else "\n_(no Slack thread yet)_"
    blocks: list[Block] = [{"type": "section", "text": {"type": "mrkdwn", "text": body}}]
    if last_message:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": quote(last_message[:500])}}
        )
    blocks.append(_buttons(conversation))
    return text, blocks


def page_mention(
    conversation: Conversation, page: Escalation, waited: timedelta | None
) -> tuple[str, list[Block]]:
    """The thread reply that mentions the paged person."""
    assert page.target_user is not None
    body = f"<@{page.target_user}> " + _headline(conversation, page, waited)
    text = f"<@{page.target_user}>: escalation level {page.level} for #{conversation.id}"
    blocks: list[Block] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": body}},
        _buttons(conversation),
    ]
    return text, blocks


def nobody_on_call(conversation: Conversation, waited: timedelta | None) -> str:
    lead = f"#{conversation.id} was escalated"
    if waited is not None:
        lead = f"#{conversation.id} has waited {wait_text(waited)} for an answer"
    return f":warning: {lead}, but nobody is on call to page. {NOBODY_HOW_TO}"


def acked_note(conversation: Conversation, user: str) -> str:
    return (
        f":ok_hand: <@{user}> acknowledged the escalation of #{conversation.id}; "
        "it will not be escalated further."
    )


def _shift_line(shift: Shift) -> str:
    cover = " (cover)" if shift.override else ""
    return f"• <@{shift.user}> {slack_date(shift.starts_at)} → {slack_date(shift.ends_at)}{cover}"


def oncall_text(
    current: Shift | None,
    following: Sequence[Shift],
    manager: str | None,
    now: datetime,
    *,
    opens_at: datetime | None = None,
) -> str:
    """`/oncall`: who is on call now and until when, the next shifts, and the last level;
    `opens_at`: the desk is closed until then."""
    if current is not None:
        cover = " (covering)" if current.override else ""
        lines = [
            f":pager: On call now: <@{current.user}>{cover} until {slack_date(current.ends_at)}"
        ]
    else:
        lines = [f":pager: Nobody is on call right now ({slack_date(now)})."]
        if manager is None:
            lines.append(NOBODY_HOW_TO)
    if following:
        lines.append("Next:")
        lines.extend(_shift_line(shift) for shift in following)
    if manager:
        lines.append(f"Last escalation level: <@{manager}>")
    if opens_at is not None:
        lines.append(f":crescent_moon: The desk is closed; it opens {slack_date(opens_at)}.")
    return "\n".join(lines)


def cover_text(user: str, starts_at: datetime, ends_at: datetime) -> str:
    return (
        f":pager: <@{user}> is on call from {slack_date(starts_at)} "
        f"until {slack_date(ends_at)} (cover)."
    )
