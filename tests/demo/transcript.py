"""The Slack side as a terminal transcript, and the figures from SQL.

Channels in order, each thread's root then its replies indented, who said
what, reactions, and for team messages what became of them (delivered,
internal note, not delivered), read from SQL; then the bot's direct messages
and the daily summary. Block Kit (headers, fields, context, buttons) becomes
plain lines, links show their label, and dates are shown in the stage's time
zone as Slack shows them to each reader in theirs. Colours only when stdout is
a terminal or FORCE_COLOR is set (NO_COLOR, or FORCE_COLOR=0, turns them off).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import select

from storage import stats
from storage.models import CustomerMessage, Escalation, Handoff, TeamReply
from tests.demo.stage import CHANNEL_NAMES, SUMMARY, Person, Stage

EMOJI = {
    "white_check_mark": "✅",
    "warning": "⚠️",
    "no_entry_sign": "🚫",
    "hourglass_flowing_sand": "⏳",
    "speech_balloon": "💬",
    "large_blue_circle": "🔵",
    "rotating_light": "🚨",
    "information_source": "ℹ️",
    "star": "⭐",
    "outbox_tray": "📤",
    "arrow_right": "➡️",
    "leftwards_arrow_with_hook": "↩️",
    "pager": "📟",
    "ok_hand": "👌",
    "tada": "🎉",
    "page": "📄",
    "arrows_counterclockwise": "🔄",
    "sparkles": "✨",
    "chart_with_upwards_trend": "📈",
    "label": "🏷️",
    "crescent_moon": "🌙",
}
NETWORK_NAMES = {
    "telegram": "Telegram",
    "generic": "website chat",
    "whatsapp": "WhatsApp",
    "meta": "Messenger",
    "x": "X",
}
FATE = {
    "sent": "delivered",
    "internal": "internal note, not sent",
    "failed": "not delivered",
    "pending": "not delivered yet",
    "refused": "refused",
}


ANSI = re.compile(r"\x1b\[[0-9;]*m")

# A Slack message: (channel, ts).
Key = tuple[str | None, str | None]


@dataclass(frozen=True)
class Style:
    colour: bool

    @classmethod
    def for_stdout(cls) -> Style:
        force = os.environ.get("FORCE_COLOR")
        if force:
            return cls(force.lower() not in ("0", "false"))
        if os.environ.get("NO_COLOR"):
            return cls(False)
        return cls(sys.stdout.isatty())

    def _wrap(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.colour else text

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def underline(self, text: str) -> str:
        return self._wrap("4", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def green(self, text: str) -> str:
        return self._wrap("32", text)

    def yellow(self, text: str) -> str:
        return self._wrap("33", text)

    def cyan(self, text: str) -> str:
        return self._wrap("36", text)

    def magenta(self, text: str) -> str:
        return self._wrap("35", text)


class Renderer:
    """Slack mrkdwn and Block Kit as plain terminal text."""

    def __init__(self, stage: Stage, style: Style) -> None:
        self.stage = stage
        self.style = style

    def name_of(self, user_id: str) -> str:
        user = self.stage.slack.users.get(user_id)
        return str(user["real_name"]) if user else user_id

    def date(self, match: re.Match[str]) -> str:
        """`<!date^epoch^format|fallback>` as Slack shows it to a reader in the stage's zone."""
        at = datetime.fromtimestamp(int(match.group(1)), self.stage.tz)
        return at.strftime("%H:%M" if match.group(2) == "{time}" else "%a %d %b %H:%M")

    def mrkdwn(self, text: str) -> str:
        text = re.sub(r"<@([UW][A-Z0-9]+)>", lambda m: "@" + self.name_of(m.group(1)), text)
        text = re.sub(r"<!date\^(\d+)\^([^|>]*)\|[^>]*>", self.date, text)
        text = re.sub(r"<(https?://[^|>]+)\|([^>]+)>", lambda m: self.style.underline(m[2]), text)
        text = re.sub(r"<(https?://[^>]+)>", r"\1", text)
        text = re.sub(r":([a-z_]+):", lambda m: EMOJI.get(m.group(1), m.group(0)), text)
        text = re.sub(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])", lambda m: self.style.bold(m[1]), text)
        text = re.sub(r"(?<!\w)_([^_\n]+)_(?!\w)", r"\1", text)
        return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")

    def fields(self, fields: list[dict[str, Any]]) -> list[str]:
        """Section fields (`*Title*\nvalue`) as aligned `Title  value` lines."""
        pairs = [self.mrkdwn(f.get("text", "")).partition("\n")[::2] for f in fields]
        width = max(len(ANSI.sub("", title)) for title, _ in pairs)
        return [
            title + " " * (width - len(ANSI.sub("", title)) + 2) + value.replace("\n", " ")
            for title, value in pairs
        ]

    def blocks(self, blocks: list[dict[str, Any]]) -> list[str]:
        lines: list[str] = []
        buttons: list[str] = []
        for block in blocks:
            kind = block["type"]
            if kind == "header":
                lines.append(self.style.bold(block["text"]["text"]))
            elif kind == "section":
                if "text" in block:
                    lines.extend(self.mrkdwn(block["text"]["text"]).splitlines())
                if block.get("fields"):
                    lines.extend(self.fields(block["fields"]))
            elif kind == "context":
                parts = [self.mrkdwn(e.get("text", "")) for e in block["elements"]]
                lines.append(self.style.dim(" · ".join(parts)))
            elif kind == "divider":
                lines.append(self.style.dim("─" * 24))
            elif kind == "actions":
                buttons += [f"[ {e['text']['text']} ]" for e in block["elements"]]
        if buttons:
            lines.append(self.style.cyan(" ".join(buttons)))
        return lines

    def ephemeral(self, person: Person, answer: dict[str, Any], indent: str = "      ") -> str:
        """An answer only `person` sees (a slash command's or a button's), as Slack shows it."""
        body = self.blocks(answer["blocks"]) if answer.get("blocks") else []
        if not body:
            body = self.mrkdwn(str(answer.get("text", ""))).splitlines() or [""]
        who = self.style.cyan("relaydesk") + self.style.dim(f" (only visible to {person.name})")
        lines = [f"{indent}{who}: {body[0]}"] + [f"{indent}    {line}" for line in body[1:]]
        return "\n".join(lines)


