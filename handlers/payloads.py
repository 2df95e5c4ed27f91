"""The parts of Slack's payloads our listeners read, typed (Slack sends more).

Types only: nothing is validated here. A payload of the wrong shape still raises
`KeyError`/`TypeError` in the listener, which bolt logs after the ack (lazy
listeners), or `web.py` answers 400 before dispatching (`handlers.slack.malformed`).
"""

from __future__ import annotations

from typing import NotRequired, TypedDict


class User(TypedDict):
    id: str


class Channel(TypedDict):
    id: str


class Container(TypedDict):
    channel_id: NotRequired[str]
    message_ts: NotRequired[str]
    thread_ts: NotRequired[str]  # a message in a thread


class Action(TypedDict):
    action_id: str
    value: str


class BlockActions(TypedDict):
    """`block_actions`: a button clicked on a root or on a page."""

    user: User
    actions: list[Action]
    container: Container
    channel: NotRequired[Channel | None]
    trigger_id: NotRequired[str]  # opens a modal (a root's Saved reply button)


class ShortcutMessage(TypedDict):
    thread_ts: NotRequired[str]


class MessageShortcut(TypedDict):
    """`message_action`: a message shortcut used on a message."""

    user: User
    channel: Channel
    message_ts: str
    trigger_id: str
    message: NotRequired[ShortcutMessage]


class SelectedOption(TypedDict):
    value: str


class InputValue(TypedDict, total=False):
    value: str | None
    selected_option: SelectedOption | None


class ViewState(TypedDict):
    values: dict[str, dict[str, InputValue]]


class View(TypedDict):
    state: ViewState
    private_metadata: NotRequired[str]
    id: NotRequired[str]


class ViewSubmission(TypedDict):
    """`view_submission`: a modal submitted."""

    user: User
    view: View


class SuggestionView(TypedDict):
    private_metadata: NotRequired[str]


class BlockSuggestion(TypedDict):
    """`block_suggestion`: a person types in an external select (a modal's search)."""

    user: User
    action_id: str
    value: NotRequired[str]  # what was typed so far
    view: NotRequired[SuggestionView]


class SlashCommand(TypedDict):
    text: NotRequired[str]
    user_id: str
    channel_id: str


def click_channel(body: BlockActions) -> str | None:
    """Where a button was clicked: a channel, or a DM for a page's buttons."""
    channel = body.get("channel")
    return (channel.get("id") if channel else None) or body["container"].get("channel_id")


def clicked_ts(body: BlockActions) -> str:
    """The ts of the message whose button was clicked ('' when Slack did not say)."""
    container = body.get("container")
    ts = container.get("message_ts") if isinstance(container, dict) else None
    return ts if isinstance(ts, str) else ""


def clicked_thread_ts(body: BlockActions) -> str:
    """The thread of the message whose button was clicked (its own ts for a root)."""
    container = body.get("container")
    if not isinstance(container, dict):
        return ""
    ts = container.get("thread_ts") or container.get("message_ts")
    return ts if isinstance(ts, str) else ""
