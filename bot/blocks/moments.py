"""Moments and spike alerts as Slack text and Block Kit: formatting only, no I/O."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from bot.blocks.conversation import Block, escape, slack_date
from storage.models import Moment

MODAL = "relaydesk.moment_modal"
NOTE_MAX = 500  # a short note


def moment_modal(conversation_id: int, channel: str, ts: str, thread_ts: str) -> Block:
    """The shortcut's form: a short note; the message it was used on rides as metadata."""
    metadata = {"conversation": conversation_id, "channel": channel, "ts": ts, "thread": thread_ts}
    return {
        "type": "modal",
        "callback_id": MODAL,
        "private_metadata": json.dumps(metadata),
        "title": {"type": "plain_text", "text": f"Moment in #{conversation_id}"},
        "submit": {"type": "plain_text", "text": "Record"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": "note",
                "label": {"type": "plain_text", "text": "What made this moment meaningful?"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": "note",
                    "multiline": True,
                    "max_length": NOTE_MAX,
                },
            }
        ],
    }


def _who(moment: Moment) -> str:
    return f"<@{moment.user_id}>"


def _note(moment: Moment) -> str:
    return f": _{escape(moment.note)}_" if moment.note else ""


def moment_note(moment: Moment) -> str:
    """The short post in the thread when a moment is recorded."""
    return (
        f":sparkles: {_who(moment)} marked a meaningful moment with "
        f"*{escape(moment.customer)}* (#{moment.conversation_id}){_note(moment)}"
    )


def moment_removed(moment: Moment) -> str:
    """The same post once its reaction was taken away."""
    return f"~{moment_note(moment)}~ (removed by {_who(moment)})"


def moments_block(count: int, latest: Sequence[Moment]) -> list[Block]:
    """`/social-stats` and the summary: how many moments, and the latest few."""
    if not count:
        return []
    lines = [
        f"• {slack_date(m.at)} · {_who(m)} · *{escape(m.customer)}* "
        f"({escape(m.network)}, #{m.conversation_id}){_note(m)}"
        for m in latest
    ]
    text = f"*:sparkles: Meaningful moments*: {count}"
    if lines:
        text += "\n" + "\n".join(lines)
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]


def moment_json(moment: Moment) -> dict[str, Any]:
    """One item of `GET /api/moments`."""
    return {
        "who": moment.user_id,
        "when": moment.at.isoformat(),
        "conversation": moment.conversation_id,
        "customer": moment.customer,
        "network": moment.network,
        "note": moment.note,
        "source": moment.source,
    }


# -- spikes -------------------------------------------------------------------------
def _minutes(window: timedelta) -> str:
    return f"{int(window.total_seconds() // 60)} minutes"


def spike_page(
    *,
    user: str | None,
    count: int,
    baseline: float,
    window: timedelta,
    by_network: Mapping[str, int],
    words: Sequence[str],
    oldest: tuple[str, str | None] | None,
) -> tuple[str, list[Block]]:
    """The page in the inbox: who is paged, counts by network, frequent words and the
    oldest unanswered conversation (`oldest`: its label, and its thread's link once posted)."""
    who = f"<@{user}>" if user else "Nobody is on call (set ONCALL_USERS)"
    headline = (
        f":chart_with_upwards_trend: *Volume spike*: {count} customer messages in the last "
        f"{_minutes(window)}, against {baseline:.1f} on average at this time over the last "
        f"7 days. {who}, please take a look."
    )
    networks = " · ".join(
        f"{escape(name)} {n}" for name, n in sorted(by_network.items(), key=lambda i: -i[1])
    )
    lines = [f"*By network*: {networks}"]
    if words:
        lines.append("*Frequent words*: " + ", ".join(f"`{escape(w)}`" for w in words))
    if oldest is not None:
        label, link = oldest
        shown = escape(label).replace("|", "¦")
        lines.append(
            f"*Oldest unanswered*: <{link}|{shown}>" if link else f"*Oldest unanswered*: {shown}"
        )
    blocks: list[Block] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
    ]
    return f"Volume spike: {count} customer messages in {_minutes(window)}", blocks


def spike_over(count: int, window: timedelta, started: str) -> str:
    """The second post: the spike is over."""
    return (
        f":white_check_mark: The volume spike that started {started} is over: "
        f"{count} customer messages in the last {_minutes(window)}, back under the threshold."
    )
