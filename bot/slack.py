"""The one wrapper around slack_sdk's AsyncWebClient.

Slack error codes become typed exceptions so callers decide what a failure
means: retry later (`SlackTemporary`, with `retry_after`), post a fresh root
(`SlackThreadGone`), or tell a person (`SlackPermanent`).

Every call is paced here, across processes (the coordination port): posts at
about one per second per channel, and after a 429 nobody calls that channel's
posts (or that method) again before Slack's Retry-After. slack_sdk's own 429 and
5xx retry handlers are not used: they would retry outside this pacing. Instead a
call Slack refused with 429 or 5xx is tried once more here, in its turn.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.metrics import Metrics
from storage.coordination import Coordinator, MemoryCoordinator

log = logging.getLogger(__name__)

GONE = frozenset({"thread_not_found", "message_not_found", "channel_not_found", "is_archived"})
TEMPORARY = frozenset(
    {"ratelimited", "service_unavailable", "fatal_error", "internal_error", "request_timeout"}
)
# Refusals an admin can fix (invite the bot, renew the token, grant a scope): keep
# retrying these; any other SlackPermanent refuses the content itself, for good.
FIXABLE = frozenset(
    {
        "not_in_channel",
        "not_authed",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "missing_scope",
        "no_permission",
        "access_denied",
        "team_access_not_granted",
        "ekm_access_denied",
        "restricted_action",
        "org_login_required",
    }
)
LOOK_BACK = 200  # messages read when looking for a post that may have been made
POST_RATE = 1.0  # Slack: about one message per second per channel
POST_BURST = 3
SERVER_ERROR_PAUSE = 1.0  # before the one retry of a call Slack answered with 5xx


class SlackError(Exception):
    def __init__(self, code: str, method: str) -> None:
        super().__init__(f"{method}: {code}")
        self.code = code
        self.method = method


class SlackTemporary(SlackError):
    def __init__(
        self, code: str, method: str, retry_after: float | None = None, status: int = 0
    ) -> None:
        """`status`: Slack's HTTP status (0 when Slack was not reached)."""
        super().__init__(code, method)
        self.retry_after = retry_after
        self.status = status


class SlackThreadGone(SlackError):
    """The thread root, message or channel no longer exists."""


class SlackPermanent(SlackError):
    @property
    def fixable(self) -> bool:
        """An admin can make a retry succeed; otherwise Slack refuses the content for good."""
        return self.code in FIXABLE


def make_web_client(token: str, base_url: str, timeout: int = 10) -> AsyncWebClient:
    """The client shared by bolt and our services; it retries only a dropped connection."""
    return AsyncWebClient(
        token=token,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        timeout=timeout,
        retry_handlers=[AsyncConnectionErrorRetryHandler(max_retry_count=1)],
    )


def _pace_key(method: str, params: dict[str, Any]) -> str:
    """What a 429 pauses: posts per channel (Slack's limit), any other method as a whole."""
    if method == "chat.postMessage":
        return f"slack:{method}:{params.get('channel')}"
    return f"slack:{method}"


