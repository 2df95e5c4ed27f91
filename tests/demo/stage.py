"""The demo's stage: the real bot on SQLite and in-memory coordination, against
the tests' local stand-ins for Slack and the networks (`tests/harness.py`).

Customers write through the networks' own webhook formats, signed exactly as
the platforms sign them; team members act through signed Slack events, button
clicks and slash commands. The app's timers run (the escalation sweep every
`SWEEP_SECONDS`), so a customer left waiting past `SLA_MINUTES` pages the
person on call as in production. Nothing leaves the machine.

The stage plays in a time zone where it is morning now, so "today" (for
`/social-stats` and the daily summary) holds the whole morning whenever the
demo runs, and the daily summary job is never due while it plays.

The bot's clock is real time, which a scene may move forward: the desk closes for
lunch (`BUSINESS_HOURS`) a few minutes after the stage starts, later than the
morning's scenes take, and only the last scene skips the clock to it.
"""

from __future__ import annotations

import asyncio
import json
import math
import mimetypes
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tests.fakes import FakeSlack
from tests.harness import (
    GENERIC_SECRET,
    INBOX,
    META_SECRET,
    SUMMARY,
    TELEGRAM_SECRET,
    Bot,
    start_bot,
)
from tests.signing import generic_headers, meta_headers, telegram_headers

PAGE_ID = "1691462197845448"
PHONE_NUMBER_ID = "106540352242922"
SALES = "C0SALES01"
SUPPORT = "C0SUPPORT1"
LISTENING = "C0LISTEN01"
BRAND = "Northwind|north wind"  # LISTEN_TERMS: the shop's name, and its spelling in two words
CHANNEL_NAMES = {
    INBOX: "support-inbox",
    SALES: "sales",
    SUPPORT: "support",
    LISTENING: "brand-listening",
    SUMMARY: "support-daily",
}
ONCALL = ("U0ONCALL01", "U0ONCALL02")  # ONCALL_USERS, in rotation order
MANAGER = "U0MANAGER1"  # ESCALATION_MANAGER
SLA_MINUTES = 30
SLA_MINUTES_URGENT = 5
# Refunds go to Support, urgent (tests/demo/morning.py: an_urgent_refund_is_routed).
ROUTING_RULES = """\
[[rule]]
keywords = ["refund", "charged twice"]
team = "support"
priority = "urgent"
tags = ["refund", "billing"]
"""
SWEEP_SECONDS = 0.2
# Real zones at most four hours apart: one of them has a local time near MORNING.
ZONES = (
    "Pacific/Honolulu",
    "America/Los_Angeles",
    "America/Chicago",
    "America/Halifax",
    "Europe/Lisbon",
    "Europe/Berlin",
    "Africa/Nairobi",
    "Asia/Kolkata",
    "Asia/Jakarta",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
)
MORNING = 10.5  # local hour the stage aims for
# The desk closes for lunch at the first whole minute at least this long after the
# stage starts (well after the scenes before the lunch scene are done), for an hour.
LUNCH_AFTER = timedelta(minutes=2)
LUNCH = timedelta(hours=1)
OUT_OF_HOURS_MESSAGE = (
    "Thanks for writing! Our team is away right now; we answer as soon as the desk opens."
)


class Clock:
    """The bot's clock: real time plus whole seconds a scene moved it forward."""

    def __init__(self) -> None:
        self.ahead = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.ahead

    def move_to(self, at: datetime) -> None:
        """Skip forward to `at` (never back); whole seconds, so `customer_writes`
        still stamps a message written "now" after a reply made just before it."""
        self.ahead += timedelta(seconds=max(math.ceil((at - self()).total_seconds()), 0))


@dataclass
class Person:
    user_id: str
    name: str


@dataclass
class Customer:
    """Someone writing on a network; `sent` counts their messages (for message ids)."""

    name: str
    network: str
    address: str  # chat id, phone number, PSID or the generic conversation id
    handle: str | None = None
    sent: int = 0


