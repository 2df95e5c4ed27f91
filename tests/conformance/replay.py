"""Replaying the shared conformance corpus (`refs/conformance/`) through the whole bot.

The corpus holds webhook payloads written by others (SDK test suites, platform
docs, other support tools); `MANIFEST.json` says what a user expects from each.
A payload is sent signed exactly as its platform signs it, with fresh timestamps
(so reply windows behave as for live traffic) and every other field unchanged,
except where the corpus says a field is set at run time (`SOURCES.md`): Slack
events point at a real conversation thread, and the scenarios below point at
what the bot itself sent.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlmodel import col

from storage.models import Conversation, CustomerMessage, TeamReply
from tests.harness import INBOX, META_SECRET, SIGNING_SECRET, TELEGRAM_SECRET, X_SECRET, Bot
from tests.refs import REFS, ref_json
from tests.signing import meta_headers, slack_form, slack_headers, telegram_headers, x_headers

CORPUS = REFS / "conformance"
WEBHOOK = {"telegram": "telegram", "meta": "meta", "whatsapp": "whatsapp", "x": "x"}
# Keys holding a platform's timestamp: refreshed to now, in the same unit and type.
_EPOCH_KEYS = frozenset(
    {"date", "edit_date", "timestamp", "time", "timestamp_ms", "created_time", "created_timestamp"}
)
_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}")
_X_DATE_KEYS = frozenset({"created_at"})
# The Slack conversation the corpus's Slack events are pointed at (SOURCES.md).
SLACK_BASE = "tg_photo_caption"
# Calls that change or remove a message already sent: never a new message.
CORRECTIONS = frozenset({"editMessageText", "editMessageCaption", "deleteMessage"})


def manifest() -> list[dict[str, Any]]:
    """The corpus entries, or [] when the folder is absent (the test then skips or fails)."""
    path = CORPUS / "MANIFEST.json"
    if not path.is_file():
        return []
    entries: list[dict[str, Any]] = json.loads(path.read_text())
    return entries


def entry(name: str) -> dict[str, Any]:
    return next(e for e in manifest() if e["name"] == name)


def fresh(value: Any, now: float) -> Any:
    """`value` with every platform timestamp moved to `now`, in its own unit and type."""
    if isinstance(value, list):
        return [fresh(item, now) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in _EPOCH_KEYS and _numeric(item):
            millis = float(item) > 1e11
            stamp = int(now * 1000) if millis else int(now)
            out[key] = str(stamp) if isinstance(item, str) else stamp
        elif key in _EPOCH_KEYS and isinstance(item, str) and _ISO.fullmatch(item):
            out[key] = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")
        elif key in _X_DATE_KEYS and isinstance(item, str) and item[:3].isalpha():
            out[key] = _x_date(now)
        else:
            out[key] = fresh(item, now)
    return out


def _numeric(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    return isinstance(value, str) and value.isdigit()


def _x_date(now: float) -> str:
    """X's v1.1 `created_at`: `Thu Dec 19 11:27:49 +0000 2019`."""
    moment = datetime.fromtimestamp(now, UTC)
    return moment.strftime("%a %b %d %H:%M:%S +0000 %Y")


@dataclass
class Counts:
    conversations: int
    customer_messages: int
    team_replies: int
    slack_posts: int
    network_sends: int


