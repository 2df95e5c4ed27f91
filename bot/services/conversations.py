"""Claim, resolve and reopen: the buttons on a conversation's root."""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qs

from bot.config import Settings
from bot.services.relay import WAKE_TOPIC
from storage.coordination import Coordinator
from storage.models import utcnow
from storage.repo import ActionResult, Repository

log = logging.getLogger(__name__)


class NotAllowed(Exception):
    """The user is not in ALLOWED_USERS."""


class UnknownConversation(Exception):
    """A `#N` or message link that names no conversation, worded for the user."""


# `#12`, `12`, or a Slack message link
# https://team.slack.com/archives/C0123/p1700000000000100[?thread_ts=1700000000.000100&cid=C0123]
_NUMBER = re.compile(r"^#?(\d+)$")
_LINK = re.compile(
    r"^<?https://[^/\s]+/archives/(?P<channel>[CGD][A-Z0-9]+)/p(?P<ts>\d{16})"
    r"(?:\?(?P<query>[^>|\s]*))?(?:\|[^>]*)?>?$"
)


def parse_reference(text: str) -> int | tuple[str, str]:
    """A conversation number, or (channel, message ts) from a link; ValueError otherwise."""
    text = text.strip()
    number = _NUMBER.match(text)
    if number:
        return int(number.group(1))
    link = _LINK.match(text)
    if not link:
        raise ValueError(text)
    query = parse_qs(link.group("query") or "")
    ts = link.group("ts")
    thread = query.get("thread_ts", [None])[0]
    return link.group("channel"), thread or f"{ts[:10]}.{ts[10:]}"


class Conversations:
    def __init__(self, settings: Settings, repo: Repository, coordinator: Coordinator) -> None:
        self._settings = settings
        self._repo = repo
        self._coordinator = coordinator

    def check_allowed(self, user: str) -> None:
        if self._settings.allowed_users and user not in self._settings.allowed_users:
            raise NotAllowed(
                "Only the people listed in ALLOWED_USERS may reply, hand off, claim or resolve "
                "conversations. Ask an admin to add you."
            )

    async def locate(self, reference: str) -> int:
        """The conversation a `#N` or Slack message link names; `UnknownConversation` if none."""
        try:
            parsed = parse_reference(reference)
        except ValueError:
            raise UnknownConversation(
                f"'{reference}' is neither a conversation number like #12 nor a Slack message "
                'link (use "Copy link" on the conversation\'s root message).'
            ) from None
        if isinstance(parsed, int):
            conversation = await self._repo.conversation(parsed)
            if conversation is None:
                raise UnknownConversation(f"There is no conversation #{parsed}.")
        else:
            conversation = await self._repo.conversation_by_message(*parsed)
            if conversation is None:
                raise UnknownConversation(
                    "That link points to a message that is not part of a Relaydesk "
                    "conversation. Link the conversation's root or a message in its thread."
                )
        assert conversation.id is not None
        return conversation.id

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
