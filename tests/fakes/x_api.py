"""A stand-in for the X API v2 (`url` stands for https://api.x.com).

- `POST /2/dm_conversations/with/{participant_id}/messages` answers
  `{"data": {"dm_conversation_id", "dm_event_id"}}` (one-to-one conversation ids
  are the two user ids joined by "-", as in the docs' example "123123123-456456456").
- `POST /2/tweets` (a reply carries `reply.in_reply_to_tweet_id`) answers
  `{"data": {"id", "text"}}`.
Both answer 201 Created.
- `GET /2/dm_conversations/media/{dm_id}/{media_id}/{resource_id}` (Download DM Media,
  docs.x.com/x-api/direct-messages/download-dm-media): the raw bytes of a file in
  `files`, keyed `"{dm_id}/{media_id}/{resource_id}"`, to a bearer token only.
  `ton_url(...)` is where a DM webhook says the file is (`media_url_https`).
Errors are RFC 7807 problem objects; a rate limit is
HTTP 429 `{"title": "Too Many Requests", "detail": "Too Many Requests", "type":
"about:blank", "status": 429}` with `x-rate-limit-limit`, `x-rate-limit-remaining`
and `x-rate-limit-reset` (Unix seconds when the window resets) headers
(docs.x.com/fundamentals/rate-limits; the body as X actually sends it, quoted in
many public clients). A missing bearer token gives 401 "Unauthorized".
"""

from __future__ import annotations

import itertools
import math
import time
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeServer, call_of
from tests.fakes.files import FileStore

Answer = dict[str, Any]

_TITLES = {
    400: "Invalid Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def problem(status: int, detail: str | None = None) -> Answer:
    title = _TITLES.get(status, "Error")
    return {"title": title, "detail": detail or title, "type": "about:blank", "status": status}


class FakeX(FakeServer):
    def __init__(
        self, *, port: int = 0, user_id: str = "1000000001", rate_limit_per_window: int = 200
    ) -> None:
        super().__init__(port=port)
        self.user_id = user_id
        self.rate_limit_per_window = rate_limit_per_window
        self.dms: list[Answer] = []
        self.tweets: list[Answer] = []
        self._ids = itertools.count(1_800_000_000_000_000_001)
        self.files = FileStore()

    @staticmethod
    def ton_url(dm_id: str, media_id: str, resource_id: str) -> str:
        return f"https://ton.twitter.com/1.1/ton/data/dm/{dm_id}/{media_id}/{resource_id}"

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/2/dm_conversations/media/{dm_id}/{media_id}/{resource_id}", self._dm_media),
            web.post("/2/dm_conversations/with/{participant_id}/messages", self._dm),
            web.post("/2/tweets", self._tweet),
        ]

    def error_response(
        self, status: int, retry_after: float | None, method: str
    ) -> web.StreamResponse:
        headers = {}
        if status == 429:
            reset = time.time() + (900 if retry_after is None else retry_after)
            headers = {
                "x-rate-limit-limit": str(self.rate_limit_per_window),
                "x-rate-limit-remaining": "0",
                "x-rate-limit-reset": str(math.ceil(reset)),
            }
        return web.json_response(problem(status), status=status, headers=headers)

    async def _dm(self, request: web.Request) -> web.StreamResponse:
        denied = _check_bearer(request)
        if denied is not None:
            return denied
        params = call_of(request).params
        participant = request.match_info["participant_id"]
        if not params.get("text") and not params.get("attachments"):
            return web.json_response(problem(400, "text or attachments is required"), status=400)
        low, high = sorted((self.user_id, participant), key=lambda v: (len(v), v))
        data = {"dm_conversation_id": f"{low}-{high}", "dm_event_id": str(next(self._ids))}
        self.dms.append({"participant_id": participant, "text": params.get("text"), **data})
        return web.json_response({"data": data}, status=201)

    async def _tweet(self, request: web.Request) -> web.StreamResponse:
        denied = _check_bearer(request)
        if denied is not None:
            return denied
        params = call_of(request).params
        text = str(params.get("text", ""))
        data = {"id": str(next(self._ids)), "text": text}
        reply = params.get("reply")
        in_reply_to = reply.get("in_reply_to_tweet_id") if isinstance(reply, dict) else None
        self.tweets.append({**data, "in_reply_to_tweet_id": in_reply_to})
        return web.json_response({"data": data}, status=201)

    async def _dm_media(self, request: web.Request) -> web.StreamResponse:
        if not call_of(request).headers.get("Authorization", "").startswith("Bearer "):
            return web.json_response(problem(401), status=401)
        info = request.match_info
        key = f"{info['dm_id']}/{info['media_id']}/{info['resource_id']}"
        if key not in self.files.files:
            return web.json_response(problem(404, "Could not find the media"), status=404)
        return await self.files.serve(request, key)


def _check_bearer(request: web.Request) -> web.StreamResponse | None:
    if call_of(request).headers.get("Authorization", "").startswith(("Bearer ", "OAuth ")):
        return None
    return web.json_response(problem(401), status=401)
