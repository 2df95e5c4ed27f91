"""Saved replies: texts the team sends often, managed with `/replies`, sent from a modal.

A saved reply is sent as the reply of the person who picked it: the bot posts it in the
conversation's thread under that person's name and avatar, and stores it as their
`TeamReply` through `Replies.accept`, the path of every thread reply. So it counts as
theirs in every figure and goes through every outbound rule (markup conversion, the
network's limits and splitting, UNDO_SECONDS, delivery retries).

Syntax of `/replies` (a name is letters, digits, `.`, `_` or `-`; case does not matter):
    /replies list [network]
    /replies add <name> [network=<network>] <text>
    /replies edit <name> [network=<network>] <text>
    /replies remove <name> [network=<network>]
Without `network=` the text is for every network; with it, a variant that conversations
of that network (or Meta sub-channel: `messenger`, `instagram`) get instead.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from bot.blocks import saved_replies as blocks
from bot.blocks.conversation import escape
from bot.config import Settings
from bot.networks.registry import labels as network_labels
from bot.services.refusal import Refusal
from bot.services.replies import Replies
from bot.slack import Slack, SlackError
from storage.core import ReplyKind, ReplyState
from storage.db import DatabaseUnavailable
from storage.models import Conversation, SavedReply
from storage.repo import Repository
from storage.saved_replies import ALL_NETWORKS, SavedReplyStore

log = logging.getLogger(__name__)

PLACEHOLDERS = ("customer_name", "agent_name", "conversation")
MAX_TEXT = 3_000  # what one Slack section shows in full
MAX_OPTIONS = 100  # Slack's limit for an external select's answer
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)\}")
_NETWORK = re.compile(r"network=(\S*)", re.IGNORECASE)
VERBS = ("add", "edit", "remove", "list")
USAGE = (
    "Usage: `/replies list [network]`, `/replies add <name> [network=<network>] <text>`, "
    "`/replies edit <name> [network=<network>] <text>`, "
    "`/replies remove <name> [network=<network>]`. Example: "
    "`/replies add greeting network=telegram Hello {customer_name}!` "
    "Placeholders: {customer_name}, {agent_name} (who sends it), {conversation} (#N)."
)


@dataclass(frozen=True, slots=True)
class Command:
    """One `/replies` line, parsed: `network` is '' for every network."""

    verb: str
    name: str = ""
    network: str = ALL_NETWORKS
    text: str = ""


def parse_command(line: str, networks: Collection[str]) -> Command:
    """Parse `/replies ...`; `Refusal` with the fix for any mistake. Words are split on
    any whitespace (a text may start on a new line); the text keeps its own."""
    verb, rest = _word(line)
    verb = verb.lower()
    if verb not in VERBS:
        raise Refusal(USAGE if not verb else f"`{verb}` is not a `/replies` action. {USAGE}")
    if verb == "list":
        network = rest.lower().removeprefix("network=")
        return Command("list", network=_network(network, networks) if network else ALL_NETWORKS)
    name, rest = _word(rest)
    if not name:
        raise Refusal(f"Which saved reply? {USAGE}")
    name = name.lower()
    if not _NAME.fullmatch(name):
        raise Refusal(
            f"`{name[:70]}` is not a usable name: use up to 64 letters, digits, `.`, `_` or "
            "`-`, e.g. `greeting` or `refund-policy`."
        )
    network = ALL_NETWORKS
    first, after = _word(rest)
    if found := _NETWORK.fullmatch(first):
        network, rest = _network(found.group(1).lower(), networks), after
    if verb == "remove":
        if rest:
            raise Refusal(f"`/replies remove` takes a name and an optional network only. {USAGE}")
        return Command(verb, name, network)
    _check_text(rest, verb)
    return Command(verb, name, network, rest)


def _word(text: str) -> tuple[str, str]:
    """The first word of `text` and the rest, both stripped."""
    parts = text.strip().split(maxsplit=1)
    return (parts[0], parts[1].strip()) if len(parts) == 2 else ((parts or [""])[0], "")


def _network(name: str, networks: Collection[str]) -> str:
    if name not in networks:
        raise Refusal(
            f"`{name[:40] or '(empty)'}` is not a network. Use one of: "
            f"{', '.join(sorted(networks))}."
        )
    return name


def _check_text(text: str, verb: str) -> None:
    if not text:
        raise Refusal(f"`/replies {verb}` needs the text after the name. {USAGE}")
    if len(text) > MAX_TEXT:
        raise Refusal(
            f"That text is {len(text):,} characters long; a saved reply holds at most {MAX_TEXT:,}."
        )
    unknown = sorted({p for p in _PLACEHOLDER.findall(text) if p not in PLACEHOLDERS})
    if unknown:
        names = ", ".join(f"{{{p}}}" for p in unknown)
        raise Refusal(
            f"Unknown placeholder {names}: use {{customer_name}}, {{agent_name}} or "
            "{conversation}."
        )


def fill(template: str, values: Mapping[str, str]) -> str:
    """The template with each known `{placeholder}` replaced; anything else kept as is.

    One pass over the template: a value that itself looks like `{agent_name}` (a
    customer's name can be anything) is never filled in again."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def placeholder_values(conversation: Conversation, agent_name: str) -> dict[str, str]:
    """The values as Slack text: names escaped (they can never mention or link)."""
    return {
        "customer_name": escape(conversation.customer_name),
        "agent_name": escape(agent_name),
        "conversation": f"#{conversation.id}",
    }


def network_keys(conversation: Conversation) -> list[str]:
    """The variants that fit a conversation, most specific first: its Meta sub-channel
    (`instagram`), then its network."""
    channel = (conversation.reply_context or {}).get("channel")
    keys = [channel] if isinstance(channel, str) and channel in network_labels() else []
    return [*keys, conversation.network] if conversation.network not in keys else keys


def matches(saved: SavedReply, query: str) -> bool:
    """Search by name or text, case-insensitive; every word of the query must appear."""
    haystack = f"{saved.name} {html.unescape(saved.text)}".lower()
    return all(word in haystack for word in query.lower().split())


@dataclass(frozen=True, slots=True)
class Sent:
    """What the sender is told; `held`: it waits UNDO_SECONDS and can be cancelled."""

    sentence: str
    reply_id: int
    held: bool = False


class SavedReplies:
    def __init__(
        self,
        settings: Settings,
        store: SavedReplyStore,
        repo: Repository,
        slack: Slack,
        replies: Replies,
        clock: Callable[[], datetime],
    ) -> None:
        self._settings = settings
        self._store = store
        self._repo = repo
        self._slack = slack
        self._replies = replies
        self._clock = clock

    # -- /replies ---------------------------------------------------------------------
    async def manage(self, user: str, line: str) -> str:
        """Carry out one `/replies` line; the answer shown to `user`."""
        command = parse_command(line, network_labels())
        if command.verb == "list":
            return blocks.listing(await self._store.all(), command.network)
        self._check_allowed(user, "change saved replies")
        now, label = self._clock(), blocks.label(command.name, command.network)
        if command.verb == "add":
            if not await self._store.add(command.name, command.network, command.text, user, now):
                raise Refusal(
                    f"{label} exists already: change it with `/replies edit {command.name}"
                    f"{_suffix(command.network)} <text>`."
                )
            return f"Added {label}. Send it with a conversation's *Saved reply* button."
        if command.verb == "edit":
            if not await self._store.edit(command.name, command.network, command.text, user, now):
                raise Refusal(f"There is no {label}: add it with `/replies add`.")
            return f"Changed {label}."
        if not await self._store.remove(command.name, command.network):
            raise Refusal(f"There is no {label}. `/replies list` shows them all.")
        return f"Removed {label}."

    # -- the modal --------------------------------------------------------------------
    async def usable(self, conversation: Conversation) -> list[SavedReply]:
        """The saved replies a conversation can be sent (one per name)."""
        return await self._store.usable(network_keys(conversation))

    async def search(self, conversation_id: int, query: str) -> list[SavedReply]:
        """What the modal's search offers for `query` (at most Slack's 100)."""
        conversation = await self._repo.conversation(conversation_id)
        if conversation is None:
            return []
        found = [s for s in await self.usable(conversation) if matches(s, query)]
        return found[:MAX_OPTIONS]

    async def check_send(self, conversation_id: int, saved_id: int, user: str) -> None:
        """What can be refused before the modal closes (its error shows on the field)."""
        self._check_allowed(user, "answer customers")
        await self._chosen(conversation_id, saved_id)

    async def send(
        self, conversation_id: int, saved_id: int, user: str, channel: str, thread_ts: str
    ) -> Sent:
        """Post the saved reply, filled in, in the thread as `user`'s reply and send it
        to the customer. The post comes first (a reply's time is its Slack ts); if it
        cannot be stored, the post is taken back and nothing is sent."""
        self._check_allowed(user, "answer customers")
        conversation, saved = await self._chosen(conversation_id, saved_id)
        author = await self._slack.person(user)
        text = fill(saved.text, placeholder_values(conversation, author[0]))
        try:
            ts = await self._slack.post(
                channel,
                text,
                blocks=blocks.posted(text, saved.name, user),
                thread_ts=thread_ts,
                author=author,
            )
        except SlackError as exc:
            raise Refusal(
                f"The saved reply could not be posted in the thread ({exc.code})."
            ) from exc
        try:
            stored = await self._replies.accept(
                channel=channel,
                thread_ts=thread_ts,
                ts=ts,
                user=user,
                text=text,
                kind=ReplyKind.REPLY,
                state=ReplyState.PENDING,
                message=json.dumps({"text": text}),
            )
        except DatabaseUnavailable:
            stored = None
        if stored is None:
            await self._withdraw(channel, ts)
            raise Refusal("The saved reply could not be stored, so it was not sent. Try again.")
        log.info("conversation %s: saved reply %s sent by %s", conversation_id, saved.id, user)
        reply_id, undo = stored[1].id or 0, self._settings.undo_seconds
        if undo:
            return Sent(
                f"Saved reply *{saved.name}* goes to the customer as your reply in "
                f"{undo:g} s. Changed your mind? Cancel it before then.",
                reply_id,
                held=True,
            )
        return Sent(f"Sent saved reply *{saved.name}* to the customer as your reply.", reply_id)

    async def cancel(self, reply_id: int, user: str) -> str:
        """Take back a saved reply during UNDO_SECONDS (the sender's Cancel button): a
        person cannot delete the bot's post, which is how other replies are taken back."""
        reply = await self._repo.reply(reply_id)
        if reply is None or reply.kind != ReplyKind.REPLY:
            raise Refusal("This saved reply was cancelled already.")
        if reply.user_id != user:
            raise Refusal(f"Only <@{reply.user_id}>, who sent it, can cancel it.")
        if (
            reply.state != ReplyState.PENDING
            or reply.attempt_at is not None
            or not await self._repo.cancel_pending_reply(reply_id)
        ):
            raise Refusal("Too late to cancel: it has gone to the customer.")
        log.info("reply %s: saved reply cancelled by %s", reply_id, user)
        if reply.slack_channel and reply.slack_ts:
            await self._withdraw(reply.slack_channel, reply.slack_ts)
        return "Cancelled: the customer does not get it, and it is gone from the thread."

    async def _chosen(self, conversation_id: int, saved_id: int) -> tuple[Conversation, SavedReply]:
        conversation = await self._repo.conversation(conversation_id)
        if conversation is None:
            raise Refusal(f"Conversation #{conversation_id} no longer exists.")
        saved = await self._store.get(saved_id)
        if saved is None or saved.network not in [*network_keys(conversation), ALL_NETWORKS]:
            raise Refusal("That saved reply was removed or changed meanwhile: pick another.")
        return conversation, saved

    async def _withdraw(self, channel: str, ts: str) -> None:
        """Delete the bot's post of a saved reply that is not (or no longer) to be sent."""
        try:
            await self._slack.call("chat.delete", channel=channel, ts=ts)
        except SlackError as exc:
            log.warning("could not take back an unstored saved reply %s: %s", ts, exc.code)

    def _check_allowed(self, user: str, what: str) -> None:
        if self._settings.allowed_users and user not in self._settings.allowed_users:
            raise Refusal(
                f"Only the people listed in ALLOWED_USERS may {what}. Ask an admin to add you."
            )


def _suffix(network: str) -> str:
    return f" network={network}" if network else ""
