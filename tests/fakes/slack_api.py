"""A stateful stand-in for the Slack Web API (`POST|GET {url}{method}`).

slack_sdk's AsyncWebClient(base_url=fake.url) works against it unchanged. How
slack_sdk sends a call (slack_sdk 3.47, `web/async_client.py`): methods that
carry blocks (chat.postMessage, chat.update, chat.postEphemeral, views.*) send
a JSON body; most others (auth.test, chat.delete, reactions.*,
conversations.open) send POST with the arguments in the *query string* and an
empty form body; conversations.info, conversations.members, users.info and
chat.getPermalink use GET. The token always travels as `Authorization: Bearer`.
So the fake reads arguments from the query string, a JSON body or a form body.

Errors look like Slack's: HTTP 200 with `{"ok": false, "error": ...}`, except
rate limiting: HTTP 429, `Retry-After` in whole seconds, `{"ok": false,
"error": "ratelimited"}`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.check import BOT_SCOPES
from tests.fakes.base import Call, FakeServer, call_of, retry_after_header

Answer = dict[str, Any]


class SlackError(Exception):
    """Raised inside a method to answer `{"ok": false, "error": code}`."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class _Bucket:
    tokens: float
    updated: float


def permalink(channel: str, ts: str, thread_ts: str | None = None) -> str:
    """Slack's permalink format; a thread reply's link names its thread."""
    link = f"https://example.slack.com/archives/{channel}/p{ts.replace('.', '')}"
    if thread_ts and thread_ts != ts:
        link += f"?thread_ts={thread_ts}&cid={channel}"
    return link