@dataclass
class Stage:
    bot: Bot
    started: datetime
    tz: ZoneInfo
    clock: Clock
    lunch: datetime  # when the desk closes for lunch (UTC)
    people: dict[str, Person] = field(default_factory=dict)

    @property
    def slack(self) -> FakeSlack:
        return self.bot.slack

    @property
    def zone(self) -> str:
        return self.tz.key

    def person(self, user_id: str, name: str) -> Person:
        self.bot.slack.add_user(user_id, name, name.split()[0].lower())
        self.people[user_id] = Person(user_id, name)
        return self.people[user_id]

    # -- customers, through each network's webhook ---------------------------
    async def customer_writes(self, customer: Customer, text: str, minutes_ago: float) -> None:
        """Post the network's webhook for one message written `minutes_ago`.

        Networks stamp whole seconds, so a message written "now" waits for the
        next second: it then comes after any team reply made just before it.
        """
        if minutes_ago == 0:
            await asyncio.sleep(1.05 - time.time() % 1)
        at = self.clock() - timedelta(minutes=minutes_ago)
        customer.sent += 1
        if customer.network == "telegram":
            response = await self.bot.from_telegram(
                int(customer.address),
                text,
                first_name=customer.name,
                username=customer.handle,
                date=int(at.timestamp()),
            )
        elif customer.network == "generic":
            response = await self.bot.from_generic(
                customer.address, f"{customer.address}-{customer.sent}", text, sent_at=at
            )
        elif customer.network == "whatsapp":
            body = json.dumps(_whatsapp(customer, text, at)).encode()
            response = await self.bot.post_raw(
                "/webhooks/whatsapp", body, meta_headers(body, META_SECRET)
            )
        elif customer.network == "messenger":
            body = json.dumps(_messenger(customer, text, at)).encode()
            response = await self.bot.post_raw(
                "/webhooks/meta", body, meta_headers(body, META_SECRET)
            )
        else:
            raise ValueError(f"no stand-in for {customer.network}")
        if response.status != 200:
            raise RuntimeError(f"{customer.network} webhook answered {response.status}")

    async def customer_sends_photo(self, customer: Customer, file_id: str, caption: str) -> None:
        """A Telegram photo (sizes smallest first, as Telegram sends them) with a caption."""
        customer.sent += 1
        chat_id = int(customer.address)
        sender = {"id": chat_id, "is_bot": False, "first_name": customer.name}
        update = {
            "update_id": self.bot.next_id("update"),
            "message": {
                "message_id": self.bot.next_id(f"tg:{chat_id}"),
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private", "first_name": customer.name},
                "from": {**sender, **({"username": customer.handle} if customer.handle else {})},
                "photo": [
                    {"file_id": f"{file_id}-s", "file_unique_id": "s", "width": 90, "height": 90},
                    {"file_id": file_id, "file_unique_id": "b", "width": 1280, "height": 960},
                ],
                "caption": caption,
            },
        }
        response = await self.bot.post_raw(
            "/webhooks/telegram", json.dumps(update).encode(), telegram_headers(TELEGRAM_SECRET)
        )
        if response.status != 200:
            raise RuntimeError(f"telegram webhook answered {response.status}")

    async def customer_rates(self, customer: Customer, score: int, comment: str) -> None:
        """Answer the rating question the generic reply URL received (its `csat.options`),
        then write a comment, as a website chat would."""
        if customer.network != "generic":
            raise ValueError(f"no rating stand-in for {customer.network}")

        def question() -> dict[str, Any] | None:
            bodies = [c.json or {} for c in self.bot.sink.calls_to("*replies")]
            return next((b["csat"] for b in bodies if "csat" in b), None)

        options = {o["score"]: o for o in (await self.bot.until(question))["options"]}
        for text, extra in ((options[score]["label"], options[score]["payload"]), (comment, None)):
            customer.sent += 1
            body = {
                "conversation_id": customer.address,
                "message_id": f"{customer.address}-{customer.sent}",
                "author": {"id": f"cust-{customer.address}", "name": customer.name},
                "text": text,
                "sent_at": datetime.now(UTC).isoformat(),
                **({"csat_payload": extra} if extra else {}),
            }
            raw = json.dumps(body).encode()
            response = await self.bot.post_raw(
                "/webhooks/generic", raw, generic_headers(raw, GENERIC_SECRET)
            )
            if response.status != 200:
                raise RuntimeError(f"generic webhook answered {response.status}")

    # -- the team, through Slack -----------------------------------------------
    async def reply(
        self,
        person: Person,
        root_ts: str,
        text: str,
        channel: str = INBOX,
        files: dict[str, bytes] | None = None,
    ) -> str:
        """A thread reply as Slack delivers it (with `files`, name -> content, shared
        with it as a `file_share`); returns its ts."""
        extra: dict[str, Any] = {}
        if files:
            shared = [
                {
                    "id": f"F{n:04d}",
                    "name": name,
                    "mimetype": mimetypes.guess_type(name)[0] or "application/octet-stream",
                    "size": len(content),
                    "url_private_download": self.bot.slack.add_file(
                        f"T0001-F{n:04d}/{name}", content
                    ),
                }
                for n, (name, content) in enumerate(files.items())
            ]
            extra = {"subtype": "file_share", "files": shared}
        response, ts = await self.bot.thread_reply(
            channel, root_ts, text, user=person.user_id, **extra
        )
        if response.status != 200:
            raise RuntimeError(f"Slack event answered {response.status}")
        return ts

    async def click(
        self, person: Person, action_id: str, value: str, root_ts: str, channel: str = INBOX
    ) -> None:
        response = await self.bot.click(
            action_id, value, user=person.user_id, channel=channel, message_ts=root_ts
        )
        if response.status != 200:
            raise RuntimeError(f"button {action_id} answered {response.status}")

    async def command(self, person: Person, line: str, channel: str = INBOX) -> dict[str, Any]:
        """A typed slash command like `/oncall`; returns Slack's immediate answer
        (`text`, maybe `blocks`; empty when the answer comes later as an ephemeral)."""
        name, _, text = line.partition(" ")
        response = await self.bot.command(name, text, user=person.user_id, channel=channel)
        if response.status != 200:
            raise RuntimeError(f"{name} answered {response.status}")
        raw = await response.text()
        if not raw.startswith("{"):
            return {"text": raw} if raw else {}
        answer: dict[str, Any] = json.loads(raw)
        return answer

    async def react(self, person: Person, ts: str, name: str, channel: str = INBOX) -> None:
        """A person adds a reaction: Slack shows it, then sends `reaction_added`."""
        self.slack.add_reaction(channel, ts, name, person.user_id)
        event = {
            "type": "reaction_added",
            "user": person.user_id,
            "reaction": name,
            "item": {"type": "message", "channel": channel, "ts": ts},
            "event_ts": f"{time.time():.6f}",
        }
        response = await self.bot.slack_event(event)
        if response.status != 200:
            raise RuntimeError(f"reaction_added answered {response.status}")

    def message_with(self, text: str, channel: str = INBOX) -> dict[str, Any]:
        """The Slack message (root or thread reply) of `channel` that shows `text`."""
        return next(m for m in self.slack.messages(channel) if text in str(m.get("text")))

    async def dm_channel(self, person: Person) -> str:
        """The DM channel between the bot and `person` (conversations.open is idempotent)."""
        return await self.bot.services.slack.open_dm(person.user_id)

    # -- waiting for the bot ---------------------------------------------------
    async def root_of(self, number: int, channel: str = INBOX) -> dict[str, Any]:
        """The root message of conversation #number in `channel`, once posted."""

        async def find() -> dict[str, Any] | None:
            conversation = await self.bot.services.repo.conversation(number)
            if conversation is None or conversation.channel != channel:
                return None
            ts = conversation.thread_ts
            return next((m for m in self.slack.roots(channel) if m["ts"] == ts), None)

        return await self.bot.until(find, timeout=15, what=f"root of #{number} in {channel}")

    async def reaction(self, ts: str, name: str, channel: str = INBOX) -> None:
        await self.bot.until(
            lambda: name in self.slack.reactions(channel, ts), timeout=15, what=f":{name}: on {ts}"
        )

    async def thread_has(self, root_ts: str, text: str, channel: str = INBOX) -> None:
        await self.bot.until(
            lambda: any(text in str(m.get("text")) for m in self.slack.replies(channel, root_ts)),
            timeout=15,
            what=f"'{text}' in thread {root_ts}",
        )

    async def thread_has_file(self, root_ts: str, name: str, channel: str = INBOX) -> None:
        await self.bot.until(
            lambda: [
                f
                for m in self.slack.replies(channel, root_ts)
                for f in m.get("files", [])
                if f["name"] == name
            ],
            timeout=15,
            what=f"the file {name} in the thread",
        )

    async def ephemeral_for(self, person: Person, text: str) -> str:
        return await self.bot.until(
            lambda: next((e for e in self.bot.ephemerals_for(person.user_id) if text in e), None),
            timeout=15,
            what=f"'{text}' shown to {person.name}",
        )

    async def dm_with(self, person: Person, text: str) -> dict[str, Any]:
        """The bot's DM to `person` containing `text`, once sent (waits up to 20 s)."""
        channel = await self.dm_channel(person)
        return await self.bot.until(
            lambda: next(
                (m for m in self.slack.messages(channel) if text in str(m.get("text"))), None
            ),
            timeout=20,
            what=f"a DM to {person.name} with '{text}'",
        )