class Slack:
    def __init__(
        self,
        client: AsyncWebClient,
        metrics: Metrics | None = None,
        coordinator: Coordinator | None = None,
    ) -> None:
        """`coordinator` shares the pacing between processes (default: this process only)."""
        self.client = client
        self._metrics = metrics
        self._coordinator = coordinator or MemoryCoordinator()
        self._names: dict[str, str] = {}

    async def call(
        self, method: str, *, patient: bool = True, once: bool = False, **params: Any
    ) -> dict[str, Any]:
        """Call a Web API method in its turn; raise a typed `SlackError` on failure.

        A call Slack answers with 429 or 5xx is tried once more (after Retry-After, or
        a short pause). `patient=False`: raise `SlackTemporary` at once instead of
        waiting out a pause, for work the caller can simply do later. `once`: a call
        whose outcome may be looked for instead (a post carrying metadata) is never
        repeated when that outcome is unknown (a 5xx, a dropped connection); only a 429,
        which Slack did not carry out, is tried again.
        """
        clean = {key: value for key, value in params.items() if value is not None}
        key = _pace_key(method, clean)
        try:
            return await self._attempt(method, key, clean, patient, once)
        except SlackTemporary as exc:
            if exc.status != 429 and (exc.status < 500 or once):
                raise
            if exc.status != 429:
                await asyncio.sleep(SERVER_ERROR_PAUSE)
        return await self._attempt(method, key, clean, patient, once)

    async def _attempt(
        self, method: str, key: str, params: dict[str, Any], patient: bool, once: bool
    ) -> dict[str, Any]:
        await self._turn(method, key, patient)
        client = self.client
        if once:  # without the retry of a dropped connection: the call may have landed
            client = copy.copy(client)
            client.retry_handlers = []
        try:
            response = await client.api_call(method, json=params)
        except SlackApiError as exc:
            error = _typed(exc, method)
            self._count(method, error.code)
            if isinstance(error, SlackTemporary) and error.status == 429:
                pause = 1.0 if error.retry_after is None else max(error.retry_after, 0.1)
                await self._coordinator.pause(key, pause)
            raise error from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self._count(method, "unreachable")
            raise SlackTemporary(type(exc).__name__, method) from exc
        self._count(method, "ok")
        return dict(response.data) if isinstance(response.data, dict) else {}

    async def _turn(self, method: str, key: str, patient: bool) -> None:
        """Wait until `key` may call Slack: its post slot (GCRA), and the end of any pause."""
        if method == "chat.postMessage":
            wait = await self._coordinator.reserve(key, POST_RATE, POST_BURST)
        else:
            wait = await self._coordinator.paused(key)
        while wait > 0:
            if not patient:  # (a post's slot is spent anyway: only for other methods)
                raise SlackTemporary("ratelimited", method, wait)
            await asyncio.sleep(wait)
            wait = await self._coordinator.paused(key)  # a 429 meanwhile pauses us too

    def _count(self, method: str, status: str) -> None:
        if self._metrics is not None:
            self._metrics.slack_calls.labels(method, status).inc()

    async def post(
        self,
        channel: str,
        text: str,
        *,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        broadcast: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        data = await self.call(
            "chat.postMessage",
            channel=channel,
            text=text,
            blocks=blocks,
            thread_ts=thread_ts,
            reply_broadcast=broadcast or None,
            unfurl_links=False,
            unfurl_media=False,
            metadata=metadata,
            once=metadata is not None,  # findable by its metadata: looked for, not resent
        )
        return str(data["ts"])

    async def find_posts(
        self,
        channel: str,
        event_type: str,
        match: dict[str, Any],
        *,
        oldest: str,
        thread_ts: str | None = None,
    ) -> list[dict[str, Any]]:
        """Our posts since `oldest` whose metadata payload has every item of `match`,
        oldest first: in a thread (conversations.replies) or the channel
        (conversations.history). Reads the latest LOOK_BACK messages at most."""
        data = await self.call(
            "conversations.replies" if thread_ts else "conversations.history",
            channel=channel,
            ts=thread_ts,
            oldest=oldest,
            inclusive=True,
            limit=LOOK_BACK,
            include_all_metadata=True,
        )
        found = []
        for message in data.get("messages") or []:
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if metadata.get("event_type") == event_type and all(
                payload.get(key) == value for key, value in match.items()
            ):
                found.append(message)
        return sorted(found, key=lambda message: float(message.get("ts", 0)))

    async def update(
        self,
        channel: str,
        ts: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        *,
        patient: bool = True,
    ) -> None:
        await self.call(
            "chat.update", patient=patient, channel=channel, ts=ts, text=text, blocks=blocks
        )

    async def react(self, channel: str, ts: str, name: str) -> None:
        try:
            await self.call("reactions.add", channel=channel, timestamp=ts, name=name)
        except SlackPermanent as exc:
            if exc.code != "already_reacted":
                raise

    async def unreact(self, channel: str, ts: str, name: str) -> None:
        try:
            await self.call("reactions.remove", channel=channel, timestamp=ts, name=name)
        except SlackPermanent as exc:
            if exc.code != "no_reaction":
                raise

    async def ephemeral(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> None:
        await self.call(
            "chat.postEphemeral",
            channel=channel,
            user=user,
            text=text,
            blocks=blocks,
            thread_ts=thread_ts,
        )

    async def open_dm(self, user: str) -> str:
        data = await self.call("conversations.open", users=user)
        return str(data["channel"]["id"])

    async def permalink(self, channel: str, ts: str) -> str:
        data = await self.call("chat.getPermalink", channel=channel, message_ts=ts)
        return str(data["permalink"])

    async def user_name(self, user: str) -> str:
        """A display name for attribution (cached); the ID if Slack will not say."""
        if user not in self._names:
            try:
                data = await self.call("users.info", user=user)
            except SlackError as exc:
                log.warning("users.info failed for %s: %s", user, exc.code)
                return user
            profile = data.get("user", {}).get("profile", {})
            self._names[user] = (
                profile.get("display_name")
                or profile.get("real_name")
                or data.get("user", {}).get("name")
                or user
            )
        return self._names[user]


def _typed(exc: SlackApiError, method: str) -> SlackError:
    response = exc.response
    status = getattr(response, "status_code", 200)
    data = response.data if isinstance(getattr(response, "data", None), dict) else {}
    code = str(data.get("error") or f"http_{status}")
    if status == 429 or code == "ratelimited":
        headers = getattr(response, "headers", {}) or {}
        retry = headers.get("Retry-After") or headers.get("retry-after")
        return SlackTemporary(code, method, float(retry) if retry else None, 429)
    if status >= 500 or code in TEMPORARY:
        return SlackTemporary(code, method, status=status)
    if code in GONE:
        return SlackThreadGone(code, method)
    return SlackPermanent(code, method)