class FakeSlack(FakeServer):
    url_path = "/api/"

    def __init__(
        self,
        *,
        port: int = 0,
        token: str | None = None,
        bot_user_id: str = "UBOT0001",
        bot_id: str = "BBOT0001",
        team_id: str = "T0001",
    ) -> None:
        super().__init__(port=port)
        self.token = token
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.team_id = team_id
        self.app_id = "A0001"  # the api_app_id the harness's payloads carry
        self.missing_channels: set[str] = set()
        self.unknown_users: set[str] = set()  # users.info answers user_not_found
        self.not_in_channels: set[str] = set()
        self.socket_mode_url = "ws://127.0.0.1:9/socket-mode"
        self.users: dict[str, Answer] = {}
        self.channel_members: dict[str, list[str]] = {}
        self.views: dict[str, Answer] = {}
        self.home_views: dict[str, Answer] = {}
        self._messages: dict[str, dict[str, Answer]] = {}
        self.files: dict[str, bytes | Path] = {}  # path on files.slack.com -> content
        self.scopes = list(BOT_SCOPES)  # granted to the token (x-oauth-scopes)
        self._ephemerals: list[Answer] = []
        self._dms: dict[str, str] = {}
        self._last_micros = 0
        self._rate: tuple[float, int] | None = None
        self._buckets: dict[str, _Bucket] = {}
        self.uploads: dict[str, Answer] = {}  # file id -> filename, length, bytes received
        self._file_ids = itertools.count(1)
        self._methods: dict[str, Callable[[dict[str, Any]], Answer]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.delete": self._delete,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.getPermalink": self._get_permalink,
            "reactions.add": self._reactions_add,
            "reactions.remove": self._reactions_remove,
            "conversations.open": self._conversations_open,
            "conversations.info": self._conversations_info,
            "conversations.members": self._conversations_members,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "users.info": self._users_info,
            "bots.info": self._bots_info,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "files.getUploadURLExternal": self._get_upload_url,
            "files.completeUploadExternal": self._complete_upload,
            "apps.connections.open": self._connections_open,
        }

    # FakeServer hooks

    def routes(self) -> list[web.RouteDef]:
        return [
            web.route("*", "/api/{method}", self._handle),
            web.get("/files-pri/{path:.+}", self._file),
            web.post("/upload/{file_id}", self._upload),
        ]

    def streams(self, request: web.Request) -> bool:
        return request.path.startswith("/upload/")

    def method_name(self, request: web.Request) -> str:
        return request.match_info.get("method", request.path)

    def error_response(
        self, status: int, retry_after: float | None, method: str
    ) -> web.StreamResponse:
        headers = {}
        if status == 429:
            headers["Retry-After"] = retry_after_header(1 if retry_after is None else retry_after)
            error = "ratelimited"
        else:
            error = "fatal_error" if status >= 500 else "invalid_request"
        return web.json_response({"ok": False, "error": error}, status=status, headers=headers)

    # state a test reads or seeds

    def messages(self, channel: str) -> list[Answer]:
        """Every message in the channel (roots and replies), oldest first."""
        return [m for _, m in sorted(self._messages.get(channel, {}).items())]

    def roots(self, channel: str) -> list[Answer]:
        return [m for m in self.messages(channel) if m.get("thread_ts", m["ts"]) == m["ts"]]

    def message(self, channel: str, ts: str) -> Answer:
        return self._messages[channel][ts]

    def thread(self, channel: str, ts: str) -> list[Answer]:
        """The root then its replies, oldest first."""
        return [m for m in self.messages(channel) if m["ts"] == ts or m.get("thread_ts") == ts]

    def replies(self, channel: str, ts: str) -> list[Answer]:
        return [m for m in self.thread(channel, ts) if m["ts"] != ts]

    def reactions(self, channel: str, ts: str) -> list[str]:
        return [r["name"] for r in self.message(channel, ts).get("reactions", [])]

    def ephemerals(self, channel: str | None = None) -> list[Answer]:
        return [e for e in self._ephemerals if channel is None or e["channel"] == channel]

    def add_message(
        self, channel: str, text: str, *, user: str = "U0HUMAN1", thread_ts: str | None = None
    ) -> Answer:
        """Seed a message as if a person had written it (e.g. a thread reply the bot sees)."""
        message: Answer = {"type": "message", "user": user, "text": text, "ts": self._next_ts()}
        if thread_ts:
            message["thread_ts"] = thread_ts
        self._messages.setdefault(channel, {})[message["ts"]] = message
        return message

    def add_reaction(self, channel: str, ts: str, name: str, user: str) -> None:
        """Seed a reaction a person added (the bot's own go through reactions.add)."""
        reactions: list[Answer] = self.message(channel, ts).setdefault("reactions", [])
        entry = next((r for r in reactions if r["name"] == name), None)
        if entry is None:
            entry = {"name": name, "users": [], "count": 0}
            reactions.append(entry)
        entry["users"].append(user)
        entry["count"] = len(entry["users"])

    def delete_message(self, channel: str, ts: str) -> None:
        """Remove a message, e.g. a thread root someone deleted."""
        self._messages.get(channel, {}).pop(ts, None)

    def add_file(self, path: str, content: bytes | Path) -> str:
        """Serve a shared file; returns its `url_private_download` (on files.slack.com,
        which the bot maps to this server's host, see `bot.slack.Slack.file_url`)."""
        self.files["/files-pri/" + path.lstrip("/")] = content
        return f"https://files.slack.com/files-pri/{path.lstrip('/')}"

    async def _file(self, request: web.Request) -> web.StreamResponse:
        """Like Slack: the bot token as a Bearer header, else no file."""
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not token or (self.token is not None and token != self.token):
            return web.Response(status=302, headers={"Location": "https://slack.com/signin"})
        content = self.files.get(request.path)
        if content is None:
            return web.Response(status=404)
        if isinstance(content, Path):
            return web.FileResponse(content)
        return web.Response(body=content, content_type="application/octet-stream")

    def add_user(self, user_id: str, real_name: str, display_name: str = "") -> None:
        self.users[user_id] = _user(user_id, real_name, display_name)

    def rate_limit(self, per_second: float | None = 1.0, burst: int = 3) -> None:
        """Per-channel token bucket on chat.postMessage (None: no limit)."""
        self._rate = None if per_second is None else (per_second, burst)
        self._buckets.clear()

    def rate_limited(self) -> list[Call]:
        return [c for c in self.calls if c.status == 429]

    # dispatch

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        call = call_of(request)
        method = request.match_info["method"]
        auth = call.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() or call.params.get("token", "")
        if not token:
            return web.json_response({"ok": False, "error": "not_authed"})
        # apps.connections.open is called with the app-level (xapp-) token, not the bot's
        if self.token is not None and token != self.token and not token.startswith("xapp-"):
            return web.json_response({"ok": False, "error": "invalid_auth"})
        handler = self._methods.get(method)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method", "req_method": method})
        if method == "chat.postMessage":
            wait = self._take_token(str(call.params.get("channel", "")))
            if wait is not None:
                return web.json_response(
                    {"ok": False, "error": "ratelimited"},
                    status=429,
                    headers={"Retry-After": retry_after_header(wait)},
                )
        try:
            answer = handler(call.params)
        except SlackError as exc:
            return web.json_response({"ok": False, "error": exc.code})
        return web.json_response(
            {"ok": True, **answer}, headers={"x-oauth-scopes": ",".join(self.scopes)}
        )

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        """The upload URL: the raw bytes, counted (and kept when small) as they stream in."""
        upload = self.uploads.get(request.match_info["file_id"])
        if upload is None:
            return web.Response(status=404, text="unknown upload")
        digest, received, kept = hashlib.sha256(), 0, bytearray()
        async for chunk in request.content.iter_chunked(256 * 1024):
            digest.update(chunk)
            received += len(chunk)
            if received <= 1024 * 1024:
                kept += chunk
        upload.update(received=received, sha256=digest.hexdigest(), data=bytes(kept))
        return web.Response(text="OK - " + str(received))

    def _take_token(self, channel: str) -> float | None:
        """None when a post may go; otherwise the seconds until it may."""
        if self._rate is None:
            return None
        per_second, burst = self._rate
        now = time.monotonic()
        bucket = self._buckets.setdefault(channel, _Bucket(float(burst), now))
        bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.updated) * per_second)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return (1.0 - bucket.tokens) / per_second

    # helpers

    def _next_ts(self) -> str:
        """Wall-clock based like Slack's, and strictly increasing (microseconds)."""
        micros = max(time.time_ns() // 1000, self._last_micros + 1)
        self._last_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _channel(self, params: dict[str, Any], *, post: bool = False) -> str:
        channel = str(params.get("channel", ""))
        if not channel or channel in self.missing_channels:
            raise SlackError("channel_not_found")
        if post and channel in self.not_in_channels:
            raise SlackError("not_in_channel")
        return channel

    def _existing(self, channel: str, ts: Any) -> Answer:
        message = self._messages.get(channel, {}).get(str(ts))
        if message is None:
            raise SlackError("message_not_found")
        return message

    def _content(self, params: dict[str, Any]) -> Answer:
        keys = ("text", "blocks", "attachments", "metadata", "username", "icon_url")
        content = {k: params[k] for k in keys if k in params}
        if not any(content.get(k) for k in ("text", "blocks", "attachments")):
            raise SlackError("no_text")
        return content

    # methods

    def _auth_test(self, params: dict[str, Any]) -> Answer:
        return {
            "url": "https://example.slack.com/",
            "team": "Example",
            "user": "relaydesk",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _get_upload_url(self, params: dict[str, Any]) -> Answer:
        filename, length = params.get("filename"), str(params.get("length", ""))
        if not filename or not length.isdigit():
            raise SlackError("invalid_arguments")
        file_id = f"F{next(self._file_ids):08d}"
        self.uploads[file_id] = {"filename": filename, "length": int(length), "received": None}
        return {"upload_url": f"{self.origin}/upload/{file_id}", "file_id": file_id}

    def _complete_upload(self, params: dict[str, Any]) -> Answer:
        """Shares the uploaded files as one message in the thread (or channel)."""
        files = params.get("files")
        items = json.loads(files) if isinstance(files, str) else files
        channel = self._channel({"channel": params.get("channel_id")}, post=True)
        shared = []
        for item in items or []:
            upload = self.uploads.get(str(item.get("id")))
            if upload is None or upload["received"] != upload["length"]:
                raise SlackError("file_not_found" if upload is None else "upload_incomplete")
            shared.append(
                {
                    "id": item["id"],
                    "name": upload["filename"],
                    "title": item.get("title"),
                    "size": upload["length"],
                }
            )
        if not shared:
            raise SlackError("invalid_arguments")
        ts = self._next_ts()
        message: Answer = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "ts": ts,
            "text": "",
            "files": shared,
        }
        if params.get("thread_ts"):
            message["thread_ts"] = str(params["thread_ts"])
        self._messages.setdefault(channel, {})[ts] = message
        return {"files": [{"id": f["id"], "title": f["title"]} for f in shared]}

    def _post_message(self, params: dict[str, Any]) -> Answer:
        channel = self._channel(params, post=True)
        content = self._content(params)
        _check_limits(content)
        thread_ts = params.get("thread_ts")
        if thread_ts:
            root = self._messages.get(channel, {}).get(str(thread_ts))
            if root is None or root.get("thread_ts", root["ts"]) != root["ts"]:
                raise SlackError("thread_not_found")
        ts = self._next_ts()
        message: Answer = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "ts": ts,
            **content,
        }
        if thread_ts:
            message["thread_ts"] = str(thread_ts)
        self._messages.setdefault(channel, {})[ts] = message
        return {"channel": channel, "ts": ts, "message": message}

    def _update(self, params: dict[str, Any]) -> Answer:
        channel = self._channel(params)
        _check_limits(params)
        message = self._existing(channel, params.get("ts"))
        if message.get("user") != self.bot_user_id:
            raise SlackError("cant_update_message")
        message.update({k: params[k] for k in ("text", "blocks", "attachments") if k in params})
        return {
            "channel": channel,
            "ts": message["ts"],
            "text": message.get("text", ""),
            "message": message,
        }

    def _delete(self, params: dict[str, Any]) -> Answer:
        channel = self._channel(params)
        message = self._existing(channel, params.get("ts"))
        self.delete_message(channel, message["ts"])
        return {"channel": channel, "ts": message["ts"]}

    def _post_ephemeral(self, params: dict[str, Any]) -> Answer:
        channel = self._channel(params, post=True)
        ephemeral = {
            "channel": channel,
            "user": params.get("user"),
            "ts": self._next_ts(),
            **self._content(params),
        }
        if params.get("thread_ts"):
            ephemeral["thread_ts"] = str(params["thread_ts"])
        self._ephemerals.append(ephemeral)
        return {"message_ts": ephemeral["ts"]}

    def _get_permalink(self, params: dict[str, Any]) -> Answer:
        channel = self._channel(params)
        message = self._existing(channel, params.get("message_ts"))
        return {
            "channel": channel,
            "permalink": permalink(channel, message["ts"], message.get("thread_ts")),
        }

    def _reactions_add(self, params: dict[str, Any]) -> Answer:
        message = self._existing(self._channel(params), params.get("timestamp"))
        name = str(params.get("name", ""))
        reactions: list[Answer] = message.setdefault("reactions", [])
        entry = next((r for r in reactions if r["name"] == name), None)
        if entry is None:
            entry = {"name": name, "users": [], "count": 0}
            reactions.append(entry)
        if self.bot_user_id in entry["users"]:
            raise SlackError("already_reacted")
        entry["users"].append(self.bot_user_id)
        entry["count"] = len(entry["users"])
        return {}

    def _reactions_remove(self, params: dict[str, Any]) -> Answer:
        message = self._existing(self._channel(params), params.get("timestamp"))
        name = str(params.get("name", ""))
        reactions: list[Answer] = message.get("reactions", [])
        entry = next((r for r in reactions if r["name"] == name), None)
        if entry is None or self.bot_user_id not in entry["users"]:
            raise SlackError("no_reaction")
        entry["users"].remove(self.bot_user_id)
        entry["count"] = len(entry["users"])
        if not entry["users"]:
            reactions.remove(entry)
        return {}

    def _conversations_open(self, params: dict[str, Any]) -> Answer:
        users = ",".join(sorted(str(params.get("users", "")).split(",")))
        if not users:
            raise SlackError("users_list_not_supplied")
        channel = self._dms.setdefault(users, f"D{len(self._dms) + 1:08d}")
        return {"channel": {"id": channel}}

    def _conversations_info(self, params: dict[str, Any]) -> Answer:
        channel = self._channel(params)
        return {
            "channel": {
                "id": channel,
                "name": channel.lower(),
                "is_channel": channel.startswith("C"),
                "is_im": channel.startswith("D"),
                "is_member": channel not in self.not_in_channels,
            }
        }

    def _conversations_members(self, params: dict[str, Any]) -> Answer:
        channel = self._channel(params)
        members = self.channel_members.get(channel, [self.bot_user_id])
        return {"members": members, "response_metadata": {"next_cursor": ""}}

    def _conversations_history(self, params: dict[str, Any]) -> Answer:
        """Top-level messages, newest first (thread replies are not part of history)."""
        channel = self._channel(params)
        found = _since(
            [m for m in self.messages(channel) if m.get("thread_ts", m["ts"]) == m["ts"]], params
        )
        limit = int(params.get("limit") or 100)
        page = list(reversed(found))[:limit]
        return {
            "messages": [_visible(m, params) for m in page],
            "has_more": len(found) > limit,
        }

    def _conversations_replies(self, params: dict[str, Any]) -> Answer:
        """A thread, oldest first, the root always first."""
        channel = self._channel(params)
        root = self._existing(channel, params.get("ts"))
        replies = _since(self.replies(channel, root["ts"]), params)
        limit = int(params.get("limit") or 100)
        page = [root, *replies][:limit]
        return {
            "messages": [_visible(m, params) for m in page],
            "has_more": len(replies) + 1 > limit,
        }

    def _users_info(self, params: dict[str, Any]) -> Answer:
        user_id = str(params.get("user", ""))
        if not user_id or user_id in self.unknown_users:
            raise SlackError("user_not_found")
        return {"user": self.users.get(user_id) or _user(user_id, f"User {user_id}", "")}

    def _bots_info(self, params: dict[str, Any]) -> Answer:
        if params.get("bot") != self.bot_id:
            raise SlackError("bot_not_found")
        return {"bot": {"id": self.bot_id, "app_id": self.app_id, "name": "relaydesk"}}

    def _views_open(self, params: dict[str, Any]) -> Answer:
        if not params.get("trigger_id"):
            raise SlackError("invalid_trigger_id")
        view_id = f"V{len(self.views) + 1:08d}"
        view = {"id": view_id, "hash": f"{view_id}.1", **_view(params)}
        self.views[view_id] = view
        return {"view": view}

    def _views_update(self, params: dict[str, Any]) -> Answer:
        view_id = params.get("view_id") or next(
            (
                v["id"]
                for v in self.views.values()
                if params.get("external_id") and v.get("external_id") == params["external_id"]
            ),
            None,
        )
        if view_id not in self.views:
            raise SlackError("not_found")
        self.views[view_id].update(_view(params))
        return {"view": self.views[view_id]}

    def _views_publish(self, params: dict[str, Any]) -> Answer:
        user_id = str(params.get("user_id", ""))
        if not user_id:
            raise SlackError("invalid_arguments")
        view = {"id": f"VHOME{user_id}", **_view(params)}
        self.home_views[user_id] = view
        return {"view": view}

    def _connections_open(self, params: dict[str, Any]) -> Answer:
        return {"url": self.socket_mode_url}


