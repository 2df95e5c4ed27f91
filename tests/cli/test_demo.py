"""`python -m bot demo` end to end: the transcript a newcomer sees."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import bot.__main__ as cli
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
    ends = [rest.find(f"\n\n{h}") for h in ("#", "What the customers", "Figures", "Done in")]
    return rest[: min(e for e in ends if e > 0)]


def after(block: str, line_start: str) -> list[str]:
    """The line starting (after indentation) with `line_start`, and the one below it."""
    lines = block.splitlines()
    index = next(i for i, line in enumerate(lines) if line.strip().startswith(line_start))
    return [lines[index].strip(), lines[index + 1].strip()]


def figure(out: str, label: str) -> str:
    match = re.search(rf"^  {re.escape(label)}\s+(.+)$", out, re.MULTILINE)
    assert match, f"no figure {label!r}"
    return match.group(1)


def test_the_demo_is_quick_and_leaves_nothing_behind(demo: tuple[str, float]) -> None:
    out, took = demo
    assert took < 45
    assert "nothing is left running" in out


def test_threads_show_customers_replies_and_reactions(demo: tuple[str, float]) -> None:
    out, _ = demo
    inbox = section(out, "#support-inbox")
    for root in (
        "Telegram · Ada (@ada_l) · #1",
        "Webhook · Grace · #2",
        "WhatsApp · Kofi",
        "Messenger · 1134343043305865 · #4",
        "Telegram · Bruno (@bruno_b) · #5",
    ):
        assert f"relaydesk: {root}" in inbox
    # A follow-up is a thread reply, its text escaped so it pings nobody.
    assert "relaydesk (from Ada on Telegram): Also the tracking link gives a 404 <!channel>" in (
        inbox
    )
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


def test_the_handoff_continues_in_the_sales_channel(demo: tuple[str, float]) -> None:
    sales = section(demo[0], "#sales")
    assert "relaydesk: WhatsApp · Kofi" in sales and "Team: Sales" in sales
    _, fate = after(sales, "Sam Okafor: Hi Kofi, Sam from sales here.")
    assert fate == "└ ✅ :white_check_mark:  delivered"


def test_customers_received_the_replies_but_not_the_note(demo: tuple[str, float]) -> None:
    received = section(demo[0], "What the customers received")
    assert "Telegram 5001: Sorry Ada!" in received
    assert "WhatsApp 233241234567: Hi Kofi, Sam from sales here." in received
    assert "website chat web-7731: Done: order 5120" in received
    assert "courier ticket" not in received and "gift" not in received
    assert len(received.splitlines()) == 1 + 4


def test_figures_come_from_sql(demo: tuple[str, float]) -> None:
    out = section(demo[0], "Figures (from SQL)")
    assert figure(out, "customer messages received") == "7"
    assert figure(out, "conversations") == "5"
    assert figure(out, "replies delivered") == "4"
    assert figure(out, "replies not delivered") == "1"
    assert figure(out, "internal notes") == "1"
    assert figure(out, "handoffs") == "1"
    assert figure(out, "turns answered") == "4 of 6 (67%)"
    assert figure(out, "unanswered now") == "2"
    assert re.fullmatch(r"0:(19|20|21):\d\d", figure(out, "median response time"))
    assert figure(out, "received by network") == (
        "website chat 1, Messenger 1, Telegram 3, WhatsApp 2"
    )


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


def test_without_the_tests_folder_the_demo_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "ROOT", tmp_path)
    assert cli.main(["demo"]) == 2
    err = capsys.readouterr().err
    assert "the demo lives in tests/demo/" in err and len(err.strip().splitlines()) == 1