def morning_zone(now: datetime) -> ZoneInfo:
    """The zone in `ZONES` whose local time is nearest `MORNING` (UTC without tz data)."""

    def distance(zone: ZoneInfo) -> float:
        local = now.astimezone(zone)
        return abs(local.hour + local.minute / 60 - MORNING)

    try:
        return min((ZoneInfo(name) for name in ZONES), key=distance)
    except ZoneInfoNotFoundError:
        return ZoneInfo("UTC")


def lunch_break(now: datetime, tz: ZoneInfo) -> tuple[datetime, str]:
    """When the desk closes for lunch (the first whole minute `LUNCH_AFTER` from `now`),
    and `BUSINESS_HOURS` open every day from 07:00 (before the oldest message of the
    morning) to 18:00 but for that hour."""
    closes = (now + LUNCH_AFTER).astimezone(tz)
    if closes.second or closes.microsecond:
        closes = closes.replace(second=0, microsecond=0) + timedelta(minutes=1)
    opens = closes + LUNCH
    hours = f"mon-sun 07:00-{closes:%H:%M}, {opens:%H:%M}-18:00"
    return closes.astimezone(UTC), hours


def environment(tz: ZoneInfo, today: date) -> dict[str, str]:
    """Settings on top of the harness's: on call, the SLA, fast sweeps, the local day."""
    return {
        "TIMEZONE": tz.key,
        "ONCALL_USERS": ",".join(ONCALL),
        # The rotation's first shift began yesterday: the first person is on call now.
        "ONCALL_START": (today - timedelta(days=1)).isoformat(),
        "ONCALL_HANDOFF": "09:00",
        "ONCALL_ROTATION_DAYS": "7",
        "ESCALATION_MANAGER": MANAGER,
        "SLA_MINUTES": str(SLA_MINUTES),
        "SWEEP_SECONDS": str(SWEEP_SECONDS),
        # Only the on-demand summary is posted: the daily job is not due in a morning.
        "SUMMARY_TIME": "23:59",
        "CSAT_ENABLED": "true",  # resolving asks the customer for a rating
        "LISTEN_TERMS": BRAND,
        "SLACK_LISTENING_CHANNEL": LISTENING,
    }


