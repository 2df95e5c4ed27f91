"""Handoff from the root's buttons, the message shortcut (a modal), and `/handoff`."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.app import Services
from bot.blocks.conversation import Block
from bot.blocks.handoff import MODAL, handoff_modal
from bot.services.refusal import Refusal
from handlers.answer import ack_only, tell
from handlers.forms import NOT_OUR_FORM, form_metadata, open_shortcut_form
from handlers.payloads import BlockActions, MessageShortcut, SlashCommand, ViewSubmission


def register(app: AsyncApp, services: Services) -> None:
    listeners = HandoffListeners(services)
    app.action("relaydesk.handoff")(ack=ack_only, lazy=[listeners.button])
    app.shortcut("relaydesk.handoff")(ack=ack_only, lazy=[listeners.shortcut])
    app.view(MODAL)(listeners.submit)
    app.command("/handoff")(listeners.command)


class HandoffListeners:
    def __init__(self, services: Services) -> None:
        self._services = services

    async def button(self, body: BlockActions) -> None:
        """`relaydesk.handoff` button: value = team; the conversation is the root clicked."""
        services = self._services
        user = body["user"]["id"]
        channel = body["container"].get("channel_id")
        team = body["actions"][0]["value"]
        try:
            conversation = await services.lookup.root(
                channel or "", body["container"].get("message_ts", "")
            )
            text = await services.handoffs.hand_off(conversation.id or 0, team, user)
        except Refusal as exc:
            text = exc.sentence
        await tell(services.slack, channel, user, text)

    async def shortcut(self, body: MessageShortcut) -> None:
        """Message shortcut: find the message's conversation and open the handoff modal."""
        services = self._services

        async def form(channel: str, ts: str, thread_ts: str | None) -> Block:
            conversation = await services.lookup.message(channel, ts, thread_ts)
            return handoff_modal(conversation, channel, services.settings.teams)

        await open_shortcut_form(services.slack, body, "the handoff form", form)

    async def submit(self, ack: AsyncAck, body: ViewSubmission) -> None:
        """Modal submitted: hand off, or show the reason on the team field."""
        services = self._services
        user = body["user"]["id"]
        view = body["view"]
        try:
            conversation_id, meta = form_metadata(view.get("private_metadata"))
        except ValueError:
            await ack(response_action="errors", errors={"team": NOT_OUR_FORM})
            return
        values = view["state"]["values"]
        selected = values["team"]["team"].get("selected_option")
        team = selected.get("value", "") if selected else ""
        note = values.get("note", {}).get("note", {}).get("value")
        try:
            text = await services.handoffs.hand_off(conversation_id, team, user, note)
        except Refusal as exc:
            await ack(response_action="errors", errors={"team": exc.sentence})
            return
        await ack()
        channel = meta.get("channel")
        await tell(services.slack, channel if isinstance(channel, str) else None, user, text)

    async def command(self, ack: AsyncAck, command: SlashCommand) -> None:
        """`/handoff <team> <#N|link> [note]`: the answer is the ephemeral command response."""
        services = self._services
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
            conversation = await services.lookup.reference(reference)
            text = await services.handoffs.hand_off(
                conversation.id or 0, team, command["user_id"], note
            )
        except Refusal as exc:
            text = exc.sentence
        await ack(text)
