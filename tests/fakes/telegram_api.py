"""A stand-in for the Telegram Bot API: `GET|POST {url}/bot<token>/<method>`.

Answers use Telegram's envelope (https://core.telegram.org/bots/api#making-requests):
`{"ok": true, "result": ...}`, or `{"ok": false, "error_code": N, "description":
"...", "parameters": {...}}` with the HTTP status equal to `error_code`. Flood
control says `"Too Many Requests: retry after N"` and carries
`parameters.retry_after` (ResponseParameters: "the number of seconds left to wait
before the request can be repeated"); no Retry-After header is documented, so
none is sent. A user who blocked the bot gives 403 "Forbidden: bot was blocked
by the user". Method names are case-insensitive, as the docs say.
"""

from __future__ import annotations

import math
import time
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeServer, call_of
from tests.fakes.files import FileStore

Answer = dict[str, Any]

_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


def telegram_error(status: int, description: str, retry_after: float | None = None) -> Answer:
    body: Answer = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": math.ceil(retry_after)}
    return body


MEDIA_METHODS = {
    "sendphoto": "photo",
    "senddocument": "document",
    "sendvideo": "video",
    "sendaudio": "audio",
}


class FakeTelegram(FakeServer):
    def __init__(self, *, port: int = 0, token: str | None = None, bot_id: int = 7000001) -> None:
        super().__init__(port=port)
        self.token = token
        self.bot_id = bot_id
        self.blocked_chats: set[int | str] = set()
        self.webhook: Answer = {}
        self.sent: list[Answer] = []
        self.edited: list[Answer] = []  # editMessageText / editMessageCaption parameters
        self.deleted: list[tuple[int | str, int]] = []  # (chat id, message id)
        self.answered: list[Answer] = []  # answerCallbackQuery parameters, in order
        self._next_message_id = 1
        self.files = FileStore()  # by file_id; served at /file/bot<token>/<file_id>

    def routes(self) -> list[web.RouteDef]:
        return [
            web.route("*", "/bot{token}/{method}", self._handle),
            web.get("/file/bot{token}/{path:.+}", self._file),
        ]

    def method_name(self, request: web.Request) -> str:
        return request.match_info.get("method", request.path)

    def error_response(
        self, status: int, retry_after: float | None, method: str
    ) -> web.StreamResponse:
        if status == 429:
            wait = 5 if retry_after is None else math.ceil(retry_after)
            body = telegram_error(429, f"Too Many Requests: retry after {wait}", wait)
        else:
            body = telegram_error(status, _DESCRIPTIONS.get(status, "Error"), retry_after)
        return web.json_response(body, status=status)

    def messages(self, chat_id: int | str | None = None) -> list[Answer]:
        """The Message objects sendMessage returned, optionally for one chat."""
        wanted = None if chat_id is None else _chat_id(chat_id)
        return [m for m in self.sent if wanted is None or m["chat"]["id"] == wanted]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        params = call_of(request).params
        if self.token is not None and request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"].lower()
        if method == "sendmessage":
            return self._send_message(params)
        if method in MEDIA_METHODS:
            return self._send_media(MEDIA_METHODS[method], params)
        if method == "editmessagetext":
            return self._edit_message(params)
        if method == "editmessagecaption":
            return self._edit_caption(params)
        if method == "deletemessage":
            return self._delete_message(params)
        if method == "answercallbackquery":
            if not params.get("callback_query_id"):
                return _error(400, "Bad Request: query is too old or query ID is invalid")
            self.answered.append(params)
            return _ok(True)
        if method == "getme":
            return _ok(
                {
                    "id": self.bot_id,
                    "is_bot": True,
                    "first_name": "Relaydesk",
                    "username": "relaydesk_bot",
                }
            )
        if method == "getfile":
            return self._get_file(params)
        if method == "setwebhook":
            self.webhook = {k: params[k] for k in ("url", "secret_token") if k in params}
            return _ok(True, description="Webhook was set")
        if method == "deletewebhook":
            self.webhook = {}
            return _ok(True, description="Webhook was deleted")
        return _error(404, "Not Found")

    def _get_file(self, params: Answer) -> web.StreamResponse:
        """Bots may download files of up to 20 MB (https://core.telegram.org/bots/api#getfile)."""
        file_id = str(params.get("file_id", ""))
        served = self.files.files.get(file_id)
        if served is None:
            return _error(400, "Bad Request: invalid file_id")
        if served.size > 20 * 1024 * 1024:
            return _error(400, "Bad Request: file is too big")
        return _ok({"file_id": file_id, "file_size": served.size, "file_path": f"f/{file_id}"})

    async def _file(self, request: web.Request) -> web.StreamResponse:
        if self.token is not None and request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        return await self.files.serve(request, request.match_info["path"].removeprefix("f/"))

    def _send_message(self, params: Answer) -> web.StreamResponse:
        if "chat_id" not in params or params["chat_id"] in ("", None):
            return _error(400, "Bad Request: chat_id is empty")
        if not str(params.get("text", "")).strip():
            return _error(400, "Bad Request: message text is empty")
        chat_id = _chat_id(params["chat_id"])
        if chat_id in {_chat_id(c) for c in self.blocked_chats}:
            return _error(403, "Forbidden: bot was blocked by the user")
        message: Answer = {
            "message_id": self._next_message_id,
            "from": {
                "id": self.bot_id,
                "is_bot": True,
                "first_name": "Relaydesk",
                "username": "relaydesk_bot",
            },
            "chat": {"id": chat_id, "type": "private"},
            "date": int(time.time()),
            "text": params["text"],
        }
        reply_to = params.get("reply_to_message_id") or _reply_parameters_id(params)
        if reply_to:
            message["reply_to_message"] = {"message_id": int(reply_to)}
        markup = params.get("reply_markup")
        if markup is not None:
            refused = _bad_keyboard(markup)
            if refused:
                return _error(400, f"Bad Request: {refused}")
            message["reply_markup"] = markup
        self._next_message_id += 1
        self.sent.append(message)
        return _ok(message)

    def _send_media(self, field: str, params: Answer) -> web.StreamResponse:
        """sendPhoto and its kin, as multipart uploads: the file is kept on the message."""
        upload = params.get(field)
        if not isinstance(upload, dict):
            return _error(400, f"Bad Request: there is no {field} in the request")
        chat_id = _chat_id(params.get("chat_id", ""))
        message: Answer = {
            "message_id": self._next_message_id,
            "chat": {"id": chat_id, "type": "private"},
            "date": int(time.time()),
            field: {"file_name": upload["filename"], "file_size": upload["size"]},
            "upload": upload,
        }
        if params.get("caption"):
            message["caption"] = params["caption"]
        self._next_message_id += 1
        self.sent.append(message)
        return _ok({k: v for k, v in message.items() if k != "upload"})

    def _find(self, params: Answer) -> Answer | None:
        chat_id, message_id = _chat_id(params.get("chat_id", "")), params.get("message_id")
        for message in self.sent:
            if message["chat"]["id"] == chat_id and message["message_id"] == message_id:
                return message
        return None

    def _edit_message(self, params: Answer) -> web.StreamResponse:
        message = self._find(params)
        if message is None:
            return _error(400, "Bad Request: message to edit not found")
        if "text" not in message:
            return _error(400, "Bad Request: there is no text in the message to edit")
        if message["text"] == params.get("text"):
            return _error(400, "Bad Request: message is not modified")
        message["text"] = params.get("text")
        self.edited.append(params)
        return _ok(message)

    def _edit_caption(self, params: Answer) -> web.StreamResponse:
        """editMessageCaption: only a media message has a caption to edit."""
        message = self._find(params)
        if message is None:
            return _error(400, "Bad Request: message to edit not found")
        if "text" in message:
            return _error(400, "Bad Request: there is no caption in the message to edit")
        if message.get("caption") == params.get("caption"):
            return _error(400, "Bad Request: message is not modified")
        message["caption"] = params.get("caption")
        self.edited.append(params)
        return _ok({k: v for k, v in message.items() if k != "upload"})

    def _delete_message(self, params: Answer) -> web.StreamResponse:
        message = self._find(params)
        if message is None:
            return _error(400, "Bad Request: message to delete not found")
        self.sent.remove(message)
        self.deleted.append((message["chat"]["id"], message["message_id"]))
        return _ok(True)


def _bad_keyboard(markup: Any) -> str | None:
    """What Telegram refuses in an inline keyboard: callback_data must be 1-64 bytes
    (https://core.telegram.org/bots/api#inlinekeyboardbutton)."""
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        return "can't parse reply keyboard markup JSON object"
    for button in (button for row in rows for button in row):
        data = button.get("callback_data") if isinstance(button, dict) else None
        if not isinstance(data, str) or not 1 <= len(data.encode()) <= 64:
            return "BUTTON_DATA_INVALID"
        if not str(button.get("text", "")).strip():
            return "text buttons are unallowed in the inline keyboard"
    return None


def _chat_id(value: int | str) -> int | str:
    """Telegram chat ids are integers; `@channelname` stays a string."""
    text = str(value)
    return int(text) if text.lstrip("-").isdigit() else text


def _reply_parameters_id(params: Answer) -> Any:
    reply_parameters = params.get("reply_parameters")
    return reply_parameters.get("message_id") if isinstance(reply_parameters, dict) else None


def _ok(result: Any, **extra: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result, **extra})


def _error(status: int, description: str) -> web.Response:
    return web.json_response(telegram_error(status, description), status=status)
