"""`python -m bot demo` end to end: the transcript a newcomer sees."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import bot.__main__ as cli
from tests.demo.stage import MORNING, OUT_OF_HOURS_MESSAGE, morning_zone
from tests.demo.transcript import Style

ROOT = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def demo() -> tuple[str, float]:
    """One run for the module: the plain transcript and how long it took."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_"))}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bot", "demo"],
        cwd=ROOT,
        env={**env, "FORCE_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    took = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "\x1b[1m" in done.stdout  # FORCE_COLOR colours even into a pipe
    return ANSI.sub("", done.stdout), took


def section(out: str, title: str) -> str:
    """The transcript from `title` to the next blank-line-separated heading."""
    start = out.index(title)
    rest = out[start:]
    heads = ("#", "DM to", "What the customers", "Figures", "Done in")
    ends = [rest.find(f"\n\n{h}") for h in heads]
    return rest[: min(e for e in ends if e > 0)]


def thread(block: str, root: str) -> str:
    """One thread of a channel section: its root line up to the next root."""
    start = block.index(f"  relaydesk: {root}")
    end = block.find("\n\n", start)
    return block[start : end if end > 0 else None]


def answer(out: str, command: str) -> str:
    """The answer only one person sees, shown in the narration after `command`: its
    lines (stripped), up to the next narration line."""
    rest = out[out.index(command) :].splitlines()
    start = next(i for i, line in enumerate(rest) if "(only visible to " in line)
    lines = [rest[start].strip()]
    for line in rest[start + 1 :]:
        if not line.startswith("          "):
            break
        lines.append(line[10:])
    return "\n".join(lines)


def after(block: str, line_start: str) -> list[str]:
    """The line starting (after indentation) with `line_start`, and the one below it."""
    lines = block.splitlines()
    index = next(i for i, line in enumerate(lines) if line.strip().startswith(line_start))
    return [lines[index].strip(), lines[index + 1].strip()]


def figure(out: str, label: str) -> str:
    """The value beside `label` in an aligned list (the figures, Block Kit fields)."""
    match = re.search(rf"^ *{re.escape(label)}  +(.+)$", out, re.MULTILINE)
    assert match, f"no figure {label!r}"
    return match.group(1)


def test_the_demo_is_quick_and_leaves_nothing_behind(demo: tuple[str, float]) -> None:
    out, took = demo
    assert took < 45
    assert "nothing is left running" in out


def test_threads_show_customers_replies_and_reactions(demo: tuple[str, float]) -> None:
    out, _ = demo
    inbox = section(out, "#support-inbox")
    roots = [
        "Telegram · Ada (@ada_l) · #1",
        "Webhook · Grace · #2",
        "WhatsApp · Kofi (+233241234567) · #3",
        "Messenger · 1134343043305865 · #4",
        "Telegram · Bruno (@bruno_b) · #5",
        "Telegram · Noor (@noor_k) · #6",
        "Telegram · Omar (@omar_h) · #8",
    ]
    listed = [line.strip() for line in inbox.splitlines() if line.startswith("  relaydesk: ")]
    assert listed == [f"relaydesk: {root}" for root in roots]  # in the order they came in
    # A follow-up is a thread reply, its text escaped so it pings nobody.
    assert "relaydesk (from Ada on Telegram): Also the tracking link gives a 404 <!channel>" in (
        inbox
    )
    # Her photo: its caption, then the picture itself as a Slack file in the thread.
    _, shown = after(inbox, "relaydesk (from Ada on Telegram): The box came like this")
    assert shown == "[photo]"
    assert after(inbox, "[photo]")[1] == "relaydesk: 📎 photo.jpg (2,063 bytes, a Slack file)"
    _, fate = after(inbox, "Maya Lopez: Sorry Ada!")
    assert fate == "└ ✅ :white_check_mark:  delivered"
    _, fate = after(inbox, "Maya Lopez: note: opened courier ticket CR-2291")
    assert fate == "└ internal note, not sent"
    _, fate = after(inbox, "Maya Lopez: We do, from 10 to 200 euros!")
    assert fate == "└ ⚠️ :warning:  not delivered"
    assert (
        "Not delivered to the customer: Telegram refused the message: Forbidden: bot was "
        "blocked by the user" in inbox
    )
    assert "Resolved by @Maya Lopez" in inbox and "[ Reopen ]" in inbox
    assert "Handed off to Sales by @Maya Lopez" in inbox
    # Grace's rating and comment: notices in #2's thread, and #2 stays resolved
    grace = inbox[inbox.index("Webhook · Grace · #2") : inbox.index("WhatsApp · Kofi")]
    assert "relaydesk: ℹ️ Customer rating: ★★★★★ 5/5" in grace
    assert "relaydesk: ℹ️ Comment with the rating: Super quick, thank you!" in grace
    assert "✅ Resolved by @Maya Lopez" in grace


def test_the_handoff_continues_in_the_sales_channel(demo: tuple[str, float]) -> None:
    sales = section(demo[0], "#sales")
    assert "relaydesk: WhatsApp · Kofi" in sales and "Team: Sales" in sales
    _, fate = after(sales, "Sam Okafor: Hi Kofi, Sam from sales here.")
    assert fate == "└ ✅ :white_check_mark:  delivered"


def test_a_waiting_customer_escalates_to_the_person_on_call(demo: tuple[str, float]) -> None:
    out, _ = demo
    lena = thread(section(out, "#support-inbox"), "Messenger · 1134343043305865 · #4")
    assert "🚨 escalated to @Priya Shah" in lena
    assert [line.strip() for line in lena.splitlines()[4:]] == [
        "relaydesk: @Priya Shah 🚨 Escalation, level 1 · #4 · Messenger · 1134343043305865",
        "Waiting for an answer for 30 min.",
        "[ Acknowledge ] [ Claim ]",
        "relaydesk: 👌 @Priya Shah acknowledged the escalation of #4; "
        "it will not be escalated further.",
    ]
    dm = section(out, "DM to Priya Shah")
    assert "(from relaydesk, D" in dm.splitlines()[0]
    pages = dm.split("\n\n")[1:]
    assert [page.splitlines()[0].strip() for page in pages] == [
        "relaydesk: 🚨 Escalation, level 1 · #4 · Messenger · 1134343043305865",
        "relaydesk: 🚨 Manual escalation, level 1 · #5 · Telegram · Bruno (@bruno_b)",
        "relaydesk: 🚨 Escalation, level 1 · #7 · WhatsApp · Noor (+971501234567)",
    ]
    assert "Open the conversation thread" in pages[0]
    assert pages[0].splitlines()[-1].strip() == "[ Acknowledge ] [ Claim ]"
    assert answer(out, "Priya clicks Acknowledge") == (
        "relaydesk (only visible to Priya Shah): You acknowledged #4: it will not escalate further."
    )
    # Only the person on call was paged: nobody else got a DM.
    assert out.count("\nDM to ") == 1


def test_a_manual_escalation_carries_its_reason(demo: tuple[str, float]) -> None:
    out, _ = demo
    assert answer(out, "/escalate #5") == (
        "relaydesk (only visible to Maya Lopez): Paged @Priya Shah for #5."
    )
    reason = "Escalated by @Maya Lopez: blocked us on Telegram; please email him about the gift"
    bruno = thread(section(out, "#support-inbox"), "Telegram · Bruno (@bruno_b) · #5")
    assert "@Priya Shah 🚨 Manual escalation, level 1 · #5" in bruno and reason in bruno
    assert reason in section(out, "DM to Priya Shah")


def test_an_urgent_refund_is_routed_to_support_and_escalates_sooner(
    demo: tuple[str, float],
) -> None:
    support = section(demo[0], "#support  (C0SUPPORT1)")
    noor = thread(support, "WhatsApp · Noor (+971501234567) · #7")
    lines = [line.strip() for line in noor.splitlines()]
    assert lines[1] == "> I was charged twice for order 7310, I want a refund today!"
    assert "Team: Support · 🚨 escalated to @Priya Shah" in lines[2]
    assert lines[3] == "🚨 urgent · 🏷️ `refund` `billing`"
    assert lines[5:] == [
        "relaydesk: @Priya Shah 🚨 Escalation, level 1 · #7 · WhatsApp · Noor (+971501234567)",
        "Waiting for an answer for 5 min.",  # SLA_MINUTES_URGENT, not SLA_MINUTES (30)
        "[ Acknowledge ] [ Claim ]",
    ]
    # only the urgent one went to Support: the others opened in the inbox
    assert support.count("\n  relaydesk: ") == 1


def test_oncall_shows_who_now_and_the_next_shifts(demo: tuple[str, float]) -> None:
    lines = answer(demo[0], "/oncall").splitlines()
    assert re.fullmatch(
        r"relaydesk \(only visible to Maya Lopez\): 📟 On call now: @Priya Shah until "
        r"\w{3} \d\d \w{3} 09:00",
        lines[0],
    )
    assert lines[1] == "Next:"
    assert [line.split(" ", 3)[:3] for line in lines[2:5]] == [
        ["•", "@Tom", "Berg"],
        ["•", "@Priya", "Shah"],
        ["•", "@Tom", "Berg"],
    ]
    assert lines[5:] == ["Last escalation level: @Ines Duarte"]


def test_a_reaction_records_a_meaningful_moment(demo: tuple[str, float]) -> None:
    inbox = section(demo[0], "#support-inbox")
    kofi = thread(inbox, "WhatsApp · Kofi")
    assert after(kofi, "relaydesk (from Kofi on WhatsApp): Great. What would 200")[1] == (
        "└ ✨ :sparkles:"
    )
    assert "relaydesk: ✨ @Maya Lopez marked a meaningful moment with Kofi (#3)" in kofi
    for shown in (answer(demo[0], "/social-stats today"), section(demo[0], "#support-daily")):
        assert "✨ Meaningful moments: 1" in shown
        assert re.search(
            r"• \w{3} \d\d \w{3} \d\d:\d\d · @Maya Lopez · Kofi \(whatsapp, #3\)", shown
        )


def test_social_stats_shows_the_manager_todays_figures(demo: tuple[str, float]) -> None:
    shown = answer(demo[0], "/social-stats today")
    lines = shown.splitlines()
    assert lines[0] == "relaydesk (only visible to Ines Duarte): Social stats: today so far"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d 00:00 \S+ → \d{4}-\d\d-\d\d \d\d:\d\d \S+", lines[1])
    assert figure(shown, "Received") == "8 messages"
    assert figure(shown, "Conversations") == "5"
    assert figure(shown, "Response rate") == "67% (4 of 6 turns)"
    assert re.fullmatch(r"(19|20|21) min / \d\d min", figure(shown, "Median / p90"))
    assert "Unanswered now: 2, the oldest waiting 30 min" in shown
    assert "• #4 1134343043305865 (meta, unassigned): waiting 30 min" in shown
    assert "• #5 Bruno (telegram, unassigned): waiting 6 min" in shown
    assert "{" not in shown and "mrkdwn" not in shown  # Block Kit, read as text


def test_the_daily_summary_is_posted_to_the_summary_channel(demo: tuple[str, float]) -> None:
    summary = section(demo[0], "#support-daily")
    assert "(C0SUMMARY1, SLACK_SUMMARY_CHANNEL)" in summary.splitlines()[0]
    posts = [line for line in summary.splitlines() if line.startswith("  relaydesk: ")]
    now = datetime.now(UTC)  # the stage's local day is yesterday, today or tomorrow in UTC
    days = [f"{now + timedelta(days=n):%A %d %B %Y}" for n in (-1, 0, 1)]
    assert len(posts) == 1 and posts[0].startswith("  relaydesk: Daily summary: ")
    assert posts[0].removeprefix("  relaydesk: Daily summary: ") in days
    assert figure(summary, "Received") == "8 messages  ▲ 8"
    assert figure(summary, "Response rate") == "67% (4 of 6 turns)"
    assert "Unanswered at the end of the day: 2" in summary
    assert "• #5 Bruno (telegram, unassigned): waiting 6 min" in summary
    assert summary.rstrip().endswith("Escalations sent that day: 2")


def test_customers_received_the_replies_but_not_the_note(demo: tuple[str, float]) -> None:
    received = section(demo[0], "What the customers received")
    assert (  # a one-message reply with a file: the text is the file's caption
        "Telegram 5001: Sorry Ada! It is with the courier and arrives tomorrow before noon 🚚 "
        "Here is a working link: track parcel 4411, and the delivery note is attached. "
        "[document: delivery-note.pdf]"
    ) in received
    assert "WhatsApp 233241234567: Hi Kofi, Sam from sales here." in received
    assert "website chat web-7731: Done: order 5120" in received
    assert "website chat web-7731: How did we do? Please rate" in received  # on resolve
    assert "courier ticket" not in received and "gift" not in received
    assert f"Telegram 5004: {OUT_OF_HOURS_MESSAGE}" in received  # the out-of-hours reply
    assert len(received.splitlines()) == 1 + 7


def test_figures_come_from_sql(demo: tuple[str, float]) -> None:
    out = section(demo[0], "Figures (from SQL)")
    assert figure(out, "customer messages received") == "12"
    assert figure(out, "conversations") == "8"
    assert figure(out, "replies delivered") == "5"
    assert figure(out, "replies not delivered") == "1"
    assert figure(out, "internal notes") == "1"
    assert figure(out, "handoffs") == "1"
    assert figure(out, "escalation pages sent") == "3"
    assert figure(out, "escalations acknowledged") == "1"
    assert figure(out, "turns answered") == "5 of 9 (56%)"  # the auto-reply answers none
    assert figure(out, "unanswered now") == "4"
    assert figure(out, "customer ratings") == "1 (average 5.0)"
    assert re.fullmatch(r"0:(19|20|21):\d\d", figure(out, "median response time"))
    assert figure(out, "received by network") == (
        "website chat 1, Messenger 1, Telegram 7, WhatsApp 3"
    )


def test_a_saved_reply_goes_out_as_its_senders_reply(demo: tuple[str, float]) -> None:
    out, _ = demo
    assert answer(out, "/replies add sizes") == (
        "relaydesk (only visible to Maya Lopez): Added saved reply `sizes`. Send it with a "
        "conversation's Saved reply button."
    )
    assert "The search offers: sizes: Hi {customer_name}! Our jackets run small" in out
    noor = thread(section(out, "#support-inbox"), "Telegram · Noor (@noor_k) · #6")
    posted, mark = after(noor, "maya (posted by relaydesk):")
    assert posted == (
        "maya (posted by relaydesk): Hi Noor! Our jackets run small: take one size up. "
        "Your case is #6. maya, Relaydesk Outdoor"
    )
    assert mark == ":bookmark: Saved reply `sizes` sent by @Maya Lopez"
    assert "delivered" in noor.splitlines()[-1]
    assert "Answered by @Maya Lopez" in noor
    assert (
        "Telegram 5003: Hi Noor! Our jackets run small: take one size up. Your case is #6. "
        "maya, Relaydesk Outdoor"
    ) in section(out, "What the customers received")


def test_a_customer_writing_at_lunch_gets_the_out_of_hours_message_once(
    demo: tuple[str, float],
) -> None:
    out, _ = demo
    said = re.search(
        r"The desk closes for lunch at (\d\d:\d\d) \(BUSINESS_HOURS mon-sun 07:00-\1, "
        r"(\d\d:\d\d)-18:00\)",
        " ".join(out.split()),  # the narration, unwrapped
    )
    assert said, "no lunch break in the narration"
    closes, opens = said.groups()
    inbox = section(out, "#support-inbox")
    omar = [line.strip() for line in thread(inbox, "Telegram · Omar (@omar_h) · #8").splitlines()]
    assert omar[1] == "> Hi, can I still return a jacket I bought in May?"
    # still waiting for a person (no "Answered by"), and the root says when the desk opens
    day = r"\w{3} \d\d \w{3}"
    assert re.fullmatch(
        rf"⏳ Waiting since {day} {closes} · 🌙 Desk closed · opens {day} {opens}", omar[2]
    ), omar[2]
    assert omar[4:] == [  # once, though Omar wrote twice; posted by the bot, no one's reply
        "relaydesk: 🌙 Out-of-hours auto-reply sent to the customer:",
        f"> {OUT_OF_HOURS_MESSAGE}",
        "relaydesk (from Omar on Telegram): It is the green one, never worn.",
    ]
    # only the lunch scene's message fell in a closed period: every other root is open
    assert out.count("Desk closed") == 1
    # no escalation either: the SLA clock counts open time only
    assert "#8" not in section(out, "DM to Priya Shah")
    assert section(out, "What the customers received").count(OUT_OF_HOURS_MESSAGE) == 1
    # with BUSINESS_HOURS set the figures add the business-hours average; the morning's
    # replies all came while the desk was open, so it equals the wall-clock one
    shown = answer(out, "/social-stats today")
    assert re.fullmatch(r"(\d+ min) \(\1 in business hours\)", figure(shown, "Average response"))


def test_colours_only_for_a_terminal_or_when_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    assert Style.for_stdout().bold("x") == "x"
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert Style.for_stdout().bold("x") == "\x1b[1mx\x1b[0m"
    monkeypatch.setenv("NO_COLOR", "1")
    assert Style.for_stdout().bold("x") == "x"
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert Style.for_stdout().colour


def test_the_stage_always_plays_in_the_morning() -> None:
    """Whatever the hour, some zone has a morning: "today" holds the whole demo, and
    the daily summary (SUMMARY_TIME 23:59) is never due while it plays."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for hour in range(0, 366 * 24, 5):
        now = start + timedelta(hours=hour, minutes=17 * hour % 60)
        local = now.astimezone(morning_zone(now))
        assert abs(local.hour + local.minute / 60 - MORNING) <= 2, (now, local)


def test_without_the_tests_folder_the_demo_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "ROOT", tmp_path)
    assert cli.main(["demo"]) == 2
    err = capsys.readouterr().err
    assert "the demo lives in tests/demo/" in err and len(err.strip().splitlines()) == 1
