"""X (Twitter) adapter: Account Activity API webhooks in, API v2 replies out (network `x`).

Inbound (https://docs.x.com/x-api/account-activity/introduction, .../webhooks/quickstart):
- GET CRC: `crc_token` -> `{"response_token": "sha256=<base64 HMAC-SHA256>"}`, keyed with
  the consumer secret; POSTs carry `x-twitter-webhooks-signature: sha256=<base64>` over
  the raw body.
- `direct_message_events` (`message_create`): conversation `dm:<for_user_id>:<other user>`,
  `message_id` = the DM event id. A DM the account itself sent (sender = `for_user_id`:
  from the X app, or by us) is `from_team`; the relay drops those it sent itself.
- `tweet_create_events` (mentions and replies): conversation `tweet:<conversation id>`
  when the payload has one, else `tweet:<tweet id>`; `message_id` = the tweet id. Tweets by
  the account itself are `from_team` (in the conversation of the tweet they answer);
  retweets are ignored. The v1.1 tweet objects of this API carry no
  conversation root, so `reply_context.in_reply_to_tweet_id` lets the relay attach a reply
  to the conversation that holds that tweet (a customer's or one of ours).
- `tweet_delete_events`: a customer's deleted tweet is a `CustomerRemoval`.
- Favorites, follows, typing and read events are not messages.

Media: a DM's file is fetched through API v2's Download DM Media with the bearer token
(its `media_id` holds that endpoint's path); media of public posts from their URL.

Outbound (bearer token with DM / tweet write access): a DM via
`POST /2/dm_conversations/with/{participant_id}/messages`, a reply post via `POST /2/tweets`
with `reply.in_reply_to_tweet_id`. 429 and 5xx are temporary (`x-rate-limit-reset`).
An image from the team is uploaded with `POST /2/media/upload` and sent as the DM's
`attachments` or the post's `media.media_ids`. X has no edit; `DELETE /2/tweets/{id}` and
`DELETE /2/dm_events/{id}` delete what we sent.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import aiohttp

from bot.config import ConfigError, Settings
from bot.networks.base import (
    Attachment,
    CustomerRemoval,
    DeliveryError,
    HandshakeAnswer,
    InboundEvent,
    InboundMessage,
    MediaStream,
    MediaUnavailable,
    NotSupported,
    OutboundReply,
    OutgoingFile,
    PayloadError,
    PublicMention,
    SentMessagesFixed,
    SentReceipt,
    SignatureError,
    WebhookError,
)
from bot.networks.http import (
    UPLOAD_TIMEOUT_SECONDS,
    HttpAnswer,
    JsonHttp,
    JSONObject,
    file_form,
    retry_after,
)
from bot.networks.media import download
from bot.networks.payload import (
    ParseResult,
    SkippedItem,
    as_object,
    context_id,
    epoch,
    get_id,
    get_object,
    item_ids,
    load_object,
    media_line,
    opt_id,
    opt_list,
    opt_object,
    opt_str,
    shown,
    unknown_part,
)
from bot.networks.rating import DIGIT_HINT

SIGNATURE_HEADER = "x-twitter-webhooks-signature"
# X's crc_token is a random URL-safe token (base64url or a UUID). Only such tokens are
# signed: the CRC answer is the very HMAC that signs webhook POSTs, so signing anything
# else (a JSON body) would forge a webhook signature. A JSON object cannot match this.
CRC_TOKEN = re.compile(r"[A-Za-z0-9_=-]{8,256}")
CREATED_AT_FORMAT = "%a %b %d %H:%M:%S %z %Y"  # "Wed Nov 21 00:13:13 +0000 2018"
# What X takes as media, and up to which size: "Image: 5 MB, GIF: 15 MB, Video: 512 MB"
# (https://docs.x.com/x-api/media/introduction). Images go in one call, GIFs and videos in
# chunks; the category is `dm_<kind>` or `tweet_<kind>`.
MB = 1024 * 1024
MEDIA_KINDS = {
    "image/jpeg": "image",
    "image/png": "image",
    "image/webp": "image",
    "image/gif": "gif",
    "video/mp4": "video",
}
MEDIA_LIMITS = {"image": 5 * MB, "gif": 15 * MB, "video": 512 * MB}
SEGMENT = 4 * MB  # one append; the only part of a file held in memory
PROCESSING_WAIT = 120.0  # seconds to wait for X to process a GIF or video
# Download DM Media's `resource_id` (documented as at most 50 characters; GIFs have more)
DM_RESOURCE = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def x_signature(secret: str, data: bytes) -> str:
    """`sha256=` + base64 HMAC-SHA256: the CRC answer and the POST signature alike."""
    digest = hmac.new(secret.encode(), data, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode()


class XNetwork(SentMessagesFixed):
    label = "X"
    """X direct messages and mentions of one account (network `x`)."""

    name = "x"

    def __init__(
        self,
        *,
        consumer_secret: str,
        bearer_token: str,
        api_url: str = "https://api.x.com",
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._consumer_secret = consumer_secret
        self._bearer_token = bearer_token
        self._api_url = api_url.rstrip("/")
        self._http = JsonHttp("X", session)

    @classmethod
    def from_settings(
        cls, settings: Settings, session: aiohttp.ClientSession | None = None
    ) -> XNetwork:
        if not (settings.x_consumer_secret and settings.x_bearer_token):
            raise ConfigError("X_CONSUMER_SECRET and X_BEARER_TOKEN are both needed for X")
        return cls(
            consumer_secret=settings.x_consumer_secret,
            bearer_token=settings.x_bearer_token,
            api_url=settings.x_api_url,
            session=session,
        )

    # -- inbound --------------------------------------------------------------------
    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        given = headers.get(SIGNATURE_HEADER)
        if given is None:
            given = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER), None)
        if not given:
            raise SignatureError("missing signature")
        expected = x_signature(self._consumer_secret, body)
        if not hmac.compare_digest(expected.encode(), given.strip().encode()):
            raise SignatureError("bad signature")

    def handshake(self, query: Mapping[str, str]) -> HandshakeAnswer:
        token = query.get("crc_token")
        if not token:
            raise WebhookError("missing crc_token")
        if not CRC_TOKEN.fullmatch(token):
            raise WebhookError("crc_token is not shaped like X's (8-256 URL-safe characters)")
        answer = {"response_token": x_signature(self._consumer_secret, token.encode())}
        return HandshakeAnswer(200, json.dumps(answer), content_type="application/json")

    def parse(self, body: bytes) -> list[InboundEvent]:
        return self.parse_report(body).logged(self.name)

    def parse_report(self, body: bytes) -> ParseResult:
        """Events plus the items that were skipped; raises only for an unusable body."""
        data = load_object(body)
        account = get_id(data, "for_user_id")
        raw_users = data.get("users")
        users: Mapping[str, Any] = raw_users if isinstance(raw_users, dict) else {}
        result = ParseResult()
        for list_name in ("direct_message_events", "tweet_create_events"):
            for index, raw in enumerate(opt_list(data, list_name)):
                try:
                    item = as_object(raw, "event")
                    event = (
                        self._direct_message(account, users, item)
                        if list_name == "direct_message_events"
                        else self._tweet(account, item)
                    )
                except PayloadError as exc:
                    ids = item_ids(raw, ("id",), ("id_str",), ("message_create", "sender_id"))
                    result.skipped.append(SkippedItem(f"{list_name}[{index}]", ids, exc.message))
                    continue
                if event is not None:
                    result.events.append(event)
        for index, raw in enumerate(opt_list(data, "tweet_delete_events")):
            try:
                removal = self._tweet_deleted(account, as_object(raw, "delete event"))
                if removal is not None:
                    result.events.append(removal)
            except PayloadError as exc:
                ids = item_ids(raw, ("status", "id"), ("status", "user_id"))
                result.skipped.append(
                    SkippedItem(f"tweet_delete_events[{index}]", ids, exc.message)
                )
        return result

    def _tweet_deleted(self, account: str, item: JSONObject) -> CustomerRemoval | None:
        """A customer deleted a tweet. The event names only the tweet, not its conversation:
        the `conversation_key` is empty and the tweet is found by its id (`target_id`)."""
        status = get_object(item, "status")
        tweet_id = get_id(status, "id")
        if opt_id(status, "user_id") == account:
            return None  # the account's own tweet
        return CustomerRemoval(
            network=self.name,
            conversation_key="",
            event_id=f"{tweet_id}:deleted",
            target_id=tweet_id,
            at=epoch(item.get("timestamp_ms"), milliseconds=True, what="timestamp_ms"),
        )

    def _direct_message(
        self, account: str, users: Mapping[str, Any], item: JSONObject
    ) -> InboundMessage | None:
        if item.get("type") != "message_create":
            return None
        create = get_object(item, "message_create")
        sender = get_id(create, "sender_id")
        ours = sender == account  # sent from the X app (or by us: the relay drops those)
        other = get_id(get_object(create, "target"), "recipient_id") if ours else sender
        data = get_object(create, "message_data")
        attachments = []
        attachment = opt_object(data, "attachment")
        media = opt_object(attachment, "media") if attachment else None
        if media is not None:
            attachments.append(_dm_file(get_id(item, "id"), _media(media)))
        text = _expand_urls(_without_media_link(data, media), opt_object(data, "entities"))
        user = users.get(sender)
        profile = user if isinstance(user, dict) else {}
        handle = opt_str(profile, "screen_name")
        return InboundMessage(
            network=self.name,
            conversation_key=f"dm:{account}:{other}",
            message_id=get_id(item, "id"),
            author_id=sender,
            author_name=opt_str(profile, "name") or handle or sender,
            author_handle=handle,
            text=shown(text, *(media_line(a) for a in attachments))
            or unknown_part(self.name, "empty direct message"),
            sent_at=epoch(
                item.get("created_timestamp"), milliseconds=True, what="created_timestamp"
            ),
            attachments=tuple(attachments),
            reply_context={"kind": "dm", "for_user_id": account, "participant_id": other},
            from_team=ours,
        )

    def _tweet(self, account: str, tweet: JSONObject) -> InboundMessage | None:
        user = get_object(tweet, "user")
        author = opt_id(user, "id_str") or get_id(user, "id")
        if tweet.get("retweeted_status") is not None:
            return None  # retweets are not messages
        tweet_id = opt_id(tweet, "id_str") or get_id(tweet, "id")
        extended = opt_object(tweet, "extended_tweet")
        source = extended or tweet
        raw_text = opt_str(source, "full_text") or opt_str(tweet, "text") or ""
        text = _expand_urls(raw_text, opt_object(source, "entities"))
        media_holder = opt_object(source, "extended_entities") or opt_object(source, "entities")
        attachments = [_media(as_object(m, "media")) for m in opt_list(media_holder or {}, "media")]
        root = opt_id(tweet, "conversation_id_str") or opt_id(tweet, "conversation_id")
        handle = opt_str(user, "screen_name")
        context: dict[str, Any] = {"kind": "tweet", "for_user_id": account, "tweet_id": tweet_id}
        in_reply_to = opt_id(tweet, "in_reply_to_status_id_str")
        if in_reply_to is not None:
            context["in_reply_to_tweet_id"] = in_reply_to
        ours = author == account  # posted from the X app (or by us: the relay drops those)
        return InboundMessage(
            network=self.name,
            conversation_key=f"tweet:{root or (in_reply_to if ours else None) or tweet_id}",
            message_id=tweet_id,
            author_id=author,
            author_name=opt_str(user, "name") or handle or author,
            author_handle=handle,
            text=shown(text, *(media_line(a) for a in attachments))
            or unknown_part(self.name, "empty tweet"),
            sent_at=_tweet_time(tweet),
            attachments=tuple(attachments),
            reply_context=context,
            in_reply_to=in_reply_to,
            from_team=ours,
        )

    # -- outbound -------------------------------------------------------------------
    def reply_target(self, reply_context: Mapping[str, Any]) -> str:
        return "x_reply" if reply_context.get("kind") == "tweet" else "x_dm"

    def public_link(self, reply_context: Mapping[str, Any], message_id: str) -> str | None:
        """A reply to a mention is a post: X serves any post at /i/web/status/<id>."""
        if reply_context.get("kind") != "tweet" or not message_id.isdigit():
            return None
        return f"https://x.com/i/web/status/{message_id}"

    async def send(self, reply: OutboundReply) -> SentReceipt:
        # X's DMs have no buttons: a rating question says how to answer in words.
        text = f"{reply.text}\n\n{DIGIT_HINT}" if reply.survey_id is not None else reply.text
        return await self._post(reply.reply_context, {"text": text})

    def file_limit(self, reply_context: Mapping[str, Any], mimetype: str) -> int:
        """Images (JPEG, PNG, WebP) of up to 5 MB, GIFs of up to 15 MB, MP4 videos of up
        to 512 MB; X takes no other files."""
        kind = MEDIA_KINDS.get(mimetype)
        if kind is None:
            raise NotSupported(f"X takes images, GIFs and MP4 videos only, not {mimetype}")
        return MEDIA_LIMITS[kind]

    async def send_file(self, reply_context: Mapping[str, Any], file: OutgoingFile) -> SentReceipt:
        """Upload the file (an image in one call, a GIF or video in chunks), then a DM with
        the media id as its attachment, or a reply post carrying it."""
        dm = reply_context.get("kind") == "dm"
        kind = MEDIA_KINDS[file.mimetype]
        category = f"{'dm' if dm else 'tweet'}_{kind}"
        if kind == "image":
            media_id = await self._upload_image(file, category)
        else:
            media_id = await self._upload_chunked(file, category)
        if dm:
            return await self._post(reply_context, {"attachments": [{"media_id": media_id}]})
        return await self._post(reply_context, {"media": {"media_ids": [media_id]}})

    async def _upload_image(self, file: OutgoingFile, category: str) -> str:
        """POST /2/media/upload, multipart, streamed from the spool file."""
        with file_form({"media_category": category}, "media", file) as form:
            answer = await self._http.post(
                f"{self._api_url}/2/media/upload",
                headers=self._auth,
                form=form,
                timeout=UPLOAD_TIMEOUT_SECONDS,
            )
        return _media_id(answer)

    async def _upload_chunked(self, file: OutgoingFile, category: str) -> str:
        """initialize, append (4 MB segments read from the spool file one at a time),
        finalize, then wait while X processes it (https://docs.x.com/x-api/media/quickstart/
        media-upload-chunked)."""
        base = f"{self._api_url}/2/media/upload"
        init = {"media_type": file.mimetype, "total_bytes": file.size, "media_category": category}
        media_id = _media_id(await self._http.post(f"{base}/initialize", init, self._auth))
        with open(file.path, "rb") as content:  # noqa: ASYNC230 (read in a thread below)
            index = 0
            while segment := await asyncio.to_thread(content.read, SEGMENT):
                form = aiohttp.FormData()
                form.add_field("segment_index", str(index))
                form.add_field("media", segment, filename=file.name, content_type=file.mimetype)
                answer = await self._http.post(
                    f"{base}/{media_id}/append", headers=self._auth, form=form, timeout=120
                )
                if not 200 <= answer.status < 300:
                    raise _upload_error(answer)
                index += 1
        answer = await self._http.post(f"{base}/{media_id}/finalize", headers=self._auth)
        _media_id(answer)
        deadline = asyncio.get_running_loop().time() + PROCESSING_WAIT
        while (wait := _processing_wait(answer)) is not None:
            if asyncio.get_running_loop().time() + wait > deadline:
                raise DeliveryError("X is still processing the file", temporary=True)
            await asyncio.sleep(wait)
            answer = await self._http.request(
                "GET", f"{base}?command=STATUS&media_id={media_id}", headers=self._auth
            )
            _media_id(answer)
        return media_id

    async def edit(self, reply: OutboundReply, message_id: str) -> None:
        raise NotSupported("X does not let a post or a DM be edited through its API")

    async def delete(
        self, reply_context: Mapping[str, Any], message_id: str, sent: datetime
    ) -> None:
        """DELETE /2/tweets/{id} for a reply post, DELETE /2/dm_events/{id} for a DM."""
        if not message_id.isdigit():
            raise DeliveryError(f"cannot delete: {message_id!r} is not an X id", temporary=False)
        kind = "dm_events" if reply_context.get("kind") == "dm" else "tweets"
        answer = await self._http.delete(f"{self._api_url}/2/{kind}/{message_id}", self._auth)
        if not 200 <= answer.status < 300:
            raise _delivery_error(answer)

    async def _post(self, context: Mapping[str, Any], content: JSONObject) -> SentReceipt:
        """A DM to the participant, or a post replying to the conversation's tweet."""
        kind = context.get("kind")
        if kind == "dm":
            participant = context_id(context, "participant_id")
            url = f"{self._api_url}/2/dm_conversations/with/{participant}/messages"
            id_key = "dm_event_id"
        elif kind == "tweet":
            url = f"{self._api_url}/2/tweets"
            content = content | {"reply": {"in_reply_to_tweet_id": context_id(context, "tweet_id")}}
            id_key = "id"
        else:
            raise DeliveryError(
                f"cannot reply: unknown X conversation kind {kind!r}", temporary=False
            )
        answer = await self._http.post(url, content, self._auth)
        if 200 <= answer.status < 300:
            data = answer.data.get("data") if answer.data else None
            sent_id = data.get(id_key) if isinstance(data, dict) else None
            return SentReceipt(sent_id if isinstance(sent_id, str) else None)
        raise _delivery_error(answer)

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._bearer_token}"}

    # -- listening: recent search ----------------------------------------------------
    async def search_recent(
        self, query: str, since_id: str | None, next_token: str | None = None
    ) -> SearchPage:
        """One page of `GET /2/tweets/search/recent` (posts of the last 7 days, newest
        first; docs.x.com/x-api/posts/search-recent-posts): posts after `since_id`, and
        the page after `next_token`. 429 and 5xx raise a temporary `DeliveryError` with
        the wait (`x-rate-limit-reset`); `pause` says when the window is spent already."""
        params = {"query": query, **SEARCH_FIELDS}
        if since_id:
            params["since_id"] = since_id
        if next_token:
            params["next_token"] = next_token
        answer = await self._http.get(
            f"{self._api_url}/2/tweets/search/recent",
            self._auth,
            params=params,
        )
        if answer.status != 200:
            raise _delivery_error(answer)
        data = answer.data or {}
        meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
        assert isinstance(meta, dict)
        return SearchPage(
            mentions=_found_posts(data),
            newest_id=opt_id(meta, "newest_id"),
            next_token=opt_str(meta, "next_token"),
            pause=_spent_window(answer),
        )

    async def close(self) -> None:
        await self._http.close()

    async def open_media(self, attachment: Attachment) -> MediaStream:
        """A DM's file is served to the account's tokens only (its `ton.twitter.com` or
        `video.twimg.com/dm_*` URL wants an OAuth 1.0a signature), so it is read through
        API v2's Download DM Media with the account's OAuth 2.0 user token, the one that
        sends DMs; `media_id` holds that endpoint's path. Media of public posts are
        fetched as anyone would, without a token."""
        if attachment.media_id and attachment.media_id.count("/") == 2:
            url = f"{self._api_url}/2/dm_conversations/media/{attachment.media_id}"
            auth = {"Authorization": f"Bearer {self._bearer_token}"}
            return await download("X", url, attachment, headers=auth)
        if not attachment.url:
            raise MediaUnavailable("X gave no URL for it", temporary=False)
        return await download("X", attachment.url, attachment, link=attachment.url)