async def slack_transcript(stage: Stage, style: Style) -> str:
    """Every channel the bot wrote in, thread by thread."""
    render = Renderer(stage, style)
    async with stage.bot.services.db.session() as session:
        customers = (await session.execute(select(CustomerMessage))).scalars().all()
        replies = (await session.execute(select(TeamReply))).scalars().all()
    # Roots name their customer already; thread replies get "(from ... on ...)".
    relayed: dict[Key, CustomerMessage] = {
        (m.slack_channel, m.slack_ts): m for m in customers if m.slack_ts
    }
    team: dict[Key, TeamReply] = {(r.slack_channel, r.slack_ts): r for r in replies if r.slack_ts}
    # (channel, heading, note): the channels, the bot's DMs, then the summary channel.
    places = [(c, f"#{name}", c) for c, name in CHANNEL_NAMES.items() if c != SUMMARY]
    for person in stage.people.values():
        dm = await stage.dm_channel(person)
        places.append((dm, f"DM to {person.name}", f"from relaydesk, {dm}"))
    places.append((SUMMARY, f"#{CHANNEL_NAMES[SUMMARY]}", f"{SUMMARY}, SLACK_SUMMARY_CHANNEL"))
    out: list[str] = []
    for channel, heading, note in places:
        roots = stage.slack.roots(channel)
        if not roots:
            continue
        out += ["", style.bold(style.magenta(heading)) + style.dim(f"  ({note})")]
        for root in roots:
            out.append("")
            out += _message(render, root, {}, team, channel, indent="  ")
            for reply in stage.slack.replies(channel, root["ts"]):
                out += _message(render, reply, relayed, team, channel, indent="      ")
    return "\n".join(out)


