"""`/escalate`, `/oncall` and the escalate / ack buttons: parse, one service call, answer.

Listeners are bound to the services given to `register`, so the lazy ones need
nothing from bolt's context (which bolt deep-copies for lazy listeners).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot import escalation_blocks as texts
from bot.app import Services
from bot.services.escalation import Escalations
from bot.services.refs import find_conversation, split_ref
from bot.services.refusal import Refusal
from bot.services.rotation import parse_duration
from bot.slack import SlackError
from storage.models import utcnow

log = logging.getLogger(__name__)

ESCALATE_USAGE = "Usage: `/escalate <#N|link> [reason]`, e.g. `/escalate #42 angry VIP customer`."
ONCALL_USAGE = (
    "Usage: `/oncall` shows who is on call now and next; "
    "`/oncall cover @user <duration>` puts someone on call from now."
)
# `<@U123|name>` or `<@U123>` (Slack escaping users) or a raw member ID `U123`.
_USER = re.compile(r"<@([UW][A-Z0-9]{6,})(?:\|[^>]*)?>|([UW][A-Z0-9]{6,})")


def parse_user(token: str) -> str | None:
    """A Slack user ID from a mention or a raw member ID; None for anything else."""
    match = _USER.fullmatch(token.strip())
    if match is None:
        return None
    return match.group(1) or match.group(2)


def register(app: AsyncApp, services: Services, *, clock: Callable[[], datetime] = utcnow) -> None:
    """Wire the on-call and escalation listeners onto `app`."""
    escalations = Escalations.from_services(services, clock=clock)
    listeners = OncallListeners(services, escalations, clock)
    app.command("/escalate")(ack=listeners.escalate_ack, lazy=[listeners.escalate_command])
    app.command("/oncall")(listeners.oncall)
    app.action("relaydesk.escalate")(ack=ack_only, lazy=[listeners.escalate_click])
    app.action("relaydesk.ack")(ack=ack_only, lazy=[listeners.ack_click])


async def ack_only(ack: AsyncAck) -> None:
    await ack()


class OncallListeners:
    def __init__(
        self, services: Services, escalations: Escalations, clock: Callable[[], datetime]
    ) -> None:
        self._services = services
        self._escalations = escalations
        self._clock = clock

    # -- /escalate ------------------------------------------------------------
    async def escalate_ack(self, ack: AsyncAck, command: dict[str, Any]) -> None:
        """Refuse a bad reference at once; the page itself goes out after the ack."""
        token, _ = split_ref(command.get("text", ""))
        try:
            await find_conversation(self._services.repo, token)
        except Refusal as exc:
            await ack(text=f"{exc.sentence}\n{ESCALATE_USAGE}")
            return
        await ack()

    async def escalate_command(self, command: dict[str, Any]) -> None:
        token, reason = split_ref(command.get("text", ""))
        try:
            conversation = await find_conversation(self._services.repo, token)
        except Refusal:
            return  # answered by escalate_ack
        assert conversation.id is not None
        user = command["user_id"]
        message = await self._escalations.escalate(conversation.id, user, reason or None)
        await self._tell(command["channel_id"], user, message)

    # -- /oncall ----------------------------------------------------------------
    async def oncall(self, ack: AsyncAck, command: dict[str, Any]) -> None:
        """SQL only, so the answer is the ack itself (ephemeral; a new cover is shown to all)."""
        words = command.get("text", "").split()
        if not words:
            now = self._clock()
            state = await self._escalations.on_call(now)
            await ack(text=texts.oncall_text(state.current, state.following, state.manager, now))
            return
        if words[0].lower() != "cover":
            await ack(text=ONCALL_USAGE)
            return
        if len(words) < 3:
            await ack(text=texts.COVER_USAGE)
            return
        user = parse_user(words[1])
        if user is None:
            await ack(
                text=f"`{words[1]}` is not a Slack user: mention them with @ or give their "
                f"member ID (U…). {texts.COVER_USAGE}"
            )
            return
        try:
            duration = parse_duration(" ".join(words[2:]))
        except ValueError as exc:
            await ack(text=f"{str(exc).capitalize()}. {texts.COVER_USAGE}")
            return
        row = await self._escalations.cover(user, duration, command["user_id"])
        await ack(
            text=texts.cover_text(row.user_id, row.starts_at, row.ends_at),
            response_type="in_channel",
        )

    # -- buttons ----------------------------------------------------------------
    async def escalate_click(self, body: dict[str, Any]) -> None:
        async def run(conversation_id: int, user: str) -> str:
            return await self._escalations.escalate(conversation_id, user, None)

        await self._click(body, run)

    async def ack_click(self, body: dict[str, Any]) -> None:
        async def run(conversation_id: int, user: str) -> str:
            return (await self._escalations.ack(conversation_id, user)).message

        await self._click(body, run)

    async def _click(self, body: dict[str, Any], run: Callable[[int, str], Awaitable[str]]) -> None:
        user = body["user"]["id"]
        channel = (body.get("channel") or {}).get("id") or body["container"].get("channel_id")
        try:
            conversation_id = int(body["actions"][0]["value"])
        except ValueError:
            message = "This button does not belong to a Relaydesk conversation."
        else:
            if await self._services.repo.conversation(conversation_id) is None:
                message = f"There is no conversation #{conversation_id}."
            else:
                message = await run(conversation_id, user)
        if channel:
            await self._tell(channel, user, message)

    async def _tell(self, channel: str, user: str, text: str) -> None:
        try:
            await self._services.slack.ephemeral(channel, user, text)
        except SlackError as exc:
            log.warning("could not answer %s in %s: %s", user, channel, exc.code)
