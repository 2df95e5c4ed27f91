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
  (Instagram): answer `{"id"}`.

Errors are Graph's `{"error": {"message", "type", "code", "error_subcode",
"fbtrace_id"}}`, HTTP 400 unless said otherwise: Graph tells errors apart by
`code`, not by HTTP status, and rate limits usually arrive as 400 too.
"""

from __future__ import annotations

import itertools
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeServer, call_of

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
        self._ids = itertools.count(1)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(f"/{VERSION}/{{node}}/messages", self._messages),
            web.post(f"/{VERSION}/{{node}}/comments", self._comment_reply),
            web.post(f"/{VERSION}/{{node}}/replies", self._comment_reply),
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
        refused = _bad_interactive(params)
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


def _bad_interactive(params: Answer) -> str | None:
    """WhatsApp's interactive list: a body of at most 1,024 characters, a button of at most
    20, at most 10 rows with ids of at most 200 characters and titles of at most 24."""
    if params.get("type", "text") == "text":
        return None if isinstance(params.get("text"), dict) else "text is required"
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