def _message(
    render: Renderer,
    message: dict[str, Any],
    relayed: dict[Key, CustomerMessage],
    team: dict[Key, TeamReply],
    channel: str,
    indent: str,
) -> list[str]:
    style = render.style
    key = (channel, message["ts"])
    customer = relayed.get(key)
    reply = team.get(key)
    if message.get("username"):  # posted on someone's behalf: a saved reply
        who = style.green(str(message["username"])) + style.dim(" (posted by relaydesk)")
    elif message.get("user") == render.stage.slack.bot_user_id:
        who = style.cyan("relaydesk")
        if customer is not None:
            network = NETWORK_NAMES.get(customer.network, customer.network)
            who += style.dim(f" (from {customer.author_name} on {network})")
    else:
        who = style.green(render.name_of(str(message.get("user"))))
    body = render.blocks(message["blocks"]) if message.get("blocks") else []
    if not body:
        body = render.mrkdwn(str(message.get("text", ""))).splitlines() or [""]
    lines = [f"{indent}{who}: {body[0]}"] + [f"{indent}    {line}" for line in body[1:]]
    for shared in message.get("files", []):  # a customer's file, uploaded into the thread
        lines[-1] += f"📎 {shared['name']} ({shared['size']:,} bytes, a Slack file)"
    tags = [
        f"{EMOJI.get(r, '')} :{r}:".strip()
        for r in render.stage.slack.reactions(channel, message["ts"])
    ]
    if reply is not None and reply.source == "slack":
        fate = FATE.get(reply.state, reply.state)
        tags.append(style.yellow(fate) if reply.state != "sent" else style.green(fate))
    if tags:
        lines.append(f"{indent}    " + style.dim("└ ") + "  ".join(tags))
    return lines


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return str(timedelta(seconds=round(seconds)))


async def figures(stage: Stage, style: Style) -> str:
    """The morning's numbers, from SQL (the same queries as /api/stats)."""
    db = stage.bot.services.db
    since = stage.started - timedelta(hours=1)
    until = stage.started + timedelta(hours=1)
    numbers = await stats.compute(db, since, until, now=stage.clock())  # the bot's clock
    async with db.session() as session:
        replies = (await session.execute(select(TeamReply))).scalars().all()
        handoffs = (await session.execute(select(Handoff))).scalars().all()
        pages = (await session.execute(select(Escalation))).scalars().all()
    mine = [r for r in replies if r.source == "slack"]
    rate = numbers["response_rate"]
    rows = [
        ("customer messages received", str(numbers["received"])),
        ("conversations", str(numbers["conversations"])),
        ("replies delivered", str(sum(r.state == "sent" for r in mine))),
        ("replies not delivered", str(sum(r.state == "failed" for r in mine))),
        ("internal notes", str(sum(r.kind == "note" for r in mine))),
        ("handoffs", str(len(handoffs))),
        ("escalation pages sent", str(sum(p.sent_at is not None for p in pages))),
        (
            "escalations acknowledged",
            str(len({p.conversation_id for p in pages if p.acked_at is not None})),
        ),
        (
            "turns answered",
            f"{numbers['answered_turns']} of {numbers['turns']}"
            + (f" ({rate:.0%})" if rate is not None else ""),
        ),
        ("median response time", _duration(numbers["median_response_seconds"])),
        ("average first response", _duration(numbers["avg_first_response_seconds"])),
        ("unanswered now", str(numbers["unanswered"])),
        ("customer ratings", f"{numbers['csat_count']} (average {numbers['csat_avg']})"),
    ]
    by_network = ", ".join(
        f"{NETWORK_NAMES.get(name, name)} {part['received']}"
        for name, part in numbers["by_network"].items()
    )
    rows.append(("received by network", by_network))
    width = max(len(label) for label, _ in rows)
    lines = ["", style.bold("Figures (from SQL)")]
    lines += [f"  {label.ljust(width)}  {style.bold(value)}" for label, value in rows]
    return "\n".join(lines)


def _telegram_shown(message: dict[str, Any]) -> str:
    """A text message's text; a file as its kind and name, after its caption."""
    if "text" in message:
        return str(message["text"])
    for kind in ("photo", "document", "video", "audio"):
        if kind in message:
            shown = f"[{kind}: {message[kind]['file_name']}]"
            return f"{message['caption']} {shown}" if message.get("caption") else shown
    return "[message]"


def customer_side(stage: Stage, style: Style) -> str:
    """What reached the customers' apps (the networks' stand-ins recorded it)."""
    bot = stage.bot
    sent = [("Telegram", str(m["chat"]["id"]), _telegram_shown(m)) for m in bot.telegram.sent]
    for item in bot.graph.sent:
        network = "WhatsApp" if item["kind"] == "whatsapp" else "Messenger"
        text = item["text"]["body"] if item["kind"] == "whatsapp" else item["message"]["text"]
        sent.append((network, str(item.get("to") or item["recipient"]["id"]), text))
    for call in bot.sink.calls_to("*replies"):
        body = call.json or {}
        sent.append(("website chat", str(body.get("conversation_id")), str(body.get("text"))))
    lines = ["", style.bold("What the customers received")]
    lines += [f"  {network} {style.dim(to)}: {text}" for network, to, text in sent]
    return "\n".join(lines)
