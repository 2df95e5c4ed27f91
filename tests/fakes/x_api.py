"""A stand-in for the X API v2 (`url` stands for https://api.x.com).

- `POST /2/dm_conversations/with/{participant_id}/messages` answers
  `{"data": {"dm_conversation_id", "dm_event_id"}}` (one-to-one conversation ids
  are the two user ids joined by "-", as in the docs' example "123123123-456456456").
- `POST /2/tweets` (a reply carries `reply.in_reply_to_tweet_id`, media
  `media.media_ids`) answers `{"data": {"id", "text"}}`.
Both answer 201 Created. `POST /2/media/upload` (multipart `media`, `media_category`)
records the file in `media` and answers its `id`, which a DM's `attachments` or a
post's `media_ids` must name; so does the chunked upload (`/2/media/upload/initialize`,
`/{id}/append`, `/{id}/finalize`, then `GET ?command=STATUS` until processed).
`DELETE /2/tweets/{id}` and `DELETE /2/dm_events/{id}` answer
`{"data": {"deleted": true}}` and are recorded in `deleted`.
- `GET /2/dm_conversations/media/{dm_id}/{media_id}/{resource_id}` (Download DM Media,
  docs.x.com/x-api/direct-messages/download-dm-media): the raw bytes of a file in
  `files`, keyed `"{dm_id}/{media_id}/{resource_id}"`, to a bearer token only.
  `ton_url(...)` is where a DM webhook says the file is (`media_url_https`).
- `GET /2/tweets/search/recent` searches the posts added with `add_post`: those whose
  text holds one of the query's quoted phrases (any case), newer than `since_id`, newest
  first, `max_results` (or `page_size`) per page; `meta` has `newest_id`, `oldest_id`,
  `result_count` and `next_token` while more remain, `includes.users` the authors (as
  docs.x.com/x-api/posts/search-recent-posts shows). Every answer carries the
  `x-rate-limit-*` headers; past `search_limit` requests in a window, 429.
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
import re
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


_INIT_FIELDS = ("media_type", "total_bytes", "media_category")


class FakeX(FakeServer):
    def __init__(
        self, *, port: int = 0, user_id: str = "1000000001", rate_limit_per_window: int = 200
    ) -> None:
        super().__init__(port=port)
        self.user_id = user_id
        self.rate_limit_per_window = rate_limit_per_window
        self.dms: list[Answer] = []
        self.tweets: list[Answer] = []
        self.media: list[Answer] = []  # POST /2/media/upload: {"id", "media_category", "upload"}
        self.deleted: list[tuple[str, str]] = []  # ("tweets" | "dm_events", id)
        self._ids = itertools.count(1_800_000_000_000_000_001)
        self.files = FileStore()

        self.posts: list[Answer] = []  # searchable, oldest first
        self.users: dict[str, Answer] = {}
        self.page_size: int | None = None  # overrides max_results (to force pagination)
        self.search_limit = 450  # requests per 15-minute window, as X's app limit
        self._search_window: tuple[float, int] = (time.time() + 900, 0)
        self._tokens: dict[str, tuple[str, str | None, int]] = {}

    @staticmethod
    def ton_url(dm_id: str, media_id: str, resource_id: str) -> str:
        return f"https://ton.twitter.com/1.1/ton/data/dm/{dm_id}/{media_id}/{resource_id}"

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
            web.get("/2/dm_conversations/media/{dm_id}/{media_id}/{resource_id}", self._dm_media),
            web.post("/2/dm_conversations/with/{participant_id}/messages", self._dm),
            web.post("/2/tweets", self._tweet),
            web.post("/2/media/upload", self._media_upload),
            web.post("/2/media/upload/initialize", self._media_initialize),
            web.post("/2/media/upload/{id}/append", self._media_append),
            web.post("/2/media/upload/{id}/finalize", self._media_finalize),
            web.get("/2/media/upload", self._media_status),
            web.delete("/2/tweets/{id}", self._delete),
            web.delete("/2/dm_events/{id}", self._delete),
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
        attachments = params.get("attachments")
        if attachments is not None and not self._uploaded(attachments, "media_id", "dm_"):
            return web.json_response(problem(400, "media_id is not valid for a DM"), status=400)
        low, high = sorted((self.user_id, participant), key=lambda v: (len(v), v))
        data = {"dm_conversation_id": f"{low}-{high}", "dm_event_id": str(next(self._ids))}
        self.dms.append(
            {
                "participant_id": participant,
                "text": params.get("text"),
                "attachments": attachments,
                **data,
            }
        )
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
        media = params.get("media")
        media_ids = media.get("media_ids") if isinstance(media, dict) else None
        if media is not None and not self._uploaded(
            [{"id": i} for i in media_ids or []], "id", "tweet_"
        ):
            return web.json_response(problem(400, "media_ids are not valid"), status=400)
        if not text and not media_ids:
            return web.json_response(problem(400, "text or media is required"), status=400)
        self.tweets.append({**data, "in_reply_to_tweet_id": in_reply_to, "media_ids": media_ids})
        return web.json_response({"data": data}, status=201)

    async def _media_upload(self, request: web.Request) -> web.StreamResponse:
        """The one-call upload: multipart `media` and `media_category`; answers the media's
        `id` and `media_key` (docs.x.com/x-api/media/upload-media)."""
        denied = _check_bearer(request)
        if denied is not None:
            return denied
        params = call_of(request).params
        upload, category = params.get("media"), params.get("media_category")
        if not isinstance(upload, dict) or not isinstance(category, str):
            missing = problem(400, "media and media_category are required")
            return web.json_response(missing, status=400)
        media_id = str(next(self._ids))
        self.media.append({"id": media_id, "media_category": category, "upload": upload})
        data = {
            "id": media_id,
            "media_key": f"3_{media_id}",
            "size": upload["size"],
            "expires_after_secs": 86400,
        }
        return web.json_response({"data": data})

    async def _media_initialize(self, request: web.Request) -> web.StreamResponse:
        """Chunked upload, step 1 (JSON `media_type`, `total_bytes`, `media_category`)."""
        denied = _check_bearer(request)
        if denied is not None:
            return denied
        params = call_of(request).params
        if not all(isinstance(params.get(k), str | int) for k in _INIT_FIELDS):
            missing = problem(400, "media_type, total_bytes and media_category are required")
            return web.json_response(missing, status=400)
        media_id = str(next(self._ids))
        self.media.append(
            {
                "id": media_id,
                "media_category": params["media_category"],
                "media_type": params["media_type"],
                "total_bytes": int(params["total_bytes"]),
                "upload": {"data": b"", "segments": 0},
                "state": "initialized",
            }
        )
        return web.json_response({"data": {"id": media_id, "media_key": f"7_{media_id}"}})

    async def _media_append(self, request: web.Request) -> web.StreamResponse:
        """Step 2: multipart `segment_index` (in order here) and `media`."""
        media, params = self._media_of(request), call_of(request).params
        segment = params.get("media")
        if media is None or media["state"] != "initialized" or not isinstance(segment, dict):
            return web.json_response(problem(400, "not an upload in progress"), status=400)
        if str(params.get("segment_index")) != str(media["upload"]["segments"]):
            return web.json_response(problem(400, "segment_index out of order"), status=400)
        media["upload"] = {
            "data": media["upload"]["data"] + segment["data"],
            "segments": media["upload"]["segments"] + 1,
        }
        return web.Response(status=204)

    async def _media_finalize(self, request: web.Request) -> web.StreamResponse:
        """Step 3: a GIF or video is then processed (`pending`, ask again at once)."""
        media = self._media_of(request)
        if media is None or media["state"] != "initialized":
            return web.json_response(problem(400, "not an upload in progress"), status=400)
        if len(media["upload"]["data"]) != media["total_bytes"]:
            return web.json_response(problem(400, "total_bytes does not match"), status=400)
        media["state"] = "pending"
        return web.json_response({"data": self._media_data(media)})

    async def _media_status(self, request: web.Request) -> web.StreamResponse:
        """Step 4, `?command=STATUS&media_id=`: the processing is done by the first ask."""
        media = self._media_of(request, request.query.get("media_id"))
        if media is None or request.query.get("command") != "STATUS":
            return web.json_response(problem(404, "Not Found"), status=404)
        media["state"] = "succeeded"
        return web.json_response({"data": self._media_data(media)})

    def _media_of(self, request: web.Request, media_id: str | None = None) -> Answer | None:
        if _check_bearer(request) is not None:
            return None
        wanted = media_id or request.match_info.get("id")
        return next((m for m in self.media if m["id"] == wanted), None)

    @staticmethod
    def _media_data(media: Answer) -> Answer:
        info = {"state": media["state"]}
        if media["state"] == "pending":
            info["check_after_secs"] = 0
        return {"id": media["id"], "media_key": f"7_{media['id']}", "processing_info": info}

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        """DELETE /2/tweets/{id} and /2/dm_events/{id}: `{"data": {"deleted": true}}`."""
        denied = _check_bearer(request)
        if denied is not None:
            return denied
        kind, target = request.path.split("/")[2], request.match_info["id"]
        known = self.tweets if kind == "tweets" else self.dms
        key = "id" if kind == "tweets" else "dm_event_id"
        if (kind, target) in self.deleted or not any(item[key] == target for item in known):
            return web.json_response(problem(404, "Not Found"), status=404)
        self.deleted.append((kind, target))
        return web.json_response({"data": {"deleted": True}})

    def _uploaded(self, items: Any, key: str, category: str) -> bool:
        """Every item names a media uploaded here for this use (a DM's or a post's)."""
        ours = {
            m["id"]
            for m in self.media
            if m["media_category"].startswith(category)
            and m.get("state", "succeeded") == "succeeded"
        }
        return (
            isinstance(items, list)
            and bool(items)
            and all(isinstance(i, dict) and i.get(key) in ours for i in items)
        )

    async def _dm_media(self, request: web.Request) -> web.StreamResponse:
        if not call_of(request).headers.get("Authorization", "").startswith("Bearer "):
            return web.json_response(problem(401), status=401)
        info = request.match_info
        key = f"{info['dm_id']}/{info['media_id']}/{info['resource_id']}"
        if key not in self.files.files:
            return web.json_response(problem(404, "Could not find the media"), status=404)
        return await self.files.serve(request, key)

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
