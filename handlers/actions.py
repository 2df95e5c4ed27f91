"""Buttons: claim, resolve, reopen on a root; resend on a reply in doubt.

Ack at once; the answer comes as an ephemeral.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck

from bot.app import Services
from bot.services.escalation import Escalations
from bot.services.refusal import Refusal
from bot.slack import SlackError

log = logging.getLogger(__name__)


async def ack_only(ack: AsyncAck) -> None:
    await ack()


async def _run(body: dict[str, Any], context: dict[str, Any], verb: str) -> None:
    services: Services = context["services"]
    user = body["user"]["id"]
    action = body["actions"][0]
    channel = (body.get("channel") or {}).get("id") or body["container"].get("channel_id")
    try:
        conversation_id = int(action["value"])
        handler = getattr(services.conversations, verb)
        message = await handler(conversation_id, user)
        if verb == "claim" and channel and channel.startswith("D"):
            # Claim on a page in a DM: the person has it, so stop escalating too.
            await Escalations.from_services(services).ack(conversation_id, user)
    except Refusal as exc:
        message = exc.sentence
    except ValueError:
        message = "This button does not belong to a Relaydesk conversation."
    if channel:
        try:
            await services.slack.ephemeral(channel, user, message)
        except SlackError as exc:
            log.warning("could not answer %s's %s click: %s", user, verb, exc.code)


async def claim(body: dict[str, Any], context: dict[str, Any]) -> None:
    await _run(body, context, "claim")


async def resolve(body: dict[str, Any], context: dict[str, Any]) -> None:
    await _run(body, context, "resolve")


async def reopen(body: dict[str, Any], context: dict[str, Any]) -> None:
    await _run(body, context, "reopen")


async def resend(body: dict[str, Any], context: dict[str, Any]) -> None:
    await _run(body, context, "resend")
