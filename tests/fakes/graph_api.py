"""A stand-in for Meta's Graph API; `url` stands for https://graph.facebook.com/v25.0.

The fake serves under `/v25.0` so a client that drops the version while joining
URLs (`urljoin` with a base lacking a trailing slash does) gets a 404 here too.
Call names are the path after the version, e.g. `/me/messages`,
`/PHONE_ID/messages`, `/COMMENT_ID/replies`; patterns such as `*/messages` work.

- `POST /me/messages`, `POST /{page-id}/messages`: Messenger / Instagram Send
  API, answers `{"recipient_id", "message_id"}`. A body with
  `"messaging_product": "whatsapp"` is a WhatsApp Cloud API send instead and
  answers `{"messaging_product", "contacts": [{"input", "wa_id"}],
  "messages": [{"id": "wamid..."}]}`.
- `POST /{comment-id}/comments` (Page) and `/{comment-id}/replies`
  (Instagram): answer `{"id"}`. `POST /{comment-id}` with `message` edits one of
  those, `DELETE /{comment-id}` deletes it: `{"success": true}` (`edits`, `deleted`).
- `POST /{phone-number-id}/media` (WhatsApp) and `/{page-id}/message_attachments`
  (Messenger, Instagram with `platform`): multipart uploads, recorded in `uploads`
  with the file, answering the media id / `attachment_id` a send then names.
- `GET /{media-id}` (WhatsApp media in `files`): `{"messaging_product", "url",
  "mime_type", "sha256", "file_size" (a string), "id"}`; the `url` (Meta's lookaside
  host, here `/lookaside/...` on the fake's origin) serves the bytes to the token only.
- `GET /{PSID}?fields=first_name,last_name,profile_pic` (Messenger) and
  `GET /{IGSID}?fields=name,username,profile_pic` (Instagram), from `profiles`: the
  fields asked for that the profile has, plus `id`. An unknown id is Graph's code 100.
- `cdn_url(key)`: a Messenger / Instagram attachment URL (Meta's signed CDN URL),
  served from `cdn` without a token.

Errors are Graph's `{"error": {"message", "type", "code", "error_subcode",
"fbtrace_id"}}`, HTTP 400 unless said otherwise: Graph tells errors apart by
`code`, not by HTTP status, and rate limits usually arrive as 400 too.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeServer, call_of
from tests.fakes.files import FileStore

Answer = dict[str, Any]

VERSION = "v25.0"
FBTRACE_ID = "AFakeTraceId0001"

# Messenger, outside the 24-hour window: code 10, subcode 2018278, "This message is
# sent outside of allowed window. Learn more about the new policy here"
# (developers.facebook.com/docs/messenger-platform/reference/send-api/error-codes,
# permission errors). The "(#10) " prefix and the policy link are how the Graph API
# actually words it in captured responses quoted in public code.
MESSENGER_WINDOW_CLOSED: Answer = {
    "message": "(#10) This message is sent outside of allowed window. Learn more about the "
    "new policy here: https://developers.facebook.com/docs/messenger-platform/policy-overview",
    "type": "OAuthException",
    "code": 10,
    "error_subcode": 2018278,
}

# WhatsApp, outside the customer-service window: 131047 "Re-engagement message",
# HTTP 400 (developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes).
# Since v16.0 WhatsApp errors carry `error_data.details` and no subcode
# (same page, "Error response contents"). The details sentence is Meta's, as shown
# e.g. at developer.enablex.io (WhatsApp API responses). Note: Cloud API often
# accepts the send (200 + wamid) and reports 131047 later in a `statuses` webhook.
WHATSAPP_WINDOW_CLOSED: Answer = {
    "message": "(#131047) Re-engagement message",
    "type": "OAuthException",
    "code": 131047,
    "error_data": {
        "messaging_product": "whatsapp",
        "details": "Message failed to send because more than 24 hours have passed since the "
        "customer last replied to this number.",
    },
}

# Throttling. 4: "Application request limit reached" (Messenger error codes page;
# WhatsApp error codes page: HTTP 400). 613: "Calls to this API have exceeded the
# rate limit" (Send API error codes page). 130429: "Rate limit hit", HTTP 400, with
# the details sentence from the WhatsApp webhook errors reference.
RATE_LIMIT_ERRORS: dict[int, Answer] = {
    4: {"message": "(#4) Application request limit reached", "type": "OAuthException", "code": 4},
    613: {
        "message": "(#613) Calls to this API have exceeded the rate limit",
        "type": "OAuthException",
        "code": 613,
    },
    130429: {
        "message": "(#130429) Rate limit hit",
        "type": "OAuthException",
        "code": 130429,
        "error_data": {
            "messaging_product": "whatsapp",
            "details": "Message failed to send because there were too many messages sent "
            "from this phone number in a short period of time",
        },
    },
}

# Graph's answer for an id it does not know (or that was deleted).
UNKNOWN_OBJECT: Answer = {
    "message": "Unsupported post request. Object with ID 'x' does not exist, cannot be loaded "
    "due to missing permissions, or does not support this operation.",
    "type": "GraphMethodException",
    "code": 100,
    "error_subcode": 33,
}

# The example error on the Messenger error codes page.
INVALID_TOKEN: Answer = {
    "message": "Invalid OAuth access token.",
    "type": "OAuthException",
    "code": 190,
}


class FakeGraph(FakeServer):
    url_path = f"/{VERSION}"

    def __init__(self, *, port: int = 0, token: str | None = None) -> None:
        super().__init__(port=port)
        self.token = token
        self.closed_window: set[str] = set()
        self.sent: list[Answer] = []
        self.uploads: list[Answer] = []  # WhatsApp media and Messenger attachments, in order
        self.edits: list[Answer] = []  # POST /{comment-id}: {"node", "message"}
        self.deleted: list[str] = []  # DELETE /{comment-id}: the node ids
        self._ids = itertools.count(1)
        self.files = FileStore()  # WhatsApp media, by media id
        self.cdn = FileStore()  # Messenger / Instagram attachments, by key
        self.profiles: dict[str, Answer] = {}  # PSID / IGSID -> profile fields

    def cdn_url(self, key: str) -> str:
        return f"{self.origin}/cdn/{key}?oh=signature&oe=expiry"

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(f"/{VERSION}/{{node}}", self._node),
            web.get("/lookaside/whatsapp_business/attachments/", self._lookaside),
            web.get("/cdn/{key}", self._cdn),
            web.post(f"/{VERSION}/{{node}}/messages", self._messages),
            web.post(f"/{VERSION}/{{node}}/comments", self._comment_reply),
            web.post(f"/{VERSION}/{{node}}/replies", self._comment_reply),
            web.post(f"/{VERSION}/{{node}}/media", self._whatsapp_media),
            web.post(f"/{VERSION}/{{node}}/message_attachments", self._attachment_upload),
            web.post(f"/{VERSION}/{{node}}", self._edit_comment),
            web.delete(f"/{VERSION}/{{node}}", self._delete_comment),
        ]

    def method_name(self, request: web.Request) -> str:
        return request.path.removeprefix(f"/{VERSION}")

    def error_response(
        self, status: int, retry_after: float | None, method: str
    ) -> web.StreamResponse:
        if status == 429:
            return graph_error(RATE_LIMIT_ERRORS[4], status)
        return graph_error(
            {
                "message": "An unexpected error has occurred. Please retry your request later.",
                "type": "OAuthException",
                "code": 2,
            },
            status,
        )

    def throttle(
        self, method: str = "*", code: int = 4, count: int | None = 1, status: int = 400
    ) -> None:
        """Answer the next matching calls with Meta's rate-limit error `code` (4, 613, 130429)."""
        self.fail(
            method,
            status=status,
            count=count,
            body={"error": {**RATE_LIMIT_ERRORS[code], "fbtrace_id": FBTRACE_ID}},
        )

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        denied = self._check_token(request)
        if denied is not None:
            return denied
        params = call_of(request).params
        if params.get("messaging_product") == "whatsapp":
            return self._whatsapp(request.match_info["node"], params)
        recipient = params.get("recipient")
        if not isinstance(recipient, dict) or not recipient:
            return graph_error(
                {
                    "message": "(#100) The parameter recipient is required",
                    "type": "OAuthException",
                    "code": 100,
                }
            )
        recipient_id = str(
            recipient.get("id") or recipient.get("comment_id") or recipient.get("post_id")
        )
        if recipient_id in self.closed_window:
            return graph_error(MESSENGER_WINDOW_CLOSED)
        refused = _bad_quick_replies(params.get("message"))
        if refused:
            return graph_error(
                {"message": f"(#100) {refused}", "type": "OAuthException", "code": 100}
            )
        answer = {"recipient_id": recipient_id, "message_id": f"m_fake{next(self._ids)}"}
        self.sent.append(
            {
                "kind": "messenger",
                "node": request.match_info["node"],
                "recipient": recipient,
                "message": params.get("message"),
                **answer,
            }
        )
        return web.json_response(answer)

    def _whatsapp(self, phone_number_id: str, params: Answer) -> web.StreamResponse:
        to = str(params.get("to", ""))
        if not to:
            return graph_error(
                {
                    "message": "(#100) The parameter to is required.",
                    "type": "OAuthException",
                    "code": 100,
                }
            )
        if to in self.closed_window:
            return graph_error(WHATSAPP_WINDOW_CLOSED)
        refused = _bad_whatsapp_message(params)
        if refused:
            return graph_error(
                {"message": f"(#131009) {refused}", "type": "OAuthException", "code": 131009}
            )
        wamid = f"wamid.FAKE{next(self._ids):08d}"
        self.sent.append(
            {
                "kind": "whatsapp",
                "node": phone_number_id,
                "to": to,
                "text": params.get("text"),
                "type": params.get("type", "text"),
                "interactive": params.get("interactive"),
                "context": params.get("context"),
                "media": params.get(str(params.get("type")))
                if params.get("type") != "text"
                else None,
                "message_id": wamid,
            }
        )
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
                "messages": [{"id": wamid}],
            }
        )

    async def _comment_reply(self, request: web.Request) -> web.StreamResponse:
        denied = self._check_token(request)
        if denied is not None:
            return denied
        params = call_of(request).params
        node = request.match_info["node"]
        reply_id = f"{node}_{next(self._ids)}"
        self.sent.append(
            {
                "kind": request.path.rsplit("/", 1)[1],
                "node": node,
                "message": params.get("message"),
                "id": reply_id,
            }
        )
        return web.json_response({"id": reply_id})

    async def _whatsapp_media(self, request: web.Request) -> web.StreamResponse:
        """POST /{phone-number-id}/media, multipart with `messaging_product`, `type` and
        `file`: answers the media id (WhatsApp Cloud API, "Upload media")."""
        denied = self._check_token(request)
        if denied is not None:
            return denied
        params = call_of(request).params
        upload = params.get("file")
        if params.get("messaging_product") != "whatsapp" or not isinstance(upload, dict):
            return graph_error(
                {
                    "message": "(#100) The parameter messaging_product and file are required.",
                    "type": "OAuthException",
                    "code": 100,
                }
            )
        media_id = str(4_490_709_327_384_000 + next(self._ids))
        self.uploads.append(
            {
                "kind": "whatsapp",
                "node": request.match_info["node"],
                "type": params.get("type"),
                "file": upload,
                "id": media_id,
            }
        )
        return web.json_response({"id": media_id})

    async def _attachment_upload(self, request: web.Request) -> web.StreamResponse:
        """POST /{page-id}/message_attachments, multipart with `message` (the attachment's
        type) and `filedata`: answers `{"attachment_id"}` (Attachment Upload API)."""
        denied = self._check_token(request)
        if denied is not None:
            return denied
        params = call_of(request).params
        upload, message = params.get("filedata"), params.get("message")
        if isinstance(message, str):  # a multipart field is text: the JSON of the message
            message = json.loads(message) if message.startswith("{") else None
        attachment = message.get("attachment") if isinstance(message, dict) else None
        if not isinstance(upload, dict) or not isinstance(attachment, dict):
            return graph_error(
                {
                    "message": "(#100) Upload attachment failure.",
                    "type": "OAuthException",
                    "code": 100,
                }
            )
        attachment_id = str(1_857_777_774_821_000 + next(self._ids))
        self.uploads.append(
            {
                "kind": "attachment",
                "node": request.match_info["node"],
                "platform": params.get("platform"),
                "type": attachment.get("type"),
                "file": upload,
                "id": attachment_id,
            }
        )
        return web.json_response({"attachment_id": attachment_id})

    async def _edit_comment(self, request: web.Request) -> web.StreamResponse:
        """POST /{comment-id} with `message`: a Page edits its comment, `{"success": true}`."""
        denied = self._check_token(request)
        if denied is not None:
            return denied
        node, message = request.match_info["node"], call_of(request).params.get("message")
        if not self._sent_comment(node) or not isinstance(message, str):
            return graph_error(UNKNOWN_OBJECT)
        self.edits.append({"node": node, "message": message})
        return web.json_response({"success": True})

    async def _delete_comment(self, request: web.Request) -> web.StreamResponse:
        """DELETE /{comment-id}: `{"success": true}`."""
        denied = self._check_token(request)
        if denied is not None:
            return denied
        node = request.match_info["node"]
        if not self._sent_comment(node) or node in self.deleted:
            return graph_error(UNKNOWN_OBJECT)
        self.deleted.append(node)
        return web.json_response({"success": True})

    def _sent_comment(self, node: str) -> bool:
        return any(s.get("id") == node for s in self.sent if s["kind"] in ("comments", "replies"))

    async def _node(self, request: web.Request) -> web.StreamResponse:
        """A WhatsApp media id's download URL, or a customer's profile."""
        denied = self._check_token(request)
        if denied is not None:
            return denied
        node = request.match_info["node"]
        served = self.files.files.get(node)
        if served is not None:
            return web.json_response(
                {
                    "messaging_product": "whatsapp",
                    "url": f"{self.origin}/lookaside/whatsapp_business/attachments/?mid={node}"
                    "&ext=1700000000&hash=ATfakehash",
                    "mime_type": served.mimetype,
                    "sha256": "0" * 64,
                    "file_size": str(served.size),
                    "id": node,
                }
            )
        profile = self.profiles.get(node)
        if profile is None:
            return graph_error(
                {
                    "message": f"Unsupported get request. Object with ID '{node}' does not "
                    "exist, cannot be loaded due to missing permissions, or does not support "
                    "this operation.",
                    "type": "GraphMethodException",
                    "code": 100,
                    "error_subcode": 33,
                }
            )
        wanted = [f for f in request.query.get("fields", "").split(",") if f]
        return web.json_response(
            {"id": node, **{k: v for k, v in profile.items() if not wanted or k in wanted}}
        )

    async def _lookaside(self, request: web.Request) -> web.StreamResponse:
        """WhatsApp media bytes: the URL alone is not enough, the token must come too."""
        if self.token is not None:
            denied = self._check_token(request)
            if denied is not None:
                return denied
        elif not call_of(request).headers.get("Authorization", "").startswith("Bearer "):
            return graph_error(INVALID_TOKEN, 401)
        return await self.files.serve(request, request.query.get("mid", ""))

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        return await self.cdn.serve(request, request.match_info["key"])

    def _check_token(self, request: web.Request) -> web.StreamResponse | None:
        if self.token is None:
            return None
        call = call_of(request)
        bearer = call.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if self.token in (bearer, call.params.get("access_token")):
            return None
        return graph_error(INVALID_TOKEN)