# Slack's documented limits: 40,000 characters of message text (`msg_too_long`), 50
# blocks and 3,000 characters of a section's text (`invalid_blocks`).
TEXT_LIMIT = 40_000
MAX_BLOCKS = 50
SECTION_LIMIT = 3_000


def _check_limits(params: dict[str, Any]) -> None:
    if len(str(params.get("text") or "")) > TEXT_LIMIT:
        raise SlackError("msg_too_long")
    blocks = params.get("blocks") or []
    if len(blocks) > MAX_BLOCKS:
        raise SlackError("invalid_blocks")
    for block in blocks:
        if block.get("type") == "section" and (
            len(str((block.get("text") or {}).get("text", ""))) > SECTION_LIMIT
        ):
            raise SlackError("invalid_blocks")


def _visible(message: Answer, params: dict[str, Any]) -> Answer:
    """A message as history shows it: metadata only with `include_all_metadata`."""
    if str(params.get("include_all_metadata", "")).lower() in ("1", "true"):
        return message
    return {k: v for k, v in message.items() if k != "metadata"}


def _since(messages: list[Answer], params: dict[str, Any]) -> list[Answer]:
    oldest = float(params.get("oldest") or 0)
    return [m for m in messages if float(m["ts"]) >= oldest]


def _user(user_id: str, real_name: str, display_name: str) -> Answer:
    return {
        "id": user_id,
        "name": user_id.lower(),
        "real_name": real_name,
        "is_bot": False,
        "profile": {
            "real_name": real_name,
            "display_name": display_name,
            "image_72": f"https://avatars.example/{user_id}_72.png",
        },
    }


def _view(params: dict[str, Any]) -> Answer:
    view = params.get("view")
    if not isinstance(view, dict):
        raise SlackError("invalid_arguments")
    return view
