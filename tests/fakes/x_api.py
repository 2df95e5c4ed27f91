"""A stand-in for the X API v2 (`url` stands for https://api.x.com).

- `POST /2/dm_conversations/with/{participant_id}/messages` answers
  `{"data": {"dm_conversation_id", "dm_event_id"}}` (one-to-one conversation ids
  are the two user ids joined by "-", as in the docs' example "123123123-456456456").
- `POST /2/tweets` (a reply carries `reply.in_reply_to_tweet_id`) answers
  `{"data": {"id", "text"}}`.
Both answer 201 Created.
- `GET /2/tweets/search/recent` searches the posts added with `add_post`: those whose
  text holds one of the query's quoted phrases (any case), newer than `since_id`, newest
  first, `max_results` (or `page_size`) per page; `meta` has `newest_id`, `oldest_id`,
  `result_count` and `next_token` while more remain, `includes.users` the authors (as
  docs.x.com/x-api/posts/search-recent-posts shows). Every answer carries the
  `x-rate-limit-*` headers; past `search_limit` requests in a window, 429.
Errors are RFC 7807 problem objects; a rate limit is HTTP 429 `{"title": "Too Many
Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429}` with
`x-rate-limit-limit`, `x-rate-limit-remaining` and `x-rate-limit-reset` (Unix seconds
when the window resets) headers
(docs.x.com/fundamentals/rate-limits; the body as X actually sends it, quoted in
many public clients). A missing bearer token gives 401 "Unauthorized".
"""

from __future__ import annotations

import itertools
import math
import re
import time
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeServer, call_of

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
        self.posts: list[Answer] = []  # searchable, oldest first
        self.users: dict[str, Answer] = {}
        self.page_size: int | None = None  # overrides max_results (to force pagination)
        self.search_limit = 450  # requests per 15-minute window, as X's app limit
        self._search_window: tuple[float, int] = (time.time() + 900, 0)
        self._tokens: dict[str, tuple[str, str | None, int]] = {}

    def add_post(
        self,
        text: str,
        *,
        author_id: str = "2244994945",
        username: str = "someone",
        name: str = "Some One",
        conversation_id: str | None = None,
        post_id: str | None = None,
    ) -> str:
        """A public post the recent search can find; returns its id."""
        post_id = post_id or str(next(self._ids))
        self.users[author_id] = {"id": author_id, "username": username, "name": name}
        self.posts.append(
            {
                "id": post_id,
                "text": text,
                "author_id": author_id,
                "conversation_id": conversation_id or post_id,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                "edit_history_tweet_ids": [post_id],
            }
        )
        return post_id

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/2/dm_conversations/with/{participant_id}/messages", self._dm),
            web.post("/2/tweets", self._tweet),
            web.get("/2/tweets/search/recent", self._search),
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

    async def _search(self, request: web.Request) -> web.StreamResponse:
        denied = _check_bearer(request)
        if denied is not None:
            return denied
        reset, used = self._search_window
        if time.time() >= reset:
            reset, used = time.time() + 900, 0
        used += 1
        self._search_window = (reset, used)
        headers = {
            "x-rate-limit-limit": str(self.search_limit),
            "x-rate-limit-remaining": str(max(0, self.search_limit - used)),
            "x-rate-limit-reset": str(math.ceil(reset)),
        }
        if used > self.search_limit:
            return web.json_response(problem(429), status=429, headers=headers)
        params = request.query
        query = params.get("query", "")
        if not query:
            return web.json_response(problem(400, "query is required"), status=400)
        size = self.page_size or int(params.get("max_results", "10"))
        token = params.get("next_token")
        if token is not None:
            if token not in self._tokens:
                return web.json_response(problem(400, "invalid next_token"), status=400)
            query, since_id, offset = self._tokens[token]
        else:
            since_id, offset = params.get("since_id"), 0
        phrases = [p.casefold() for p in re.findall(r'"([^"]+)"', query)]
        found = [
            post
            for post in reversed(self.posts)
            if (since_id is None or int(post["id"]) > int(since_id))
            and any(phrase in post["text"].casefold() for phrase in phrases)
        ]
        page = found[offset : offset + size]
        meta: Answer = {"result_count": len(page)}
        if page:
            meta.update(newest_id=page[0]["id"], oldest_id=page[-1]["id"])
        if offset + size < len(found):
            next_token = f"b26v89c19zqg8o3f{offset + size}"
            self._tokens[next_token] = (query, since_id, offset + size)
            meta["next_token"] = next_token
        answer: Answer = {"meta": meta}
        if page:
            answer["data"] = page
            authors = {post["author_id"] for post in page}
            answer["includes"] = {"users": [self.users[a] for a in sorted(authors)]}
        return web.json_response(answer, headers=headers)


def _check_bearer(request: web.Request) -> web.StreamResponse | None:
    if call_of(request).headers.get("Authorization", "").startswith(("Bearer ", "OAuth ")):
        return None
    return web.json_response(problem(401), status=401)