@asynccontextmanager
async def stage() -> AsyncIterator[Stage]:
    """Start everything in a temporary directory; stop everything afterwards."""
    now = datetime.now(UTC)
    tz = morning_zone(now)
    with TemporaryDirectory(prefix="relaydesk-demo-") as tmp:
        rules = Path(tmp) / "routing.toml"
        rules.write_text(ROUTING_RULES, encoding="utf-8")
        env = environment(tz, now.astimezone(tz).date())
        env.update(ROUTING_RULES=str(rules), SLA_MINUTES_URGENT=str(SLA_MINUTES_URGENT))
        lunch, hours = lunch_break(now, tz)
        env.update(BUSINESS_HOURS=hours, OUT_OF_HOURS_MESSAGE=OUT_OF_HOURS_MESSAGE)
        clock = Clock()
        bot, stop = await start_bot(Path(tmp), env=env, timers=True, clock=clock)
        try:
            yield Stage(bot, now, tz, clock, lunch)
        finally:
            await stop()


def _whatsapp(customer: Customer, text: str, at: datetime) -> dict[str, Any]:
    """WhatsApp Cloud API `messages` webhook (shape of Meta's published example)."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": PHONE_NUMBER_ID,
                            },
                            "contacts": [
                                {"profile": {"name": customer.name}, "wa_id": customer.address}
                            ],
                            "messages": [
                                {
                                    "from": customer.address,
                                    "id": f"wamid.demo{customer.address}{customer.sent}",
                                    "timestamp": str(int(at.timestamp())),
                                    "type": "text",
                                    "text": {"body": text},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }


def _messenger(customer: Customer, text: str, at: datetime) -> dict[str, Any]:
    """Messenger Platform `messages` webhook for a Page."""
    millis = int(at.timestamp() * 1000)
    return {
        "object": "page",
        "entry": [
            {
                "id": PAGE_ID,
                "time": int(time.time() * 1000),
                "messaging": [
                    {
                        "sender": {"id": customer.address},
                        "recipient": {"id": PAGE_ID},
                        "timestamp": millis,
                        "message": {
                            "mid": f"m_demo{customer.address}{customer.sent}",
                            "text": text,
                        },
                    }
                ],
            }
        ],
    }
