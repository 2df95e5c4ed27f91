"""Carry the customer's non-message events into Slack (run by the dispatcher).

Each action was stored before the webhook's 200 (`storage.actions`) and runs under
its conversation's lease, in the order the customer made them. A step already
carried out is recorded (the reaction shown, the note posted), so a retry after a
Slack failure does not do it twice. An action whose target is not known yet (its
message is still on its way to Slack, or a reply's network id not back yet) waits
up to `TARGET_PATIENCE`, then is given up with a log line.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from bot.blocks import conversation as blocks
from bot.slack import Slack, SlackPermanent, SlackTemporary, SlackThreadGone
from storage.actions import ActionRepository
from storage.core import ActionKind, ActionState, Mark, later_mark
from storage.models import Conversation, CustomerAction, CustomerMessage
from storage.repo import backoff

log = logging.getLogger(__name__)

TARGET_PATIENCE = timedelta(minutes=10)
SLACK_PATIENCE = timedelta(hours=24)


class NotYet(Exception):
    """The action's target (or the conversation's thread) is not in Slack yet."""


class CustomerActions:
    def __init__(
        self,
        *,
        repo: ActionRepository,
        slack: Slack,
        clock: Callable[[], datetime],
        scheduled: Callable[[], Awaitable[None]],
    ) -> None:
        self._repo = repo
        self._slack = slack
        self._clock = clock
        self._scheduled = scheduled

    async def run(self, conversation: Conversation, actions: list[CustomerAction]) -> None:
        """Carry out due actions in order; a Slack failure puts off this one and the rest."""
        for index, action in enumerate(actions):
            try:
                await self._one(conversation, action)
            except NotYet:
                await self._wait(action, TARGET_PATIENCE, "its target is not in Slack")
            except SlackThreadGone as exc:
                log.info("action %s: its Slack message is gone (%s)", action.id, exc.code)
                await self._repo.finish(_id(action), ActionState.DROPPED)
            except SlackPermanent as exc:
                log.warning("action %s: Slack refused it (%s); given up", action.id, exc.code)
                await self._repo.finish(_id(action), ActionState.DROPPED)
            except SlackTemporary as exc:
                log.info("action %s: Slack %s; will retry", action.id, exc.code)
                for later in actions[index:]:
                    await self._wait(later, SLACK_PATIENCE, "Slack did not take it")
                return

    async def _one(self, conversation: Conversation, action: CustomerAction) -> None:
        if action.kind == ActionKind.NOTICE:
            await self._notice(conversation, action)
            return
        target = await self._repo.target(action)
        where = target.slack
        if where is None:
            raise NotYet
        if action.kind == ActionKind.REACTION:
            await self._react(action, where)
        elif action.kind == ActionKind.UNREACTION:
            await self._unreact(action, where)
        elif target.message is None:
            await self._repo.finish(_id(action))  # only the customer's own messages change
        elif action.kind == ActionKind.REMOVAL:
            await self._mark(action, target.message, Mark.DELETED)
        else:
            await self._edit(conversation, action, target.message)

    async def _notice(self, conversation: Conversation, action: CustomerAction) -> None:
        if not (conversation.channel and conversation.thread_ts):
            raise NotYet
        text = blocks.notice_text(str(action.payload.get("text") or ""))
        await self._slack.post(conversation.channel, text, thread_ts=conversation.thread_ts)
        await self._repo.finish(_id(action))

    async def _react(self, action: CustomerAction, where: tuple[str, str]) -> None:
        name = blocks.reaction_name(str(action.payload.get("emoji") or ""))
        try:
            await self._slack.react(*where, name)
        except SlackPermanent as exc:
            if exc.code != "invalid_name":
                raise
            name = blocks.FALLBACK_REACTION
            await self._slack.react(*where, name)
        await self._repo.finish(_id(action), shown=name)

    async def _unreact(self, action: CustomerAction, where: tuple[str, str]) -> None:
        emoji = str(action.payload.get("emoji") or "")
        name = await self._repo.last_reaction(action, emoji)
        if name is None and emoji:
            name = blocks.reaction_name(emoji)
        if name is not None:
            await self._slack.unreact(*where, name)
        await self._repo.finish(_id(action), shown=name)

    async def _mark(self, action: CustomerAction, message: CustomerMessage, mark: Mark) -> None:
        """Mark the message's Slack copy, then SQL; the root is re-rendered from SQL."""
        if not await self._repo.is_first(message):
            await self._update_post(message, mark)
        await self._repo.apply(_id(action), message.id or 0, mark)

    async def _edit(
        self, conversation: Conversation, action: CustomerAction, message: CustomerMessage
    ) -> None:
        """The previous text goes in the thread; the Slack copy and SQL get the new one."""
        if "before_ts" not in action.payload:
            if not (conversation.channel and conversation.thread_ts):
                raise NotYet
            ts = await self._slack.post(
                conversation.channel,
                blocks.edited_note(message.text),
                thread_ts=conversation.thread_ts,
            )
            await self._repo.progress(_id(action), before_ts=ts)
        text = str(action.payload.get("text") or "")
        attachments = list(action.payload.get("attachments") or []) or None
        if not await self._repo.is_first(message):
            await self._update_post(message, Mark.EDITED, text, attachments)
        await self._repo.apply(_id(action), message.id or 0, Mark.EDITED, text, attachments)

    async def _update_post(
        self,
        message: CustomerMessage,
        mark: Mark,
        text: str | None = None,
        attachments: list[dict[str, object]] | None = None,
    ) -> None:
        """Re-render the Slack message the customer message was posted in (follow-ups that
        queued up share one), with the change applied."""
        assert message.slack_channel and message.slack_ts
        shown = []
        for one in await self._repo.same_post(message):
            if one.id == message.id:
                one = one.model_copy(
                    update={
                        "text": one.text if text is None else text,
                        "attachments": attachments or one.attachments,
                        "mark": later_mark(one.mark, mark),
                    }
                )
            shown.append(one)
        await self._slack.update(
            message.slack_channel, message.slack_ts, blocks.customer_messages_text(shown)
        )

    async def _wait(self, action: CustomerAction, patience: timedelta, why: str) -> None:
        now = self._clock()
        if now - action.received_at > patience:
            log.info("action %s (%s) given up: %s", action.id, action.kind, why)
            await self._repo.finish(_id(action), ActionState.DROPPED)
            return
        await self._repo.later(_id(action), now + backoff(action.attempts + 1))
        await self._scheduled()


def _id(action: CustomerAction) -> int:
    assert action.id is not None
    return action.id
