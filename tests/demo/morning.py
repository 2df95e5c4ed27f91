"""A morning at the support desk, scene by scene.

Each scene drives the real bot through the stand-ins and waits until Slack
shows the effect, so the transcript printed afterwards is what a team would
see. Scenes only use features that exist; add one to `SCENES` as a feature
lands (still to come: an escalation to the on-call person, `/social-stats`,
the daily summary).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tests.demo.stage import SALES, Customer, Stage
from tests.demo.transcript import Style

Say = Callable[[str], None]


class Morning:
    def __init__(self, stage: Stage, say: Say) -> None:
        self.stage = stage
        self.say = say
        self.maya = stage.person("U0AGENT01", "Maya Lopez")
        self.sam = stage.person("U0SALES01", "Sam Okafor")
        self.ada = Customer("Ada", "telegram", "5001", handle="ada_l")
        self.grace = Customer("Grace", "generic", "web-7731")
        self.kofi = Customer("Kofi", "whatsapp", "233241234567")
        self.lena = Customer("Lena", "messenger", "1134343043305865")
        self.bruno = Customer("Bruno", "telegram", "5002", handle="bruno_b")

    async def customers_write_in(self) -> None:
        self.say("Four customers write in on four networks.")
        await self.stage.customer_writes(
            self.ada, "Hi! My order #4411 still hasn't arrived, it was due yesterday.", 24
        )
        await self.stage.customer_writes(
            self.grace, "Can I change the delivery address for order 5120?", 21
        )
        await self.stage.customer_writes(self.kofi, "Hello, do you ship to Ghana?", 19)
        await self.stage.customer_writes(self.lena, "Is the blue rain jacket back in size M?", 17)
        for number in (1, 2, 3, 4):
            await self.stage.root_of(number)

    async def a_follow_up(self) -> None:
        self.say("Ada adds a follow-up; her <!channel> cannot ping anyone.")
        await self.stage.customer_writes(
            self.ada, "Also the tracking link gives a 404 <!channel>", 20
        )
        root = await self.stage.root_of(1)
        await self.stage.thread_has(root["ts"], "tracking link")

    async def maya_claims_and_answers(self) -> None:
        self.say("Maya claims #1 and answers Ada in the thread.")
        root = await self.stage.root_of(1)
        await self.stage.click(self.maya, "relaydesk.claim", "1", root["ts"])
        await self.stage.ephemeral_for(self.maya, "#1")
        ts = await self.stage.reply(
            self.maya,
            root["ts"],
            "Sorry Ada! It is with the courier and arrives tomorrow "
            "before noon. Here is a working link: https://track.example/4411",
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

    async def a_failed_delivery(self) -> None:
        self.say("Bruno writes, then blocks the Telegram bot: the reply cannot be delivered.")
        await self.stage.customer_writes(self.bruno, "Do you have gift cards?", 6)
        root = await self.stage.root_of(5)
        self.stage.bot.telegram.blocked_chats.add(int(self.bruno.address))
        ts = await self.stage.reply(self.maya, root["ts"], "We do, from 10 to 200 euros!")
        await self.stage.reaction(ts, "warning")
        await self.stage.thread_has(root["ts"], "Not delivered")

    async def lena_waits(self) -> None:
        self.say("Lena's question on Messenger (which sends an ID, not a name) still waits.")
        await self.stage.root_of(4)


Scene = Callable[[Morning], Awaitable[None]]
SCENES: list[Scene] = [
    Morning.customers_write_in,
    Morning.a_follow_up,
    Morning.maya_claims_and_answers,
    Morning.an_internal_note,
    Morning.grace_is_helped_and_resolved,
    Morning.kofi_goes_to_sales,
    Morning.a_failed_delivery,
    Morning.lena_waits,
]


async def play(stage: Stage, style: Style) -> None:
    morning = Morning(stage, lambda line: print(style.dim(f"  > {line}"), flush=True))
    for scene in SCENES:
        await scene(morning)
