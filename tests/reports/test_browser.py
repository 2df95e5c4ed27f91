"""/reports in a real headless Chromium: no console errors, the /api/stats figures shown,
readable at phone width. Screenshots are kept in tests/artifacts/reports/ (git-ignored)."""

from __future__ import annotations

from pathlib import Path

from bot.blocks.stats import humanize_seconds
from tests.harness import start_bot
from tests.reports.chromium import chromium, require_chromium
from tests.reports.page import HEADLINE
from tests.reports.seed import BEARER, ENV, PUBLIC_URL, api_stats, seed

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "reports"

# Each headline figure's exact value and the text a person sees.
SHOWN = """Object.fromEntries([...document.querySelectorAll('[data-figure]')].map(
  e => [e.dataset.figure, [JSON.parse(e.dataset.value), e.textContent]]))"""
LAYOUT = """({
  lang: document.documentElement.lang,
  title: document.title,
  viewport: !!document.querySelector('meta[name=viewport]'),
  overflow: document.documentElement.scrollWidth - window.innerWidth,
  charts: document.querySelectorAll('svg[role=img][aria-labelledby]').length,
  tables: document.querySelectorAll('details table').length,
  scripts: document.scripts.length,
})"""


async def test_the_page_in_chromium(tmp_path: Path) -> None:
    executable = require_chromium()
    bot, stop = await start_bot(tmp_path, env=ENV)
    try:
        await seed(bot)
        response = await bot.command("/social-stats", "7d")
        text = await response.text()
        start = text.index(PUBLIC_URL + "/reports?")
        signed = text[start : text.index("|", start)].removeprefix(PUBLIC_URL)
        # The same window as the link's, for /api/stats: read back from the page itself.
        async with chromium(executable, tmp_path / "profile") as page:
            await page.load(str(bot.client.make_url(signed)), {}, width=390, height=844)
            shown = await page.evaluate(SHOWN)
            layout = await page.evaluate(LAYOUT)
            await page.screenshot(ARTIFACTS / "signed-link-phone.png")
            window = await page.evaluate(
                "document.querySelector('p.context').dataset.since + ' ' +"
                " document.querySelector('p.context').dataset.until"
            )
            since, until = window.split()
            api = await api_stats(bot, {"since": since, "until": until})
            assert {key: shown[key][0] for key in HEADLINE} == {key: api[key] for key in HEADLINE}
            assert shown["received"][1] == "3" and shown["response_rate"][1] == "33%"
            assert shown["avg_response_seconds"][1] == humanize_seconds(
                api["avg_response_seconds"]  # type: ignore[arg-type]
            )
            assert layout == {
                "lang": "en",
                "title": "Relaydesk reports: the last 7 days",
                "viewport": True,
                "overflow": 0,
                "charts": 4,
                "tables": 4,
                "scripts": 0,
            }

            await page.load(str(bot.client.make_url("/reports")), BEARER, width=1280, height=900)
            assert (await page.evaluate(SHOWN))["received"][0] == 3
            await page.screenshot(ARTIFACTS / "bearer-desktop.png")
            assert page.errors() == []
    finally:
        await stop()
