"""A team reply edited or deleted in Slack: the customer's copy follows where it can.

Before it is sent (the UNDO_SECONDS window, or a retry still waiting) an edit changes
what will be sent and a deletion cancels it. Once sent, an edit updates the customer's
copy where the network has an API for it (Telegram's text or caption, a Facebook Page
comment), a deletion deletes it (Telegram within 48 hours, Page and Instagram comments,
X posts and DMs); elsewhere the thread says the customer kept the original. An edit is
never sent as a new message, and only the text is edited: the files stay as sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from bot.markup import InternalNote, OverLimit
from bot.networks.base import DeliveryError, Network, OutboundReply
from bot.services.outbound import (
    SharedFile,
    outbound_messages,
    prepare_for,
    shared_files,
    with_caption,
)
from bot.services.replies import message_json, slack_message
from bot.slack import Slack, SlackError
from storage.core import NetworkStatus, ReplyKind, ReplyState
from storage.models import Conversation, TeamReply
from storage.repo import Repository

log = logging.getLogger(__name__)

EDITED_REACTION = "pencil2"


class Corrections:
    def __init__(
        self,
        repo: Repository,
        slack: Slack,
        networks: Mapping[str, Network],
    ) -> None:
        self._repo = repo
        self._slack = slack
        self._networks = networks

    async def on_change(self, event: Mapping[str, Any]) -> None:
        """A `message_changed` or `message_deleted` event in a channel the bot is in.

        Idempotent, so Slack's retries need no de-duplication mark (which, set before the
        work, would lose the work when it fails): an edit compares with the stored text,
        which changes only once the customer's copy is edited; a deletion is recorded
        (`NetworkStatus.DELETED`) once the customer's copy is gone."""
        channel = event.get("channel")
        new = _object(event.get("message"))
        old = _object(event.get("previous_message"))
        ts = event.get("deleted_ts") or new.get("ts") or old.get("ts")
        if not (isinstance(channel, str) and isinstance(ts, str)):
            return
        reply = await self._repo.slack_reply(channel, ts)
        if reply is None or reply.kind != ReplyKind.REPLY or reply.id is None:
            return  # not a team reply (a note, a customer message posted by the bot...)
        if event.get("subtype") == "message_deleted":
            await self._deleted(reply)
        elif str(new.get("text") or "") != reply.text:  # not an unfurl or other re-render
            await self._edited(reply, new)

    async def _deleted(self, reply: TeamReply) -> None:
        assert reply.id is not None
        if reply.state == ReplyState.PENDING and await self._repo.cancel_pending_reply(reply.id):
            log.info("reply %s deleted before it was sent: cancelled", reply.id)
            return
        if reply.state != ReplyState.SENT or reply.network_status == NetworkStatus.DELETED:
            return
        try:
            network, conversation = await self._network_of(reply)
            for message_id in _sent_ids(reply):
                await network.delete(
                    conversation.reply_context, message_id, reply.delivered_at or reply.sent_at
                )
        except DeliveryError as exc:
            await self._say(
                reply, f":warning: Deleted in Slack only, the customer still has it: {exc.message}."
            )
            return
        await self._repo.set_network_status(reply.id, NetworkStatus.DELETED)
        await self._say(reply, ":wastebasket: The customer's copy was deleted too.")

    async def _edited(self, reply: TeamReply, message: Mapping[str, Any]) -> None:
        assert reply.id is not None
        text, stored = str(message.get("text") or ""), message_json(message)
        if reply.state == ReplyState.PENDING and await self._repo.rewrite_reply(
            reply.id, text, stored, ReplyState.PENDING
        ):
            log.info("reply %s edited before it was sent", reply.id)
            return
        if reply.state != ReplyState.SENT:
            return
        try:
            network, conversation = await self._network_of(reply)
            author = await self._slack.user_name(reply.user_id)
            original = slack_message(reply)
            files = shared_files(original)  # an edit changes the text, never the files
            sent = await self._texts(network, conversation, reply, original, files, author)
            edits = await self._texts(network, conversation, reply, message, files, author)
            ids = _sent_ids(reply)[: len(sent)]  # the text went first, then the files
            if len(edits) != len(ids) or [e.caption for e in edits] != [s.caption for s in sent]:
                raise DeliveryError("the edit does not fit the messages sent", temporary=False)
            for outbound, message_id in zip(edits, ids, strict=True):
                await network.edit(outbound, message_id)
        except DeliveryError as exc:
            await self._say(
                reply,
                f":warning: Edited in Slack only, the customer kept the original: {exc.message}.",
            )
            return
        await self._repo.rewrite_reply(reply.id, text, stored, ReplyState.SENT)
        await self._react(reply, EDITED_REACTION)

    async def _texts(
        self,
        network: Network,
        conversation: Conversation,
        reply: TeamReply,
        message: Mapping[str, Any],
        files: list[SharedFile],
        author: str,
    ) -> list[OutboundReply]:
        """The messages carrying a version of the reply's text, as delivery sends them:
        its messages, or the caption of its first file."""
        prepared = await prepare_for(network, conversation, message, self._slack.user_name)
        if isinstance(prepared, OverLimit):
            raise DeliveryError(prepared.sentence, temporary=False)
        if isinstance(prepared, InternalNote):
            raise DeliveryError("the edit does not fit the messages sent", temporary=False)
        messages = outbound_messages(prepared, conversation, reply, author)
        caption = with_caption(network, conversation.reply_context, messages, files)
        return messages if caption is None else [caption]

    async def _network_of(self, reply: TeamReply) -> tuple[Network, Any]:
        conversation = await self._repo.conversation(reply.conversation_id)
        assert conversation is not None
        network = self._networks.get(conversation.network)
        if network is None:
            raise DeliveryError(
                f"the {conversation.network} network is not configured here", temporary=False
            )
        return network, conversation

    async def _say(self, reply: TeamReply, text: str) -> None:
        if reply.slack_channel and reply.slack_thread_ts:
            try:
                await self._slack.post(reply.slack_channel, text, thread_ts=reply.slack_thread_ts)
            except SlackError as exc:
                log.warning("could not tell the thread about reply %s: %s", reply.id, exc.code)

    async def _react(self, reply: TeamReply, name: str) -> None:
        if reply.slack_channel and reply.slack_ts:
            try:
                await self._slack.react(reply.slack_channel, reply.slack_ts, name)
            except SlackError as exc:
                log.warning("reaction %s on reply %s failed: %s", name, reply.id, exc.code)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _sent_ids(reply: TeamReply) -> list[str]:
    """The network ids of the messages a sent reply went as."""
    ids = [i for i in json.loads(reply.sent_ids or "[]") if i]
    return ids or ([reply.external_id] if reply.external_id else [])
