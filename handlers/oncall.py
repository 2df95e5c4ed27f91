"""`/escalate`, `/oncall` and the escalate / ack buttons: parse, one service call, answer."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.app import Services
from bot.blocks import escalation as texts
from bot.services.refs import split_ref
from bot.services.refusal import Refusal
from bot.services.rotation import COVER_USAGE, parse_duration
from handlers.answer import NOT_OURS, ack_only, tell
from handlers.payloads import BlockActions, SlashCommand, click_channel, clicked_ts

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


def register(app: AsyncApp, services: Services) -> None:
    """Wire the on-call and escalation listeners onto `app`."""
    listeners = OncallListeners(services)
    app.command("/escalate")(ack=listeners.escalate_ack, lazy=[listeners.escalate_command])
    app.command("/oncall")(listeners.oncall)
    app.action("relaydesk.escalate")(ack=ack_only, lazy=[listeners.escalate_click])
    app.action("relaydesk.ack")(ack=ack_only, lazy=[listeners.ack_click])


class OncallListeners:
    def __init__(self, services: Services) -> None:
        self._services = services
        self._escalations = services.escalations

    # -- /escalate ------------------------------------------------------------
    async def escalate_ack(self, ack: AsyncAck, command: SlashCommand) -> None:
        """Refuse a bad reference at once; the page itself goes out after the ack."""
        token, _ = split_ref(command.get("text", ""))
        try:
            await self._services.lookup.reference(token)
        except Refusal as exc:
            await ack(text=f"{exc.sentence}\n{ESCALATE_USAGE}")
            return
        await ack()

    async def escalate_command(self, command: SlashCommand) -> None:
        token, reason = split_ref(command.get("text", ""))
        try:
            conversation = await self._services.lookup.reference(token)
        except Refusal:
            return  # answered by escalate_ack
        assert conversation.id is not None
        user = command["user_id"]
        try:
            message = await self._escalations.escalate(conversation.id, user, reason or None)
        except Refusal as exc:
            message = exc.sentence
        await tell(self._services.slack, command["channel_id"], user, message)

    # -- /oncall ----------------------------------------------------------------
    async def oncall(self, ack: AsyncAck, command: SlashCommand) -> None:
        """SQL only, so the answer is the ack itself (ephemeral; a new cover is shown to all)."""
        words = command.get("text", "").split()
        if not words:
            now = self._services.clock()
            state = await self._escalations.on_call(now)
            await ack(
                text=texts.oncall_text(
                    state.current, state.following, state.manager, now, opens_at=state.opens_at
                )
            )
            return
        if words[0].lower() != "cover":
            await ack(text=ONCALL_USAGE)
            return
        if len(words) < 3:
            await ack(text=COVER_USAGE)
            return
        user = parse_user(words[1])
        if user is None:
            await ack(
                text=f"`{words[1]}` is not a Slack user: mention them with @ or give their "
                f"member ID (U…). {COVER_USAGE}"
            )
            return
        try:
            duration = parse_duration(" ".join(words[2:]))
            row = await self._escalations.cover(user, duration, command["user_id"])
        except Refusal as exc:
            await ack(text=exc.sentence)
            return
        await ack(
            text=texts.cover_text(row.user_id, row.starts_at, row.ends_at),
            response_type="in_channel",
        )

    # -- buttons ----------------------------------------------------------------
    async def escalate_click(self, body: BlockActions) -> None:
        async def run(conversation_id: int, user: str) -> str:
            return await self._escalations.escalate(conversation_id, user, None)

        await self._click(body, run)

    async def ack_click(self, body: BlockActions) -> None:
        await self._click(body, self._escalations.ack)

    async def _click(self, body: BlockActions, run: Callable[[int, str], Awaitable[str]]) -> None:
        user = body["user"]["id"]
        channel = click_channel(body)
        try:
            conversation_id = int(body["actions"][0]["value"])
        except ValueError:
            message = NOT_OURS
        else:
            try:
                await self._services.lookup.clicked(conversation_id, channel, clicked_ts(body))
                message = await run(conversation_id, user)
            except Refusal as exc:
                message = exc.sentence
        await tell(self._services.slack, channel, user, message)
