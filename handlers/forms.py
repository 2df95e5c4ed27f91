"""Our modals (the handoff, moment and saved reply forms): opening one, and reading back
the conversation that rode along in its metadata (`bot.blocks.form`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot.blocks.conversation import Block
from bot.networks.base import PayloadError
from bot.networks.payload import load_object
from bot.services.refs import MAX_ID
from bot.services.refusal import Refusal
from bot.slack import Slack, SlackError
from handlers.answer import tell
from handlers.payloads import MessageShortcut

log = logging.getLogger(__name__)

NOT_OUR_FORM = "This form is not ours."


async def open_shortcut_form(
    slack: Slack,
    body: MessageShortcut,
    what: str,
    build: Callable[[str, str, str | None], Awaitable[Block]],
) -> None:
    """A message shortcut's form, built for the message it was used on (channel, ts,
    thread_ts); when `build` refuses (`Refusal`), the reason is said instead."""
    user, channel = body["user"]["id"], body["channel"]["id"]
    thread_ts = body.get("message", {}).get("thread_ts")
    try:
        view = await build(channel, body["message_ts"], thread_ts)
    except Refusal as exc:
        await tell(slack, channel, user, exc.sentence)
        return
    await open_form(slack, body["trigger_id"], view, channel, user, what)


async def open_form(
    slack: Slack, trigger_id: str, view: Block, channel: str, user: str, what: str
) -> None:
    """Open `view` for `user`; when Slack will not, say so in `channel` ("Could not open
    `what`")."""
    try:
        await slack.call("views.open", trigger_id=trigger_id, view=view)
    except SlackError as exc:
        log.warning("could not open %s for %s: %s", view.get("callback_id"), user, exc.code)
        await tell(slack, channel, user, f"Could not open {what} ({exc.code}).")


def form_metadata(raw: str | None) -> tuple[int, dict[str, Any]]:
    """The conversation a form of ours is about, and all its metadata; `ValueError` for
    any other form."""
    try:
        meta = load_object(raw or "{}")
        conversation_id = int(meta["conversation"])
    except (PayloadError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(NOT_OUR_FORM) from exc
    if not 0 < conversation_id <= MAX_ID:
        raise ValueError(NOT_OUR_FORM)
    return conversation_id, meta