@dataclass
class Replay:
    """One bot, the entries replayed into it, and what each left behind."""

    bot: Bot
    sent: dict[str, Any] = field(default_factory=dict)  # name -> payload as sent
    statuses: dict[str, int] = field(default_factory=dict)
    thread: tuple[str, str] | None = None  # the Slack thread Slack events point at
    reply_ts: dict[str, str] = field(default_factory=dict)  # slack entry -> its message ts
    # What existed just before each entry was posted (after what it builds on).
    before: dict[str, Counts] = field(default_factory=dict)
    posts_before: dict[str, int] = field(default_factory=dict)
    sends_before: dict[str, int] = field(default_factory=dict)

    async def counts(self) -> Counts:
        async with self.bot.services.db.read() as session:
            counted = []
            for model in (Conversation, CustomerMessage, TeamReply):
                statement = select(func.count()).select_from(model)
                counted.append((await session.execute(statement)).scalar_one())
        conversations, messages, replies = counted
        return Counts(
            conversations, messages, replies, len(self.slack_posts()), len(self.network_sends())
        )

    def slack_posts(self) -> list[dict[str, Any]]:
        """Everything the bot posted or updated in Slack, with its visible text."""
        calls = self.bot.slack.calls_to("chat.postMessage") + self.bot.slack.calls_to("chat.update")
        uploads = self.bot.slack.calls_to("files.*")
        return [c.params for c in calls + uploads if c.status == 200]

    def slack_text(self, since: int = 0) -> str:
        return "\n".join(visible(params) for params in self.slack_posts()[since:])

    def network_sends(self) -> list[dict[str, Any]]:
        """What reached any network fake (Telegram, Graph, X, the generic sink)."""
        sends: list[dict[str, Any]] = []
        for fake in (self.bot.telegram, self.bot.graph, self.bot.x, self.bot.sink):
            sends.extend(
                c.params for c in fake.calls if c.status == 200 and c.method not in CORRECTIONS
            )
        return sends

    async def settle(self) -> None:
        """Wait until the dispatcher has relayed and sent everything due."""

        async def idle() -> bool:
            gauges = await self.bot.services.repo.gauges(datetime.now(UTC))
            return gauges["pending"] == 0

        await self.bot.until(idle, timeout=10, what="the dispatcher to finish")

    # -- sending ------------------------------------------------------------
    async def send(self, name: str) -> int:
        """Replay corpus entry `name` (after what it builds on); return the HTTP status."""
        spec = entry(name)
        if spec.get("reuse_ids_from") and spec["reuse_ids_from"] not in self.sent:
            await self.send(spec["reuse_ids_from"])
        payload = fresh(ref_json(f"conformance/{spec['file']}"), time.time())
        payload = await self._prepare(spec, payload)
        self.before[name] = await self.counts()
        self.posts_before[name] = len(self.slack_posts())
        self.sends_before[name] = len(self.network_sends())
        status = await self._post(spec, payload)
        self.sent[name] = payload
        self.statuses[name] = status
        await self.settle()
        return status

    async def _post(self, spec: dict[str, Any], payload: Any) -> int:
        network = spec["network"]
        if network == "slack":
            if spec.get("form"):
                body = slack_form(payload)
                content = "application/x-www-form-urlencoded"
            else:
                body = json.dumps(payload).encode()
                content = "application/json"
            headers = {"Content-Type": content, **slack_headers(body, SIGNING_SECRET)}
            response = await self.bot.client.post("/slack/events", data=body, headers=headers)
            return response.status
        body = json.dumps(payload).encode()
        signed = {
            "telegram": telegram_headers(TELEGRAM_SECRET),
            "meta": meta_headers(body, META_SECRET),
            "whatsapp": meta_headers(body, META_SECRET),
            "x": x_headers(body, X_SECRET),
        }[network]
        response = await self.bot.post_raw(f"/webhooks/{WEBHOOK[network]}", body, signed)
        return response.status

    async def _prepare(self, spec: dict[str, Any], payload: Any) -> Any:
        scenario = spec.get("scenario")
        if spec["network"] == "slack":
            return await self._slack(spec, payload)
        if scenario == "echo_own":
            return await self._echo_own(payload)
        if scenario == "wa_status_own":
            return await self._wa_status_own(payload)
        if scenario == "x_delete":
            return await self._x_delete(payload)
        if scenario == "x_reply_to_ours":
            return await self._x_reply_to_ours(payload)
        for alias, real in (spec.get("id_alias") or {}).items():
            payload = json.loads(json.dumps(payload).replace(alias, real))
        return payload

    async def team_reply(self, text: str) -> str:
        """A person answers in the thread of the latest conversation; its network id."""
        root = await self.bot.root(INBOX, len(self.bot.slack.roots(INBOX)) - 1)
        await self.bot.thread_reply(INBOX, root["ts"], text)
        await self.settle()

        async def sent_id() -> str | None:
            async with self.bot.services.db.read() as session:
                statement = (
                    select(col(TeamReply.external_id))
                    .where(col(TeamReply.source) == "slack")
                    .order_by(col(TeamReply.id).desc())
                    .limit(1)
                )
                return (await session.execute(statement)).scalar_one_or_none()

        return await self.bot.until(sent_id, what="the reply's network id")

    async def _slack(self, spec: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        """Point a Slack event at a real conversation thread, with fresh ids (SOURCES.md)."""
        if self.thread is None:
            await self.send(SLACK_BASE)
            root = await self.bot.root(INBOX)
            self.thread = (INBOX, root["ts"])
        channel, thread_ts = self.thread
        payload["event_id"] = f"Ev{self.bot.next_id('event'):08d}"
        payload["event_time"] = int(time.time())
        event = payload.get("event")
        if not isinstance(event, dict) or spec["expect"].get("not_subscribed"):
            return payload
        event["channel"] = channel
        subtype = event.get("subtype")
        if subtype in ("message_changed", "message_deleted"):
            if "slack_enterprise_user_reply" not in self.sent:
                await self.send("slack_enterprise_user_reply")
            edited = self.reply_ts["slack_enterprise_user_reply"]
            for key in ("message", "previous_message"):
                if isinstance(event.get(key), dict):
                    event[key]["thread_ts"] = thread_ts
                    event[key]["ts"] = edited
            if subtype == "message_deleted":
                event["deleted_ts"] = edited
            event["ts"] = event["event_ts"] = self._slack_ts()
            return payload
        if "thread_ts" in event or event.get("type") == "message":
            event["thread_ts"] = thread_ts
        text = str(event.get("text") or "")
        user = str(event.get("user") or event.get("bot_id") or "")
        ts = self.bot.slack.add_message(channel, text, user=user, thread_ts=thread_ts)["ts"]
        event["ts"] = event["event_ts"] = ts
        self.reply_ts[spec["name"]] = ts
        return payload

    def _slack_ts(self) -> str:
        return f"{time.time():.6f}"

    async def _echo_own(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Messenger's echo of the reply Relaydesk sent: its mid and text (SOURCES.md)."""
        messaging = payload["entry"][0]["messaging"][0]
        page, customer = messaging["sender"]["id"], messaging["recipient"]["id"]
        await self._customer_writes_messenger(page, customer)
        text = "Your order ships today."
        mid = await self.team_reply(text)
        raw = json.dumps(payload)
        return json.loads(
            raw.replace("<<OUR_MESSENGER_MID>>", mid).replace("<<OUR_REPLY_TEXT>>", text)
        )

    async def _customer_writes_messenger(self, page: str, customer: str) -> None:
        now = int(time.time() * 1000)
        message = {
            "object": "page",
            "entry": [
                {
                    "id": page,
                    "time": now,
                    "messaging": [
                        {
                            "sender": {"id": customer},
                            "recipient": {"id": page},
                            "timestamp": now,
                            "message": {"mid": f"m_customer_{now}", "text": "Where is my order?"},
                        }
                    ],
                }
            ],
        }
        body = json.dumps(message).encode()
        response = await self.bot.post_raw("/webhooks/meta", body, meta_headers(body, META_SECRET))
        assert response.status == 200, await response.text()
        await self.settle()

    async def _wa_status_own(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A WhatsApp status for the reply Relaydesk sent: its id and recipient (SOURCES.md)."""
        value = payload["entry"][0]["changes"][0]["value"]
        status = value["statuses"][0]
        customer = status["recipient_id"]
        phone = self.bot.settings.whatsapp_phone_number_id or ""
        await self._customer_writes_whatsapp(phone, customer)
        wamid = await self.team_reply("Thanks, we are on it.")
        value["metadata"]["phone_number_id"] = phone
        status["id"] = wamid
        return payload

    async def _customer_writes_whatsapp(self, phone: str, customer: str) -> None:
        now = str(int(time.time()))
        message = {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "1",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "15550000000",
                                    "phone_number_id": phone,
                                },
                                "contacts": [{"profile": {"name": "Dana"}, "wa_id": customer}],
                                "messages": [
                                    {
                                        "from": customer,
                                        "id": f"wamid.customer{now}",
                                        "timestamp": now,
                                        "type": "text",
                                        "text": {"body": "Is my order on its way?"},
                                    }
                                ],
                            },
                        }
                    ],
                }
            ],
        }
        body = json.dumps(message).encode()
        response = await self.bot.post_raw(
            "/webhooks/whatsapp", body, meta_headers(body, META_SECRET)
        )
        assert response.status == 200, await response.text()
        await self.settle()

    async def _x_delete(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The deletion of the tweet of x_reply_tweet (SOURCES.md)."""
        if "x_reply_tweet" not in self.sent:
            await self.send("x_reply_tweet")
        tweet = self.sent["x_reply_tweet"]["tweet_create_events"][0]
        status = payload["tweet_delete_events"][0]["status"]
        status["id"] = tweet["id_str"]
        status["user_id"] = tweet["user"]["id_str"]
        payload["for_user_id"] = self.sent["x_reply_tweet"]["for_user_id"]
        return payload

    async def _x_reply_to_ours(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A customer's answer to the reply tweet Relaydesk posted for x_reply_tweet."""
        if "x_reply_tweet" not in self.sent:
            await self.send("x_reply_tweet")
        ours = await self.team_reply("Please try restarting it.")
        tweet = payload["tweet_create_events"][0]
        tweet["in_reply_to_status_id"] = int(ours)
        tweet["in_reply_to_status_id_str"] = ours
        tweet["id"] = int(time.time() * 1000)
        tweet["id_str"] = str(tweet["id"])
        tweet["text"] = "Thanks, that fixed it!"
        return payload


def visible(params: dict[str, Any]) -> str:
    """The text a person sees in a Slack post: its `text`, blocks and file names."""
    parts = [str(params.get("text") or "")]
    parts.extend(_block_texts(params.get("blocks")))
    for key in ("filename", "title", "initial_comment", "files"):
        if key in params:
            parts.append(
                json.dumps(params[key]) if not isinstance(params[key], str) else params[key]
            )
    return "\n".join(part for part in parts if part)


def _block_texts(value: Any) -> list[str]:
    if isinstance(value, list):
        return [text for item in value for text in _block_texts(item)]
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            if key in ("text", "url", "image_url", "alt_text") and isinstance(item, str):
                found.append(item)
            else:
                found.extend(_block_texts(item))
        return found
    return []


def unescape(text: str) -> str:
    """Slack's three entities, as the reader sees them."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