def _media_id(answer: HttpAnswer) -> str:
    """The media id of an upload step's answer; a refusal is about this file."""
    data = answer.data.get("data") if answer.data else None
    media_id = data.get("id") if isinstance(data, dict) else None
    if not (200 <= answer.status < 300 and isinstance(media_id, str) and media_id):
        raise _upload_error(answer)
    info = data.get("processing_info") if isinstance(data, dict) else None
    if isinstance(info, dict) and info.get("state") == "failed":
        error = info.get("error")
        why = error.get("message") if isinstance(error, dict) else None
        raise NotSupported(f"X could not process it ({why or 'failed'})")
    return media_id


def _processing_wait(answer: HttpAnswer) -> float | None:
    """Seconds until X's processing of an upload is worth asking about again; None when
    it is done (or there was none)."""
    data = answer.data.get("data") if answer.data else None
    info = data.get("processing_info") if isinstance(data, dict) else None
    if not isinstance(info, dict) or info.get("state") not in ("pending", "in_progress"):
        return None
    wait = info.get("check_after_secs")
    return float(wait) if isinstance(wait, int | float) and wait >= 0 else 1.0


def _upload_error(answer: HttpAnswer) -> DeliveryError:
    """Throttling and outages are retried; any other refusal is about this file."""
    error = _delivery_error(answer)
    if error.temporary:
        return error
    return NotSupported(f"X refused the upload: {_x_reason(answer)}")


