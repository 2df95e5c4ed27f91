"""Saved replies: the root's button and the message shortcut open the modal, its search
is answered as the person types, its submission sends; `/replies` manages them."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.app import Services
from bot.blocks import saved_replies as blocks
from bot.networks.base import PayloadError
from bot.networks.payload import load_object
from bot.services.refs import MAX_ID
from bot.services.refusal import Refusal
from bot.slack import SlackError
from handlers.answer import NOT_OURS, ack_only, tell
from handlers.payloads import (
    BlockActions,
    BlockSuggestion,
    MessageShortcut,
    SlashCommand,
    ViewSubmission,
    click_channel,
    clicked_ts,
)
from storage.models import Conversation

log = logging.getLogger(__name__)

ACTION = "relaydesk.saved_reply"  # the root's button and the message shortcut


def register(app: AsyncApp, services: Services) -> None:
    listeners = SavedReplyListeners(services)
    app.action(ACTION)(ack=ack_only, lazy=[listeners.button])
    app.shortcut(ACTION)(ack=ack_only, lazy=[listeners.shortcut])
    app.options(blocks.PICK)(listeners.search)
    app.view(blocks.MODAL)(ack=listeners.check, lazy=[listeners.send])
    app.action(blocks.CANCEL)(ack=ack_only, lazy=[listeners.cancel])
    app.command("/replies")(listeners.command)


class SavedReplyListeners:
    def __init__(self, services: Services) -> None:
        self._services = services

    async def button(self, body: BlockActions) -> None:
        """The root's *Saved reply* button: value = the conversation; posts go in its thread."""
        services = self._services
        user, channel, ts = body["user"]["id"], click_channel(body), clicked_ts(body)
        try:
            conversation_id = await services.lookup.clicked(
                int(body["actions"][0]["value"]), channel, ts
            )
            conversation = await services.lookup.number(conversation_id)
        except Refusal as exc:
            await tell(services.slack, channel, user, exc.sentence)
            return
        except ValueError:
            await tell(services.slack, channel, user, NOT_OURS)
            return
        await self._open(conversation, channel or "", ts, user, body.get("trigger_id", ""))

    async def shortcut(self, body: MessageShortcut) -> None:
        """The message shortcut, on the root or any message of a conversation's thread."""
        services = self._services
        user, channel = body["user"]["id"], body["channel"]["id"]
        thread_ts = body.get("message", {}).get("thread_ts")
        try:
            conversation = await services.lookup.message(channel, body["message_ts"], thread_ts)
        except Refusal as exc:
            await tell(services.slack, channel, user, exc.sentence)
            return
        thread = thread_ts or body["message_ts"]
        await self._open(conversation, channel, thread, user, body["trigger_id"])

    async def _open(
        self, conversation: Conversation, channel: str, thread_ts: str, user: str, trigger: str
    ) -> None:
        services = self._services
        if not await services.saved_replies.usable(conversation):
            await tell(
                services.slack,
                channel,
                user,
                "There are no saved replies for this conversation yet. Add one with "
                "`/replies add <name> <text>`, e.g. `/replies add greeting Hello {customer_name}!`",
            )
            return
        view = blocks.picker(conversation, channel, thread_ts)
        try:
            await services.slack.call("views.open", trigger_id=trigger, view=view)
        except SlackError as exc:
            log.warning("could not open the saved replies for %s: %s", user, exc.code)
            await tell(
                services.slack, channel, user, f"Could not open the saved replies ({exc.code})."
            )

    async def search(self, ack: AsyncAck, body: BlockSuggestion) -> None:
        """Options as the person types: the conversation's saved replies that match."""
        meta = _metadata(body.get("view", {}).get("private_metadata"))
        found = (
            await self._services.saved_replies.search(meta[0], body.get("value") or "")
            if meta
            else []
        )
        await ack(options=blocks.options(found))

    async def check(self, ack: AsyncAck, body: ViewSubmission) -> None:
        """Refuse on the form what can be refused at once; the sending runs after the ack."""
        chosen = _chosen(body)
        if chosen is None:
            await ack(response_action="errors", errors={blocks.FIELD: "This form is not ours."})
            return
        try:
            await self._services.saved_replies.check_send(
                chosen.conversation, chosen.saved, body["user"]["id"]
            )
        except Refusal as exc:
            await ack(response_action="errors", errors={blocks.FIELD: exc.sentence})
            return
        await ack()

    async def send(self, body: ViewSubmission) -> None:
        services = self._services
        chosen = _chosen(body)
        if chosen is None:
            return  # refused on the form already
        user = body["user"]["id"]
        try:
            sent = await services.saved_replies.send(
                chosen.conversation, chosen.saved, user, chosen.channel, chosen.thread_ts
            )
        except Refusal as exc:
            await tell(services.slack, chosen.channel, user, exc.sentence)
            return
        if not sent.held:
            await tell(services.slack, chosen.channel, user, sent.sentence)
            return
        try:
            await services.slack.ephemeral(
                chosen.channel,
                user,
                sent.sentence,
                blocks=blocks.held(sent.sentence, sent.reply_id),
                thread_ts=chosen.thread_ts,
            )
        except SlackError as exc:
            log.warning("could not offer %s to cancel a saved reply: %s", user, exc.code)

    async def cancel(self, body: BlockActions) -> None:
        """The sender's Cancel, while the saved reply waits UNDO_SECONDS."""
        services = self._services
        user, channel = body["user"]["id"], click_channel(body)
        try:
            text = await services.saved_replies.cancel(int(body["actions"][0]["value"]), user)
        except Refusal as exc:
            text = exc.sentence
        except ValueError:
            text = NOT_OURS
        await tell(services.slack, channel, user, text)

    async def command(self, ack: AsyncAck, command: SlashCommand) -> None:
        """`/replies add|edit|remove|list ...`: the answer is the ephemeral response."""
        try:
            text = await self._services.saved_replies.manage(
                command["user_id"], command.get("text") or ""
            )
        except Refusal as exc:
            text = exc.sentence
        await ack(text)


def _metadata(raw: str | None) -> tuple[int, str, str] | None:
    """(conversation, channel, thread_ts) of a modal we opened; None for anything else."""
    try:
        meta = load_object(raw or "{}")
        conversation_id = int(meta["conversation"])
        channel, thread_ts = meta["channel"], meta["thread_ts"]
    except (PayloadError, KeyError, TypeError, ValueError):
        return None
    if not (0 < conversation_id <= MAX_ID and isinstance(channel, str) and channel):
        return None
    if not (isinstance(thread_ts, str) and thread_ts):
        return None
    return conversation_id, channel, thread_ts


@dataclass(frozen=True, slots=True)
class Chosen:
    conversation: int
    channel: str
    thread_ts: str
    saved: int


def _chosen(body: ViewSubmission) -> Chosen | None:
    """The submitted modal's conversation, thread and saved reply; None if not ours."""
    view = body["view"]
    meta = _metadata(view.get("private_metadata"))
    field = view["state"]["values"].get(blocks.FIELD, {}).get(blocks.PICK, {})
    selected = field.get("selected_option")
    try:
        saved_id = int(selected["value"]) if selected else 0
    except (TypeError, ValueError):
        return None
    if meta is None or not 0 < saved_id <= MAX_ID:
        return None
    return Chosen(meta[0], meta[1], meta[2], saved_id)
