"""Buttons: claim, resolve, reopen on a root; resend on a reply in doubt.

Ack at once; the answer comes as an ephemeral.
"""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.app import Services
from bot.services.refusal import Refusal
from handlers.answer import NOT_OURS, ack_only, tell
from handlers.payloads import BlockActions, click_channel, clicked_thread_ts, clicked_ts


def register(app: AsyncApp, services: Services) -> None:
    listeners = ActionListeners(services)
    app.action("relaydesk.claim")(ack=ack_only, lazy=[listeners.claim])
    app.action("relaydesk.resolve")(ack=ack_only, lazy=[listeners.resolve])
    app.action("relaydesk.reopen")(ack=ack_only, lazy=[listeners.reopen])
    app.action("relaydesk.resend")(ack=ack_only, lazy=[listeners.resend])


class ActionListeners:
    def __init__(self, services: Services) -> None:
        self._services = services

    async def claim(self, body: BlockActions) -> None:
        await self._run(body, "claim")

    async def resolve(self, body: BlockActions) -> None:
        await self._run(body, "resolve")

    async def reopen(self, body: BlockActions) -> None:
        await self._run(body, "reopen")

    async def resend(self, body: BlockActions) -> None:
        """The button's value is a reply; it acts only in the thread it was posted in."""
        services = self._services
        user = body["user"]["id"]
        channel = click_channel(body)
        try:
            reply_id = int(body["actions"][0]["value"])
            conversation = await services.lookup.root(channel or "", clicked_thread_ts(body))
            message = await services.conversations.resend(reply_id, conversation.id or 0, user)
        except Refusal as exc:
            message = exc.sentence
        except ValueError:
            message = NOT_OURS
        await tell(services.slack, channel, user, message)

    async def _run(self, body: BlockActions, verb: str) -> None:
        services = self._services
        user = body["user"]["id"]
        channel = click_channel(body)
        try:
            conversation_id = await services.lookup.clicked(
                int(body["actions"][0]["value"]), channel, clicked_ts(body)
            )
            if verb == "claim" and channel and channel.startswith("D"):
                message = await self._claim_page(conversation_id, user)
            else:
                message = await getattr(services.conversations, verb)(conversation_id, user)
        except Refusal as exc:
            message = exc.sentence
        except ValueError:
            message = NOT_OURS
        await tell(services.slack, channel, user, message)

    async def _claim_page(self, conversation_id: int, user: str) -> str:
        """Claim on a page in a DM: the person has answered the page, so escalating stops,
        even when the conversation was already theirs or a colleague's."""
        conversations = self._services.conversations
        conversations.check_allowed(user)
        try:
            message = await conversations.claim(conversation_id, user)
        except Refusal as exc:
            message = exc.sentence
        await self._services.escalations.claimed(conversation_id, user)
        return message