# What the recent search returns with each post: enough to show it and answer it.
SEARCH_FIELDS = {
    "max_results": "100",
    "tweet.fields": "created_at,author_id,conversation_id",
    "expansions": "author_id",
    "user.fields": "name,username",
}


@dataclass(frozen=True)
class SearchPage:
    mentions: list[PublicMention]
    newest_id: str | None
    next_token: str | None
    pause: float | None  # seconds until the rate-limit window resets, when it is spent


def _found_posts(data: JSONObject) -> list[PublicMention]:
    """The page's posts as mentions; one without an id or text is skipped."""
    includes = data.get("includes") if isinstance(data.get("includes"), dict) else {}
    assert isinstance(includes, dict)
    users = {
        str(user.get("id")): user for user in opt_list(includes, "users") if isinstance(user, dict)
    }
    found = []
    for raw in opt_list(data, "data"):
        if not isinstance(raw, dict):
            continue
        post_id, text = opt_id(raw, "id"), opt_str(raw, "text")
        if post_id is None or text is None:
            continue
        author = opt_id(raw, "author_id") or ""
        user = users.get(author, {})
        handle = opt_str(user, "username")
        root = opt_id(raw, "conversation_id") or post_id
        found.append(
            PublicMention(
                source="x",
                external_id=post_id,
                author_id=author,
                author_name=opt_str(user, "name") or handle or author or "someone on X",
                author_handle=handle,
                text=text,
                sent_at=_iso_time(opt_str(raw, "created_at")),
                url=f"https://x.com/{handle or 'i/web'}/status/{post_id}",
                network="x",
                conversation_key=f"tweet:{root}",
                reply_context={"kind": "tweet", "tweet_id": post_id},
            )
        )
    return found


