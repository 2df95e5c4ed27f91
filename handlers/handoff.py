"""Handoff from the root's buttons, the message shortcut (a modal), and `/handoff`."""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck

from bot.app import Services
from bot.services.refs import find_conversation
from bot.services.refusal import Refusal
from bot.slack import SlackError

log = logging.getLogger(__name__)

MODAL = "relaydesk.handoff_modal"


async def _tell(services: Services, channel: str | None, user: str, text: str) -> None:
    if not channel:
        return
    try:
        await services.slack.ephemeral(channel, user, text)
    except SlackError as exc:
        log.warning("could not tell %s about a handoff: %s", user, exc.code)


async def button(body: dict[str, Any], context: dict[str, Any]) -> None:
    """`relaydesk.handoff` button: value = team; the conversation is the root clicked."""
    services: Services = context["services"]
    user = body["user"]["id"]
    channel = body["container"].get("channel_id")
    team = body["actions"][0]["value"]
    conversation = await services.repo.conversation_by_thread(
        channel, body["container"].get("message_ts", "")
    )
    if conversation is None:
        await _tell(services, channel, user, "This message is not a Relaydesk conversation.")
        return
    try:
        text = await services.handoffs.hand_off(conversation.id or 0, team, user)
    except Refusal as exc:
        text = exc.sentence
    await _tell(services, channel, user, text)


async def shortcut(body: dict[str, Any], context: dict[str, Any]) -> None:
    """Message shortcut: find the message's conversation and open the handoff modal."""
    services: Services = context["services"]
    user = body["user"]["id"]
    channel = body["channel"]["id"]
    message = body.get("message", {})
    conversation = await services.repo.conversation_by_message(channel, body["message_ts"])
    if conversation is None and message.get("thread_ts"):
        conversation = await services.repo.conversation_by_thread(channel, message["thread_ts"])
    if conversation is None:
        await _tell(
            services,
            channel,
            user,
            "That message is not part of a Relaydesk conversation. Use the shortcut on a "
            "conversation's root or on a message in its thread.",
        )
        return
    teams = [t for t in services.settings.teams if t != conversation.team]
    view = {
        "type": "modal",
        "callback_id": MODAL,
        "private_metadata": json.dumps({"conversation": conversation.id, "channel": channel}),
        "title": {"type": "plain_text", "text": f"Hand off #{conversation.id}"},
        "submit": {"type": "plain_text", "text": "Hand off"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": "team",
                "label": {"type": "plain_text", "text": "Team"},
                "element": {
                    "type": "static_select",
                    "action_id": "team",
                    "options": [
                        {"text": {"type": "plain_text", "text": t.title()}, "value": t}
                        for t in teams
                    ],
                },
            },
            {
                "type": "input",
                "block_id": "note",
                "optional": True,
                "label": {"type": "plain_text", "text": "Note for the team"},
                "element": {"type": "plain_text_input", "action_id": "note", "multiline": True},
            },
        ],
    }
    try:
        await services.slack.call("views.open", trigger_id=body["trigger_id"], view=view)
    except SlackError as exc:
        log.warning("could not open the handoff modal for %s: %s", user, exc.code)
        await _tell(services, channel, user, f"Could not open the handoff form ({exc.code}).")


async def submit(ack: AsyncAck, body: dict[str, Any], context: dict[str, Any]) -> None:
    """Modal submitted: hand off, or show the reason on the team field."""
    services: Services = context["services"]
    user = body["user"]["id"]
    view = body["view"]
    meta = json.loads(view.get("private_metadata") or "{}")
    values = view["state"]["values"]
    team = (values["team"]["team"].get("selected_option") or {}).get("value", "")
    note = values.get("note", {}).get("note", {}).get("value")
    try:
        text = await services.handoffs.hand_off(int(meta["conversation"]), team, user, note)
    except Refusal as exc:
        await ack(response_action="errors", errors={"team": exc.sentence})
        return
    await ack()
    await _tell(services, meta.get("channel"), user, text)


async def command(ack: AsyncAck, command: dict[str, Any], context: dict[str, Any]) -> None:
    """`/handoff <team> <#N|link> [note]`: the answer is the ephemeral command response."""
    services: Services = context["services"]
    usage = (
        "Usage: `/handoff <team> <#N or message link> [note]`, e.g. "
        f"`/handoff {services.settings.teams[-1]} #12 wants a quote`. "
        f"Teams: {', '.join(services.settings.teams)}."
    )
    parts = (command.get("text") or "").split(maxsplit=2)
    if len(parts) < 2:
        await ack(usage)
        return
    team, reference = parts[0], parts[1]
    note = parts[2] if len(parts) > 2 else None
    try:
        conversation = await find_conversation(services.repo, reference)
        text = await services.handoffs.hand_off(
            conversation.id or 0, team, command["user_id"], note
        )
    except Refusal as exc:
        text = exc.sentence
    await ack(text)
