"""A morning at the support desk, scene by scene.

Each scene drives the real bot through the stand-ins and waits until Slack
shows the effect, so the transcript printed afterwards is what a team would
see. Answers only one person sees (slash commands, button clicks) are shown
as the scene plays. Scenes only use features that exist; add one to `SCENES`
as a feature lands.

The cast: Maya (support), Sam (sales), Priya and Tom (the on-call rotation,
`ONCALL_USERS`; Priya's week now) and Ines (the manager, `ESCALATION_MANAGER`).
Lena's message is dated just under `SLA_MINUTES` ago, so the app's own
escalation sweep pages Priya a few seconds into the morning.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from storage.listening import Mentions
from tests.demo.stage import (
    LISTENING,
    MANAGER,
    ONCALL,
    SALES,
    SLA_MINUTES,
    SLA_MINUTES_URGENT,
    SUPPORT,
    Customer,
    Person,
    Stage,
)
from tests.demo.transcript import Renderer, Style
from tests.harness import GENERIC_SECRET, INBOX
from tests.signing import generic_headers

Say = Callable[[str], None]
Show = Callable[[Person, dict[str, Any]], None]

# What the stand-in for Telegram serves as Ada's photo: a JPEG's first and last bytes.
BOX_PHOTO = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01" + b"\x00" * 2048 + b"\xff\xd9"

# Lena's page is due this many seconds after she writes: after her thread exists,
# and about when the scenes before hers are done.
LENA_DUE_IN_SECONDS = 6


class Morning:
    def __init__(self, stage: Stage, say: Say, show: Show) -> None:
        self.stage = stage
        self.say = say
        self.show = show
        self.maya = stage.person("U0AGENT01", "Maya Lopez")
        self.sam = stage.person("U0SALES01", "Sam Okafor")
        self.priya = stage.person(ONCALL[0], "Priya Shah")
        self.tom = stage.person(ONCALL[1], "Tom Berg")
        self.ines = stage.person(MANAGER, "Ines Duarte")
        self.ada = Customer("Ada", "telegram", "5001", handle="ada_l")
        self.grace = Customer("Grace", "generic", "web-7731")
        self.kofi = Customer("Kofi", "whatsapp", "233241234567")
        self.lena = Customer("Lena", "messenger", "1134343043305865")
        self.bruno = Customer("Bruno", "telegram", "5002", handle="bruno_b")

    async def customers_write_in(self) -> None:
        self.say("Four customers write in on four networks.")
        writes = [
            (self.ada, "Hi! My order #4411 still hasn't arrived, it was due yesterday.", 24.0),
            (self.grace, "Can I change the delivery address for order 5120?", 21.0),
            (self.kofi, "Hello, do you ship to Ghana?", 19.0),
            (
                self.lena,
                "Is the blue rain jacket back in size M?",
                SLA_MINUTES - LENA_DUE_IN_SECONDS / 60,
            ),
        ]
        # One at a time: new conversations are posted concurrently, and the
        # inbox should list them in the order they came in.
        for number, (customer, text, minutes_ago) in enumerate(writes, start=1):
            await self.stage.customer_writes(customer, text, minutes_ago)
            await self.stage.root_of(number)

    async def a_follow_up(self) -> None:
        self.say("Ada adds a follow-up; her <!channel> cannot ping anyone.")
        await self.stage.customer_writes(
            self.ada, "Also the tracking link gives a 404 <!channel>", 20
        )
        root = await self.stage.root_of(1)
        await self.stage.thread_has(root["ts"], "tracking link")

    async def ada_sends_a_photo(self) -> None:
        self.say("Ada sends a photo of the damaged box: it lands in her thread as a Slack file.")
        self.stage.bot.telegram.files.add("ada-box", BOX_PHOTO, "image/jpeg")
        await self.stage.customer_sends_photo(self.ada, "ada-box", "The box came like this")
        root = await self.stage.root_of(1)
        await self.stage.thread_has_file(root["ts"], "photo.jpg")

    async def maya_claims_and_answers(self) -> None:
        self.say("Maya claims #1 and answers Ada in the thread.")
        root = await self.stage.root_of(1)
        await self.stage.click(self.maya, "relaydesk.claim", "1", root["ts"])
        await self.stage.ephemeral_for(self.maya, "#1")
        ts = await self.stage.reply(
            self.maya,
            root["ts"],
            "Sorry Ada! It is with the courier and arrives *tomorrow before noon* :truck: "
            "Here is a working link: <https://track.example/4411|track parcel 4411>, "
            "and the delivery note is attached.",
            files={"delivery-note.pdf": b"%PDF-1.4 delivery note for order 4411"},
        )
        await self.stage.reaction(ts, "white_check_mark")

    async def an_internal_note(self) -> None:
        self.say("Maya leaves an internal note: it stays in Slack.")
        root = await self.stage.root_of(1)
        await self.stage.reply(self.maya, root["ts"], "note: opened courier ticket CR-2291")

    async def grace_is_helped_and_resolved(self) -> None:
        self.say("Maya answers Grace on the website chat and resolves #2.")
        root = await self.stage.root_of(2)
        ts = await self.stage.reply(
            self.maya, root["ts"], "Done: order 5120 now goes to 12 Harbour Street."
        )
        await self.stage.reaction(ts, "white_check_mark")
        await self.stage.click(self.maya, "relaydesk.resolve", "2", root["ts"])
        await self.stage.ephemeral_for(self.maya, "#2")

    async def grace_rates_the_help(self) -> None:
        self.say(
            "Resolving #2 asked Grace for a rating (CSAT_ENABLED): she taps 5 and adds a "
            "comment. Both show in the thread; neither is a customer message or reopens #2."
        )
        root = await self.stage.root_of(2)
        await self.stage.customer_rates(self.grace, 5, "Super quick, thank you!")
        await self.stage.thread_has(root["ts"], "Comment with the rating")

    async def kofi_goes_to_sales(self) -> None:
        self.say("Kofi asks for a bulk price: Maya hands #3 off to Sales; Sam answers there.")
        root = await self.stage.root_of(3)
        ts = await self.stage.reply(self.maya, root["ts"], "Yes, we do! 3 to 5 working days.")
        await self.stage.reaction(ts, "white_check_mark")
        await self.stage.customer_writes(
            self.kofi, "Great. What would 200 jackets for my shop cost?", 0
        )
        await self.stage.thread_has(root["ts"], "200 jackets")
        await self.stage.click(self.maya, "relaydesk.handoff", "sales", root["ts"])
        sales_root = await self.stage.root_of(3, SALES)
        ts = await self.stage.reply(
            self.sam,
            sales_root["ts"],
            "Hi Kofi, Sam from sales here. For 200 we can do 18% off; sending a quote now.",
            channel=SALES,
        )
        await self.stage.reaction(ts, "white_check_mark", channel=SALES)

    async def a_meaningful_moment(self) -> None:
        self.say(
            "Kofi's shop may order 200 jackets: Maya marks his message as a meaningful moment "
            "with :sparkles: (MRM_REACTION). The thread notes it; /social-stats, the summary "
            "and /api/moments list it."
        )
        message = self.stage.message_with("200 jackets")
        await self.stage.react(self.maya, message["ts"], "sparkles")
        await self.stage.thread_has(message["thread_ts"], "meaningful moment")

    async def a_failed_delivery(self) -> None:
        self.say("Bruno writes, then blocks the Telegram bot: the reply cannot be delivered.")
        await self.stage.customer_writes(self.bruno, "Do you have gift cards?", 6)
        root = await self.stage.root_of(5)
        self.stage.bot.telegram.blocked_chats.add(int(self.bruno.address))
        ts = await self.stage.reply(self.maya, root["ts"], "We do, from 10 to 200 euros!")
        await self.stage.reaction(ts, "warning")
        await self.stage.thread_has(root["ts"], "Not delivered")

    async def lena_escalates(self) -> None:
        self.say(
            f"Nobody answers Lena on Messenger (which sends an ID, not a name). "
            f"{SLA_MINUTES} minutes after she wrote (SLA_MINUTES), the escalation sweep "
            "pages Priya, who is on call: a mention in #4's thread and a DM."
        )
        root = await self.stage.root_of(4)
        dm = await self.stage.dm_with(self.priya, "#4")
        await self.stage.thread_has(root["ts"], "escalation level 1")
        self.say("Priya clicks Acknowledge in the DM: #4 will not escalate to Tom or Ines.")
        channel = await self.stage.dm_channel(self.priya)
        await self.stage.click(self.priya, "relaydesk.ack", "4", dm["ts"], channel=channel)
        self.show(self.priya, {"text": await self.stage.ephemeral_for(self.priya, "#4")})
        await self.stage.thread_has(root["ts"], "acknowledged the escalation")

    async def bruno_is_escalated_by_hand(self) -> None:
        line = "/escalate #5 blocked us on Telegram; please email him about the gift cards"
        self.say(f"Maya escalates Bruno's #5 by hand: {line}")
        answer = await self.stage.command(self.maya, line)
        if answer.get("text"):
            raise RuntimeError(f"/escalate refused: {answer['text']}")
        self.show(self.maya, {"text": await self.stage.ephemeral_for(self.maya, "#5")})
        await self.stage.dm_with(self.priya, "#5")

    async def who_is_on_call(self) -> None:
        self.say("Maya checks the rotation: /oncall")
        self.show(self.maya, await self.stage.command(self.maya, "/oncall"))

    async def the_manager_checks_the_figures(self) -> None:
        self.say("Ines, the manager, asks for today's figures: /social-stats today")
        self.show(self.ines, await self.stage.command(self.ines, "/social-stats today"))

    async def the_daily_summary(self) -> None:
        self.say(
            "The daily summary goes to SLACK_SUMMARY_CHANNEL once a day at SUMMARY_TIME, "
            "for the day before; here it is posted now, for today so far."
        )
        now = datetime.now(UTC)
        await self.stage.bot.services.summary.post(now.astimezone(self.stage.tz).date(), now)

    async def a_saved_reply(self) -> None:
        """Self-contained: its own customer, found by her root rather than by number."""
        line = (
            "/replies add sizes Hi {customer_name}! Our jackets run small: take *one size "
            "up*. Your case is {conversation}. {agent_name}, Relaydesk Outdoor"
        )
        self.say(f"Maya saves an answer the team gives every day: {line}")
        self.show(self.maya, await self.stage.command(self.maya, line))
        noor = Customer("Noor", "telegram", "5003", handle="noor_k")
        self.say(
            "Noor asks about sizes. Maya presses Saved reply on her root, types 'small' in "
            "the search and sends it: it is posted under her name and goes out as her reply."
        )
        await self.stage.customer_writes(noor, "Do the rain jackets run small?", 2)
        bot = self.stage.bot
        root = await bot.until(
            lambda: next((r for r in self.stage.slack.roots(INBOX) if "Noor" in str(r)), None),
            timeout=15,
            what="Noor's root",
        )
        conversation = await bot.until(
            lambda: bot.services.repo.conversation_by_thread(INBOX, root["ts"])
        )
        opened = len(self.stage.slack.calls_to("views.open"))
        await self.stage.click(self.maya, "relaydesk.saved_reply", str(conversation.id), root["ts"])
        call = await bot.until(lambda: self.stage.slack.calls_to("views.open")[opened:], timeout=15)
        metadata = call[0].params["view"]["private_metadata"]
        found = await bot.interact(
            {
                "type": "block_suggestion",
                "user": {"id": self.maya.user_id},
                "team": {"id": "T0001"},
                "api_app_id": "A0001",
                "action_id": "relaydesk.saved_reply_pick",
                "block_id": "saved",
                "value": "small",
                "view": {"id": "V1", "type": "modal", "private_metadata": metadata},
            }
        )
        [option] = json.loads(await found.text())["options"]
        self.say(f"The search offers: {option['text']['text']}")
        picked = {"type": "external_select", "selected_option": option}
        await bot.interact(
            {
                "type": "view_submission",
                "user": {"id": self.maya.user_id},
                "team": {"id": "T0001"},
                "api_app_id": "A0001",
                "view": {
                    "id": "V1",
                    "type": "modal",
                    "callback_id": "relaydesk.saved_reply_modal",
                    "private_metadata": metadata,
                    "state": {"values": {"saved": {"relaydesk.saved_reply_pick": picked}}},
                },
            }
        )
        self.show(self.maya, {"text": await self.stage.ephemeral_for(self.maya, "Sent saved")})
        posted = await bot.until(
            lambda: [m for m in self.stage.slack.replies(INBOX, root["ts"]) if m.get("username")],
            timeout=15,
        )
        await self.stage.reaction(posted[0]["ts"], "white_check_mark")

    async def an_urgent_refund_is_routed(self) -> None:
        noor = Customer("Noor", "whatsapp", "971501234567")
        self.say(
            "Noor writes on WhatsApp about a double charge. The routing rules (ROUTING_RULES) "
            "send refunds to Support's channel, urgent and tagged; an urgent conversation "
            f"escalates after {SLA_MINUTES_URGENT} minutes (SLA_MINUTES_URGENT) instead of "
            f"{SLA_MINUTES}, so Priya is paged at once."
        )
        await self.stage.customer_writes(
            noor, "I was charged twice for order 7310, I want a refund today!", 5.05
        )

        async def routed() -> tuple[int, str] | None:
            for root in self.stage.slack.roots(SUPPORT):
                found = await self.stage.bot.services.repo.conversation_by_thread(
                    SUPPORT, root["ts"]
                )
                if found is not None and found.id is not None and found.customer_name == "Noor":
                    return found.id, root["ts"]
            return None

        number, ts = await self.stage.bot.until(routed, timeout=15, what="Noor's root")
        await self.stage.thread_has(ts, "escalation level 1", channel=SUPPORT)
        await self.stage.dm_with(self.priya, f"#{number}")
        await self.stage.bot.until(
            lambda: "escalated to" in str(self.stage.slack.message(SUPPORT, ts).get("blocks")),
            timeout=15,
            what="Noor's root saying whom it escalated to",
        )

    async def a_blog_misspells_the_brand(self) -> None:
        self.say(
            "A blogger writes about the shop without tagging it, and misspells its name. "
            "A crawler sends the post to the generic webhook as a mention; listening "
            "(LISTEN_TERMS) finds 'Nortwind' one letter from 'Northwind' and posts it to "
            "SLACK_LISTENING_CHANNEL. Maya dismisses it: nothing to answer."
        )
        body = json.dumps(
            {
                "kind": "mention",
                "message_id": "blog-2291",
                "author": {"id": "blog-rainy-days", "name": "Rainy Days blog"},
                "text": "Five jackets tested in the rain: the Nortwind shell kept me driest.",
                "sent_at": datetime.now(UTC).isoformat(),
                "url": "https://rainydays.example/blog/five-jackets",
            }
        ).encode()
        await self.stage.bot.post_raw(
            "/webhooks/generic", body, generic_headers(body, GENERIC_SECRET)
        )
        post = await self.stage.bot.until(lambda: self.stage.slack.roots(LISTENING))
        mentions = Mentions(self.stage.bot.services.db)  # recorded after Slack answers
        await self.stage.bot.until(lambda: mentions.shown_with(LISTENING, post[0]["ts"]))
        value = next(
            element["value"]
            for block in post[0]["blocks"]
            for element in block.get("elements", [])
            if element.get("action_id") == "relaydesk.listen_dismiss"
        )
        await self.stage.click(
            self.maya, "relaydesk.listen_dismiss", value, post[0]["ts"], channel=LISTENING
        )
        await self.stage.bot.until(
            lambda: "Dismissed by" in json.dumps(self.stage.slack.roots(LISTENING)[0]["blocks"])
        )

    async def a_message_at_lunch(self) -> None:
        """Self-contained: its own customer, found by his root rather than by number. Last,
        as it moves the clock: the desk is open for every scene before it."""
        stage, bot = self.stage, self.stage.bot
        self.say(
            f"The desk closes for lunch at {stage.lunch.astimezone(stage.tz):%H:%M} "
            f"(BUSINESS_HOURS {bot.settings.business_hours}); the demo's clock skips ahead "
            "to it. Omar writes twice on Telegram while the desk is closed: "
            "OUT_OF_HOURS_MESSAGE answers him once, automatically. The thread shows it, but "
            "it is nobody's reply: his turn keeps waiting for the team, and no figure counts it."
        )
        stage.clock.move_to(stage.lunch)
        omar = Customer("Omar", "telegram", "5004", handle="omar_h")
        await stage.customer_writes(omar, "Hi, can I still return a jacket I bought in May?", 0)
        root = await bot.until(
            lambda: next((r for r in stage.slack.roots(INBOX) if "Omar" in str(r)), None),
            timeout=15,
            what="Omar's root",
        )
        await stage.thread_has(root["ts"], "Out-of-hours auto-reply sent")
        await stage.customer_writes(omar, "It is the green one, never worn.", 0)
        await stage.thread_has(root["ts"], "never worn")


Scene = Callable[[Morning], Awaitable[None]]
SCENES: list[Scene] = [
    Morning.customers_write_in,
    Morning.a_follow_up,
    Morning.ada_sends_a_photo,
    Morning.maya_claims_and_answers,
    Morning.an_internal_note,
    Morning.grace_is_helped_and_resolved,
    Morning.grace_rates_the_help,
    Morning.kofi_goes_to_sales,
    Morning.a_meaningful_moment,
    Morning.a_failed_delivery,
    Morning.lena_escalates,
    Morning.bruno_is_escalated_by_hand,
    Morning.who_is_on_call,
    Morning.the_manager_checks_the_figures,
    Morning.the_daily_summary,
    Morning.a_saved_reply,
    Morning.an_urgent_refund_is_routed,
    Morning.a_blog_misspells_the_brand,
    Morning.a_message_at_lunch,
]


async def play(stage: Stage, style: Style) -> None:
    render = Renderer(stage, style)

    def say(line: str) -> None:
        lines = textwrap.wrap(line, width=96, initial_indent="  > ", subsequent_indent="    ")
        print("\n".join(style.dim(wrapped) for wrapped in lines), flush=True)

    def show(person: Person, answer: dict[str, Any]) -> None:
        print(render.ephemeral(person, answer), flush=True)

    morning = Morning(stage, say, show)
    for scene in SCENES:
        await scene(morning)
