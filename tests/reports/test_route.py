"""GET /reports through the real app: access, the /api/stats figures, filters, empty windows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from bot.reports.page import NO_DATA
from bot.services.report_links import report_link
from tests.harness import Bot, start_bot
from tests.reports.page import HEADLINE, read_page
from tests.reports.seed import BEARER, ENV, PUBLIC_URL, api_stats, seed


def _window() -> dict[str, str]:
    """The last day up to now: ended, so its unanswered figures are as of `until` for both."""
    now = datetime.now(UTC)
    return {"since": (now - timedelta(days=1)).isoformat(), "until": now.isoformat()}


async def _page(bot: Bot, params: dict[str, str], headers: dict[str, str] | None = None) -> str:
    response = await bot.client.get("/reports", params=params, headers=headers or {})
    assert response.status == 200, await response.text()
    assert response.content_type == "text/html"
    return await response.text()


async def _link_from_social_stats(bot: Bot, text: str) -> str:
    """The /reports link of the command's answer, as a path on the test server."""
    response = await bot.command("/social-stats", text)
    blocks = json.dumps(json.loads(await response.text())["blocks"])
    start = blocks.index(PUBLIC_URL + "/reports?")
    url = blocks[start : blocks.index("|", start)]
    return url.removeprefix(PUBLIC_URL)


async def test_the_page_shows_the_api_figures_for_the_same_window(tmp_path: Path) -> None:
    bot, stop = await start_bot(tmp_path, env=ENV)
    try:
        await seed(bot)
        window = _window()
        api = await api_stats(bot, window)
        assert api["received"] == 3 and api["answered_turns"] == 1  # the data is there
        page = read_page(await _page(bot, window, BEARER))
        assert page.figures == {key: api[key] for key in HEADLINE}
        filtered = read_page(await _page(bot, {**window, "network": "generic"}, BEARER))
        generic = await api_stats(bot, {**window, "network": "generic"})
        assert filtered.figures == {key: generic[key] for key in HEADLINE}
        assert filtered.figures["received"] == 1
        by_team = read_page(await _page(bot, {**window, "team": "unassigned"}, BEARER))
        assert by_team.figures["received"] == 3
    finally:
        await stop()


async def test_a_signed_link_from_social_stats_opens_the_page(tmp_path: Path) -> None:
    bot, stop = await start_bot(tmp_path, env=ENV)
    try:
        await seed(bot)
        path = await _link_from_social_stats(bot, "7d telegram")
        query = dict(parse_qsl(urlsplit(path).query))
        assert query["period"] == "7d" and query["network"] == "telegram"
        response = await bot.client.get(path)
        assert response.status == 200
        page = read_page(await response.text())
        assert page.figures["received"] == 2  # telegram only
        # The page's own filter links are signed with the same expiry and work.
        other = next(link for link in page.links if "network=generic" in link)
        assert f"expires={query['expires']}" in other
        followed = await bot.client.get("/reports" + other)
        assert followed.status == 200
        assert read_page(await followed.text()).figures["received"] == 1
    finally:
        await stop()


async def test_anything_but_a_valid_link_or_the_token_is_a_plain_404(tmp_path: Path) -> None:
    bot, stop = await start_bot(tmp_path, env=ENV)
    try:
        path = await _link_from_social_stats(bot, "today")
        split = urlsplit(path)
        query = dict(parse_qsl(split.query))
        unknown = await bot.client.get("/no-such-route")
        expected = (unknown.status, await unknown.text())
        assert expected[0] == 404
        expired = report_link(
            bot.settings, {"period": "today"}, datetime.now(UTC) - timedelta(hours=25)
        )
        assert expired is not None
        other_key = bot.settings.model_copy(update={"slack_signing_secret": "another-secret"})
        foreign = report_link(other_key, {"period": "today"}, datetime.now(UTC))
        assert foreign is not None
        refused = [
            ("/reports", {}),
            ("/reports", {"Authorization": "Bearer wrong-token"}),
            ("/reports?" + urlencode({**query, "network": "telegram"}), {}),  # a filter added
            ("/reports?" + urlencode({**query, "period": "30d"}), {}),  # a filter changed
            ("/reports?" + urlencode({**query, "expires": str(int(query["expires"]) + 60)}), {}),
            ("/reports?" + urlencode({**query, "sig": "0" * 64}), {}),
            ("/reports?" + urlencode({k: v for k, v in query.items() if k != "sig"}), {}),
            (expired.removeprefix(PUBLIC_URL), {}),
            (foreign.removeprefix(PUBLIC_URL), {}),
        ]
        for target, headers in refused:
            response = await bot.client.get(target, headers=headers)
            assert (response.status, await response.text()) == expected, target
        assert (await bot.client.get(path)).status == 200
    finally:
        await stop()


async def test_no_link_without_public_url(bot: Bot) -> None:
    response = await bot.command("/social-stats", "7d")
    assert "/reports?" not in await response.text()


async def test_an_empty_window_says_no_data(tmp_path: Path) -> None:
    bot, stop = await start_bot(tmp_path, env=ENV)
    try:
        await seed(bot)
        window = {"since": "2020-01-01", "until": "2020-01-31"}
        html = await _page(bot, window, BEARER)
        page = read_page(html)
        assert page.figures["received"] == 0 and page.figures["median_response_seconds"] is None
        assert html.count(NO_DATA) == 7  # every chart and table section
        assert "Relaydesk reports: 2020-01-01 00:00 to 2020-02-01 00:00" in html
    finally:
        await stop()


async def test_bad_filters_are_explained_to_an_authorised_reader(tmp_path: Path) -> None:
    bot, stop = await start_bot(tmp_path, env=ENV)
    try:
        for params in ({"period": "week"}, {"since": "yesterday"}, {"until": "2026-01-01"}):
            response = await bot.client.get("/reports", params=params, headers=BEARER)
            assert response.status == 400, params
        assert (await bot.client.get("/reports", params={"period": "week"})).status == 404
    finally:
        await stop()
