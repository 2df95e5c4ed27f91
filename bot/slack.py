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
import json
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

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

FILES_HOST = "files.slack.com"  # where Slack serves shared files; the token goes nowhere else
DOWNLOAD_CHUNK = 256 * 1024
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
        self._names: dict[str, tuple[str, str | None]] = {}
        self._app_ids: dict[str, str | None] = {}

    async def call(
        self,
        method: str,
        *,
        patient: bool = True,
        form: bool = False,
        once: bool = False,
        **params: Any,
    ) -> dict[str, Any]:
        """Call a Web API method in its turn; raise a typed `SlackError` on failure.

        A call Slack answers with 429 or 5xx is tried once more (after Retry-After, or
        a short pause). `patient=False`: raise `SlackTemporary` at once instead of
        waiting out a pause, for work the caller can simply do later. `form`: send the
        arguments as a form, as slack_sdk does for the file methods. `once`: a call whose
        outcome may be looked for instead (a post carrying metadata) is never repeated
        when that outcome is unknown (a 5xx, a dropped connection); only a 429, which
        Slack did not carry out, is tried again.
        """
        clean = {key: value for key, value in params.items() if value is not None}
        key = _pace_key(method, clean)
        try:
            return await self._attempt(method, key, clean, patient, form, once)
        except SlackTemporary as exc:
            if exc.status != 429 and (exc.status < 500 or once):
                raise
            if exc.status != 429:
                await asyncio.sleep(SERVER_ERROR_PAUSE)
        return await self._attempt(method, key, clean, patient, form, once)

    async def _attempt(
        self,
        method: str,
        key: str,
        params: dict[str, Any],
        patient: bool,
        form: bool = False,
        once: bool = False,
    ) -> dict[str, Any]:
        await self._turn(method, key, patient)
        client = self.client
        if once:  # without the retry of a dropped connection: the call may have landed
            client = copy.copy(client)
            client.retry_handlers = []
        try:
            if form:
                response = await client.api_call(method, params=params)
            else:
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
        author: tuple[str, str | None] | None = None,
    ) -> str:
        """`author`: a person's (name, avatar URL) the post shows instead of the bot's
        (chat:write.customize), for what the bot posts on someone's behalf."""
        data = await self.call(
            "chat.postMessage",
            channel=channel,
            text=text,
            blocks=blocks,
            thread_ts=thread_ts,
            reply_broadcast=broadcast or None,
            username=author[0] if author else None,
            icon_url=author[1] if author else None,
            unfurl_links=False,
            unfurl_media=False,
            metadata=metadata,
            once=metadata is not None,  # findable by its metadata: looked for, not resent
        )
        return str(data["ts"])

    async def upload_file(
        self,
        channel: str,
        thread_ts: str,
        filename: str,
        stream: AsyncIterable[bytes],
        length: int,
        title: str,
        *,
        before_share: Callable[[str], Awaitable[None]] | None = None,
    ) -> str:
        """Upload `length` bytes into a thread (files.getUploadURLExternal, the bytes,
        files.completeUploadExternal), streamed: never held whole in memory.

        `before_share(file_id)` runs once the bytes are with Slack and before they are
        shared, so a caller can look for the file after a share with no answer.
        Returns Slack's file id."""
        data = await self.call(
            "files.getUploadURLExternal", form=True, filename=filename, length=length
        )
        file_id, upload_url = str(data["file_id"]), str(data["upload_url"])
        await self._send_bytes(upload_url, stream, length)
        if before_share is not None:
            await before_share(file_id)
        await self.share_file(channel, thread_ts, file_id, title)
        return file_id

    async def share_file(self, channel: str, thread_ts: str, file_id: str, title: str) -> None:
        await self.call(
            "files.completeUploadExternal",
            form=True,
            files=json.dumps([{"id": file_id, "title": title}]),
            channel_id=channel,
            thread_ts=thread_ts,
        )

    async def _send_bytes(self, url: str, stream: AsyncIterable[bytes], length: int) -> None:
        """POST the raw bytes to the upload URL (no token: the URL is signed)."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120)
        headers = {"Content-Length": str(length), "Content-Type": "application/octet-stream"}
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(url, data=stream, headers=headers) as response,
            ):
                await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self._count("upload", "unreachable")
            raise SlackTemporary(type(exc).__name__, "upload") from exc
        self._count("upload", str(status))
        if status == 429 or status >= 500:
            raise SlackTemporary(f"http_{status}", "upload", status=status)
        if status != 200:
            raise SlackPermanent(f"http_{status}", "upload")

    async def file_in_thread(self, channel: str, thread_ts: str, file_id: str) -> bool:
        """Whether a file was shared into the thread (a share whose answer was lost)."""
        data = await self.call(
            "conversations.replies", channel=channel, ts=thread_ts, limit=LOOK_BACK
        )
        return any(
            item.get("id") == file_id
            for message in data.get("messages", [])
            for item in message.get("files", [])
        )

    async def granted_scopes(self) -> set[str] | None:
        """The bot token's scopes, from auth.test's `x-oauth-scopes` header (None: not
        sent, e.g. by a stand-in)."""
        try:
            response = await self.client.api_call("auth.test")
        except SlackApiError as exc:
            raise _typed(exc, "auth.test") from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise SlackTemporary(type(exc).__name__, "auth.test") from exc
        headers = {k.lower(): v for k, v in (response.headers or {}).items()}
        value = headers.get("x-oauth-scopes")
        if isinstance(value, list):
            value = ",".join(value)
        if value is None:
            return None
        return {scope.strip() for scope in str(value).split(",") if scope.strip()}

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

    def file_url(self, url: str) -> str | None:
        """Where to download a shared file from: only Slack's own files host receives the
        bot token (None for anything else). Against a stand-in Slack (a SLACK_API_URL
        other than slack.com, as in tests and the demo) the same path on its host."""
        parts = urlsplit(url)
        if parts.scheme != "https" or parts.hostname != FILES_HOST:
            return None
        api = urlsplit(str(self.client.base_url))
        if api.hostname == "slack.com":
            return url
        return urlunsplit((api.scheme, api.netloc, parts.path, parts.query, ""))

    async def download(self, url: str, into: IO[bytes], limit: int) -> int:
        """Stream a shared file (`url_private_download`) into `into`, chunk by chunk;
        returns its size."""
        size = 0
        async for chunk in self.file_chunks(url, limit):
            size += len(chunk)
            into.write(chunk)
        into.flush()
        return size

    async def file_chunks(self, url: str, limit: int) -> AsyncIterator[bytes]:
        """A shared file's bytes as Slack sends them, fetched with the bot token (scope
        `files:read`). `SlackPermanent` for a URL that is not Slack's or a file over
        `limit` bytes, `SlackTemporary` for a failure worth retrying."""
        source = self.file_url(url)
        if source is None:
            raise SlackPermanent("not_a_slack_file", "file download")
        headers = {"Authorization": f"Bearer {self.client.token}"}
        size = 0
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session,
                session.get(source, headers=headers, allow_redirects=False) as response,
            ):
                if response.status >= 500 or response.status == 429:
                    raise SlackTemporary(f"http_{response.status}", "file download")
                if response.status != 200:
                    raise SlackPermanent(f"http_{response.status}", "file download")
                async for chunk in response.content.iter_chunked(DOWNLOAD_CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise SlackPermanent("file_too_large", "file download")
                    yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise SlackTemporary(type(exc).__name__, "file download") from None

    async def app_id(self, bot_id: str) -> str | None:
        """The app a bot user belongs to (`bots.info`), cached; None when Slack will not
        say (then nothing is refused on it)."""
        if bot_id not in self._app_ids:
            try:
                data = await self.call("bots.info", bot=bot_id)
            except SlackError as exc:
                log.warning("bots.info failed for %s: %s", bot_id, exc.code)
                return None
            app = (data.get("bot") or {}).get("app_id")
            self._app_ids[bot_id] = app if isinstance(app, str) and app else None
        return self._app_ids[bot_id]

    async def is_person(self, user: str) -> bool:
        """Whether `user` is an active, human member of the workspace (`users.info`).

        False when Slack does not know them, or they are deactivated or a bot; any other
        failure raises `SlackError` (we could not tell).
        """
        try:
            data = await self.call("users.info", user=user)
        except SlackError as exc:
            if exc.code in ("user_not_found", "user_not_visible"):
                return False
            raise
        info = data.get("user") or {}
        return not (info.get("deleted") or info.get("is_bot"))

    async def user_name(self, user: str) -> str:
        """A display name for attribution (cached); the ID if Slack will not say."""
        return (await self.person(user))[0]

    async def person(self, user: str) -> tuple[str, str | None]:
        """A person's display name and avatar URL (cached); the ID and None if Slack will
        not say."""
        if user not in self._names:
            try:
                data = await self.call("users.info", user=user)
            except SlackError as exc:
                log.warning("users.info failed for %s: %s", user, exc.code)
                return user, None
            profile = data.get("user", {}).get("profile", {})
            name = (
                profile.get("display_name")
                or profile.get("real_name")
                or data.get("user", {}).get("name")
                or user
            )
            avatar = profile.get("image_72") or profile.get("image_48")
            self._names[user] = (name, avatar if isinstance(avatar, str) else None)
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
