"""Claim, resolve and reopen: the buttons on a conversation's root."""

from __future__ import annotations

import logging

from bot.config import Settings
from bot.services.csat import Csat
from bot.services.refusal import Refusal
from bot.services.relay import WAKE_TOPIC
from storage.coordination import Coordinator
from storage.core import Unchanged
from storage.models import utcnow
from storage.repo import ActionResult, Repository

log = logging.getLogger(__name__)


class Conversations:
    def __init__(
        self,
        settings: Settings,
        repo: Repository,
        coordinator: Coordinator,
        csat: Csat | None = None,
    ) -> None:
        self._settings = settings
        self._repo = repo
        self._coordinator = coordinator
        self._csat = csat

    def check_allowed(self, user: str) -> None:
        if self._settings.allowed_users and user not in self._settings.allowed_users:
            raise Refusal(
                "Only the people listed in ALLOWED_USERS may reply, hand off, claim or resolve "
                "conversations. Ask an admin to add you."
            )

    async def claim(self, conversation_id: int, user: str) -> str:
        self.check_allowed(user)
        result = await self._repo.claim(conversation_id, user)
        if result.unchanged is Unchanged.ALREADY_YOURS:
            raise Refusal("You already own this conversation.")
        if result.unchanged is Unchanged.OWNED:
            raise Refusal(f"<@{result.conversation.owner}> already claimed #{conversation_id}.")
        return await self._done(result, f"You now own #{conversation_id}.")

    async def resolve(self, conversation_id: int, user: str) -> str:
        self.check_allowed(user)
        result = await self._repo.resolve(conversation_id, user, utcnow())
        if result.unchanged is Unchanged.ALREADY_RESOLVED:
            raise Refusal(
                f"#{conversation_id} was already resolved by <@{result.conversation.resolved_by}>."
            )
        if self._csat is not None:
            await self._csat.on_resolved(result.conversation)
        return await self._done(result, f"#{conversation_id} is resolved.")

    async def reopen(self, conversation_id: int, user: str) -> str:
        self.check_allowed(user)
        result = await self._repo.reopen(conversation_id, user)
        if result.unchanged is Unchanged.NOT_RESOLVED:
            raise Refusal(f"#{conversation_id} is already open.")
        return await self._done(result, f"#{conversation_id} is open again.")

    async def resend(self, reply_id: int, conversation_id: int, user: str) -> str:
        """Send again a reply whose first send was cut short (the Resend button, shown in
        the conversation's thread)."""
        self.check_allowed(user)
        reply = await self._repo.resend(reply_id, conversation_id)
        if reply is None:
            raise Refusal("This reply was already resent, or its delivery is settled.")
        log.info("reply %s: resend asked by %s", reply_id, user)
        await self._coordinator.publish(WAKE_TOPIC)
        return "Sending the reply to the customer again."

    async def _done(self, result: ActionResult, sentence: str) -> str:
        assert result.ok, result.unchanged  # every reason an action can change nothing is worded
        log.info("conversation %s: %s", result.conversation.id, sentence)
        await self._coordinator.publish(WAKE_TOPIC)
        return sentence
