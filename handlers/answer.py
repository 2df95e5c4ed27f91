"""How listeners answer: an empty ack, or an ephemeral that a Slack error cannot break."""

from __future__ import annotations

import logging

from slack_bolt.context.ack.async_ack import AsyncAck

from bot.slack import Slack, SlackError

log = logging.getLogger(__name__)

NOT_OURS = "This button does not belong to a Relaydesk conversation."


async def ack_only(ack: AsyncAck) -> None:
    """The ack of a listener whose work runs lazily, after Slack has its answer."""
    await ack()


async def tell(slack: Slack, channel: str | None, user: str, text: str) -> None:
    """Show `text` to `user` alone in `channel` (nowhere without a channel)."""
    if not channel:
        return
    try:
        await slack.ephemeral(channel, user, text)
    except SlackError as exc:
        log.warning("could not answer %s in %s: %s", user, channel, exc.code)
