"""Claim, resolve and reopen: the buttons on a conversation's root."""

from __future__ import annotations

import logging

from bot.config import Settings
from bot.services.refusal import Refusal
from bot.services.relay import WAKE_TOPIC
from storage.coordination import Coordinator
from storage.models import utcnow
from storage.repo import ActionResult, Repository

log = logging.getLogger(__name__)


class Conversations:
    def __init__(self, settings: Settings, repo: Repository, coordinator: Coordinator) -> None:
        self._settings = settings
        self._repo = repo
        self._coordinator = coordinator

    def check_allowed(self, user: str) -> None:
        if self._settings.allowed_users and user not in self._settings.allowed_users:
            raise Refusal(
                "Only the people listed in ALLOWED_USERS may reply, hand off, claim or resolve "
                "conversations. Ask an admin to add you."
            )

    async def claim(self, conversation_id: int, user: str) -> str:
        self.check_allowed(user)
        result = await self._repo.claim(conversation_id, user)
        return await self._settle(
            result,
            {
                "already_yours": "You already own this conversation.",
                "owned": f"<@{result.conversation.owner}> already claimed #{conversation_id}.",
            },
            f"You now own #{conversation_id}.",
        )

    async def resolve(self, conversation_id: int, user: str) -> str:
        self.check_allowed(user)
        result = await self._repo.resolve(conversation_id, user, utcnow())
        return await self._settle(
            result,
            {
                "already_resolved": f"#{conversation_id} was already resolved by "
                f"<@{result.conversation.resolved_by}>.",
            },
            f"#{conversation_id} is resolved.",
        )

    async def reopen(self, conversation_id: int, user: str) -> str:
        self.check_allowed(user)
        result = await self._repo.reopen(conversation_id, user)
        return await self._settle(
            result,
            {
                "not_resolved": f"#{conversation_id} is already open.",
            },
            f"#{conversation_id} is open again.",
        )

    async def _settle(self, result: ActionResult, reasons: dict[str, str], done: str) -> str:
        if not result.ok:
            return reasons.get(result.reason or "", "Nothing changed.")
        log.info("conversation %s: %s", result.conversation.id, done)
        await self._coordinator.publish(WAKE_TOPIC)
        return done