def _bad_quick_replies(message: Any) -> str | None:
    """Messenger / Instagram: at most 13 quick replies, text ones with a title of at most
    20 characters and a payload, sent with a non-empty text."""
    replies = message.get("quick_replies") if isinstance(message, dict) else None
    if replies is None:
        return None
    if not isinstance(replies, list) or not 1 <= len(replies) <= 13:
        return "quick_replies must hold 1 to 13 items"
    if not str(message.get("text", "")).strip():
        return "quick replies need a message text"
    for item in replies:
        if item.get("content_type") != "text" or not item.get("payload"):
            return "a text quick reply needs a payload"
        if not 1 <= len(str(item.get("title", ""))) <= 20:
            return "a quick reply title has 1 to 20 characters"
    return None


def _bad_whatsapp_message(params: Answer) -> str | None:
    """A WhatsApp message: text, media by id or link, or an interactive list (a body of
    at most 1,024 characters, a button of at most 20, at most 10 rows with ids of at
    most 200 characters and titles of at most 24)."""
    kind = params.get("type", "text")
    if kind == "text":
        return None if isinstance(params.get("text"), dict) else "text is required"
    if kind in ("image", "document", "video", "audio", "sticker"):
        media = params.get(kind)
        has_media = isinstance(media, dict) and bool(media.get("id") or media.get("link"))
        return None if has_media else f"{kind} needs an id or a link"
    interactive = params.get("interactive")
    if params.get("type") != "interactive" or not isinstance(interactive, dict):
        return "unsupported message type"
    if interactive.get("type") != "list":
        return "only list messages are faked"
    body = str((interactive.get("body") or {}).get("text", ""))
    action = interactive.get("action") or {}
    rows = [row for section in action.get("sections", []) for row in section.get("rows", [])]
    if not 1 <= len(body) <= 1024 or not 1 <= len(str(action.get("button", ""))) <= 20:
        return "body or button text of the wrong length"
    if not 1 <= len(rows) <= 10:
        return "a list has 1 to 10 rows"
    for row in rows:
        if (
            not 1 <= len(str(row.get("id", ""))) <= 200
            or not 1 <= len(str(row.get("title", ""))) <= 24
        ):
            return "a row's id or title is of the wrong length"
    return None


def graph_error(error: Answer, status: int = 400) -> web.Response:
    return web.json_response({"error": {**error, "fbtrace_id": FBTRACE_ID}}, status=status)
