"""Data for the reports tests, put in through the real bot (signed webhooks, Slack events)."""

from __future__ import annotations

from aiohttp import ClientResponse

from tests.harness import INBOX, Bot

TOKEN = "reports-api-token"
PUBLIC_URL = "https://desk.example.com"
ENV = {"API_TOKEN": TOKEN, "PUBLIC_URL": PUBLIC_URL}
BEARER = {"Authorization": f"Bearer {TOKEN}"}


async def seed(bot: Bot) -> None:
    """Telegram: one conversation answered, one waiting; generic: one waiting."""
    await bot.from_telegram(8001, "Do you ship to Norway?")
    root = await bot.root()
    _, reply = await bot.thread_reply(INBOX, root["ts"], "Yes we do")
    await bot.until(lambda: "white_check_mark" in bot.slack.reactions(INBOX, reply))
    await bot.from_telegram(8002, "Hello?")
    await bot.root(index=1)
    response = await bot.from_generic("g-1", "m-1", "Where is my order?")
    assert response.status == 200
    await bot.root(index=2)


async def api_stats(bot: Bot, params: dict[str, str]) -> dict[str, object]:
    response: ClientResponse = await bot.client.get("/api/stats", params=params, headers=BEARER)
    assert response.status == 200, await response.text()
    figures: dict[str, object] = await response.json()
    return figures
