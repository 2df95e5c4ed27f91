"""Buttons on mentions found by listening: open as a conversation, or dismiss.

Ack at once; the answer comes as an ephemeral, and the message is re-rendered.
"""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.app import Services
from bot.blocks.listening import DISMISS, OPEN
from bot.services.listening import NOT_A_MENTION
from bot.services.refusal import Refusal
from handlers.answer import ack_only, tell
from handlers.payloads import BlockActions, click_channel, clicked_ts


def register(app: AsyncApp, services: Services) -> None:
    listeners = ListenListeners(services)
    app.action(OPEN)(ack=ack_only, lazy=[listeners.open])
    app.action(DISMISS)(ack=ack_only, lazy=[listeners.dismiss])


class ListenListeners:
    def __init__(self, services: Services) -> None:
        self._services = services

    async def open(self, body: BlockActions) -> None:
        await self._run(body, "open")

    async def dismiss(self, body: BlockActions) -> None:
        await self._run(body, "dismiss")

    async def _run(self, body: BlockActions, verb: str) -> None:
        services = self._services
        user = body["user"]["id"]
        channel = click_channel(body)
        try:
            mention_id = int(body["actions"][0]["value"])
            act = getattr(services.listening, verb)
            message = await act(mention_id, user, channel or "", clicked_ts(body))
        except Refusal as exc:
            message = exc.sentence
        except ValueError:
            message = NOT_A_MENTION
        await tell(services.slack, channel, user, message)