def _iso_time(value: str | None) -> datetime:
    """API v2's `created_at` ("2026-12-06T10:00:00.000Z"); now when missing or odd."""
    try:
        return datetime.fromisoformat((value or "").replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return datetime.now(UTC)


def _spent_window(answer: HttpAnswer, now: datetime | None = None) -> float | None:
    """Seconds until `x-rate-limit-reset` when `x-rate-limit-remaining` is 0."""
    remaining = answer.headers.get("x-rate-limit-remaining")
    reset = answer.headers.get("x-rate-limit-reset")
    if remaining != "0" or not (reset and reset.isdigit()):
        return None
    return max(0.0, int(reset) - (now or datetime.now(UTC)).timestamp())


def _delivery_error(answer: HttpAnswer, now: datetime | None = None) -> DeliveryError:
    """429 / 5xx are temporary (wait until `x-rate-limit-reset`); other errors are final."""
    reason = _x_reason(answer)
    if answer.status == 429 or answer.status >= 500:
        wait = retry_after(answer.headers)
        reset = answer.headers.get("x-rate-limit-reset")
        if wait is None and reset and reset.isdigit():
            wait = max(0.0, int(reset) - (now or datetime.now(UTC)).timestamp())
        return DeliveryError(
            f"X is busy or rate-limiting; the reply will be retried ({reason})",
            temporary=True,
            retry_after=wait,
        )
    return DeliveryError(f"X refused the reply: {reason}", temporary=False)


def _x_reason(answer: HttpAnswer) -> str:
    """The words of an X API v2 error (`detail`/`title`, or `errors[].message`)."""
    data = answer.data or {}
    for key in ("detail", "title"):
        if isinstance(data.get(key), str) and data[key]:
            return f"{data[key]} (HTTP {answer.status})"
    errors = data.get("errors")
    if isinstance(errors, list):
        found = [e.get("message") or e.get("detail") for e in errors if isinstance(e, dict)]
        words = [w for w in found if isinstance(w, str) and w]
        if words:
            return f"{'; '.join(words)} (HTTP {answer.status})"
    return f"HTTP {answer.status}"


def _expand_urls(text: str, entities: JSONObject | None) -> str:
    """Replace t.co links by their `expanded_url` (from `entities.urls`)."""
    if not entities:
        return text
    for raw in opt_list(entities, "urls"):
        if isinstance(raw, dict):
            short, full = raw.get("url"), raw.get("expanded_url")
            if isinstance(short, str) and short and isinstance(full, str) and full:
                text = text.replace(short, full)
    return text


def _media(media: JSONObject) -> Attachment:
    """A photo, or a video / GIF as its best MP4 (`video_info.variants`)."""
    kind = opt_str(media, "type")
    media_id = opt_id(media, "id_str") or opt_id(media, "id")
    if kind == "photo":
        return Attachment("image", url=opt_str(media, "media_url_https"), media_id=media_id)
    if kind in ("video", "animated_gif"):
        url, mimetype = _best_variant(opt_object(media, "video_info") or {})
        return Attachment(
            "gif" if kind == "animated_gif" else "video",
            url=url or opt_str(media, "expanded_url") or opt_str(media, "media_url_https"),
            media_id=media_id,
            mimetype=mimetype,
        )
    return Attachment(kind or "media", title=unknown_part("x", kind or "media"))


def _dm_file(dm_id: str, attachment: Attachment) -> Attachment:
    """A DM's file with the path of GET /2/dm_conversations/media/{dm_id}/{media_id}/
    {resource_id} as its `media_id` (the resource id is its URL's last segment)."""
    resource = (attachment.url or "").split("?", 1)[0].rsplit("/", 1)[-1]
    if not (attachment.media_id and DM_RESOURCE.fullmatch(resource)):
        return attachment
    return replace(attachment, media_id=f"{dm_id}/{attachment.media_id}/{resource}")


def _best_variant(video_info: JSONObject) -> tuple[str | None, str | None]:
    """The MP4 variant with the highest bitrate (X lists an HLS playlist too)."""
    best: tuple[float, str, str] | None = None
    for raw in opt_list(video_info, "variants"):
        if not isinstance(raw, dict):
            continue
        url, content_type = raw.get("url"), raw.get("content_type")
        bitrate = raw.get("bitrate", 0)
        if not (isinstance(url, str) and content_type == "video/mp4"):
            continue
        rate = float(bitrate) if isinstance(bitrate, int | float) else 0.0
        if best is None or rate > best[0]:
            best = (rate, url, content_type)
    return (best[1], best[2]) if best else (None, None)


def _without_media_link(data: JSONObject, media: JSONObject | None) -> str:
    """A DM's text without the t.co link X appends for its media."""
    text = opt_str(data, "text") or ""
    link = opt_str(media, "url") if media else None
    return text.replace(link, "").strip() if link else text


def _tweet_time(tweet: JSONObject) -> datetime:
    if tweet.get("timestamp_ms") is not None:
        return epoch(tweet["timestamp_ms"], milliseconds=True, what="timestamp_ms")
    created = opt_str(tweet, "created_at")
    if created is None:
        raise PayloadError("tweet has no timestamp")
    try:
        return datetime.strptime(created, CREATED_AT_FORMAT).astimezone(UTC)
    except ValueError:
        raise PayloadError("created_at is not a tweet date") from None
