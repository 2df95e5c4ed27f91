"""Conversation references typed in slash commands: `#N`, `N` or a Slack message link.

Slack does not run custom commands inside threads, so commands name the
conversation instead. A link is whatever "Copy link" gives for the root or any
message in the thread: `https://<workspace>.slack.com/archives/<channel>/p<ts
without the dot>[?thread_ts=<ts>&cid=<channel>]`. With "escape channels, users
and links" on, Slack sends it wrapped as `<https://...>` or `<https://...|label>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs

from bot.services.refusal import Refusal
from storage.models import Conversation
from storage.repo import Repository

_NUMBER = re.compile(r"#?(\d{1,9})")  # SQL INTEGER ids
_LINK = re.compile(
    r"https://[A-Za-z0-9.-]+\.slack\.com/archives/([A-Z0-9]+)/p(\d{7,})/?(?:\?(\S*))?"
)
_TS = re.compile(r"\d+\.\d+")

USAGE = "Name the conversation as #N (e.g. #42) or paste a link to one of its Slack messages."


@dataclass(frozen=True)
class ConversationRef:
    """Either a conversation number or a Slack message (channel, ts, and its thread's ts)."""

    number: int | None = None
    channel: str | None = None
    ts: str | None = None
    thread_ts: str | None = None


def parse_conversation_ref(token: str) -> ConversationRef | None:
    """`#12`, `12`, or a Slack message link (optionally in `<...>`); None for anything else."""
    text = token.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].split("|", 1)[0]
    if number := _NUMBER.fullmatch(text):
        return ConversationRef(number=int(number.group(1)))
    link = _LINK.fullmatch(text)
    if link is None:
        return None
    channel, digits, query = link.groups()
    ts = f"{digits[:-6]}.{digits[-6:]}"
    thread_ts = parse_qs(query or "").get("thread_ts", [None])[0]
    if thread_ts is not None and not _TS.fullmatch(thread_ts):
        thread_ts = None
    return ConversationRef(channel=channel, ts=ts, thread_ts=thread_ts)


def split_ref(text: str) -> tuple[str, str]:
    """The first word of a command's text and the rest (e.g. `#12 customer is angry`)."""
    parts = text.strip().split(maxsplit=1)
    if not parts:
        return "", ""
    return parts[0], parts[1].strip() if len(parts) > 1 else ""


MAX_ID = 2**31 - 1  # conversation ids are INTEGER columns


class Lookup:
    """Which conversation a command, a button or a shortcut is about; `Refusal` when none.

    Handlers ask this service, never storage.
    """

    def __init__(self, repo: Repository) -> None:
        self._repo = repo

    async def number(self, conversation_id: int) -> Conversation:
        found = await self._find(conversation_id)
        if found is None:
            raise Refusal(f"There is no conversation #{conversation_id}.")
        return found

    async def reference(self, token: str) -> Conversation:
        """The conversation `token` (`#N`, `N` or a message link) names."""
        if not token.strip():
            raise Refusal(f"Which conversation? {USAGE}")
        ref = parse_conversation_ref(token)
        if ref is None:
            raise Refusal(f"`{token}` is not a conversation. {USAGE}")
        if ref.number is not None:
            return await self.number(ref.number)
        assert ref.channel is not None and ref.ts is not None
        found = await self._repo.conversation_by_message(ref.channel, ref.ts)
        if found is None and ref.thread_ts is not None:
            found = await self._repo.conversation_by_message(ref.channel, ref.thread_ts)
        if found is None:
            raise Refusal(
                "That message is not part of a Relaydesk conversation. Link the conversation's "
                "root or a message in its thread, or use #N."
            )
        return found

    async def clicked(self, conversation_id: int, channel: str | None, message_ts: str) -> int:
        """The conversation a button names, checked against the message it was clicked on.

        A button acts only on the conversation of its own message: one of the
        conversation's thread roots, or (a page) a direct message, which carries its
        conversation. `Refusal` when the conversation no longer exists or the button's
        value names another conversation than its message's.
        """
        if await self._find(conversation_id) is None:
            raise Refusal(f"Conversation #{conversation_id} no longer exists.")
        if channel and channel.startswith("D"):
            return conversation_id
        root = await self._repo.conversation_by_thread(channel or "", message_ts)
        if root is None or root.id != conversation_id:
            raise Refusal(
                f"This button does not belong to #{conversation_id}: use the buttons on that "
                "conversation's own root."
            )
        return conversation_id

    async def _find(self, conversation_id: int) -> Conversation | None:
        """None also for a number no id column can hold (PostgreSQL would refuse it)."""
        if not 0 < conversation_id <= MAX_ID:
            return None
        return await self._repo.conversation(conversation_id)

    async def root(self, channel: str, ts: str) -> Conversation:
        """The conversation whose thread has the root `ts` (a button on the root, or in
        its thread, was clicked)."""
        found = await self._repo.conversation_by_thread(channel, ts)
        if found is None:
            raise Refusal("This message is not a Relaydesk conversation.")
        return found

    async def message(self, channel: str, ts: str, thread_ts: str | None) -> Conversation:
        """The conversation of any message of its threads (a message shortcut was used)."""
        found = await self._repo.conversation_by_message(channel, ts)
        if found is None and thread_ts:
            found = await self._repo.conversation_by_thread(channel, thread_ts)
        if found is None:
            raise Refusal(
                "That message is not part of a Relaydesk conversation. Use the shortcut on a "
                "conversation's root or on a message in its thread."
            )
        return found
