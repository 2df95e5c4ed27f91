"""A rules file (`ROUTING_RULES`) with a mistake stops `check` and `serve` alike: exit 2 and
one sentence naming the file's line; a good one is summed up by `check`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cli.conftest import Fakes
from tests.cli.test_check import check
from tests.cli.test_config_errors import GOOD, run

ROOT = Path(__file__).resolve().parents[2]
CHANNELS = {"SLACK_TEAM_CHANNEL_SUPPORT": "C0SUPPORT1", "SLACK_TEAM_CHANNEL_SALES": "C0SALES01"}

BAD = [
    # (file, line, words of the message)
    (
        '[[rule]]\nkeywords = ["refund"]\npriority = "urgent"\nteam = "billing"\n',
        4,
        "unknown team 'billing' (TEAMS: support, sales)",
    ),
    (
        '# comment\n\n[[rule]]\nregex = "order (#"\ntags = ["order"]\n',
        4,
        "regex 'order (#' is not a valid regular expression",
    ),
    (
        '[[rule]]\ntags = ["x"]\n[[rule]]\nkeywords = ["refund"]\npriority = "asap"\n',
        5,
        "unknown priority 'asap'",
    ),
    ('[[rule]]\nkeywords = ["refund"\ntags = ["x"]\n', 3, "not valid TOML"),
]


@pytest.mark.parametrize(("text", "line", "expected"), BAD)
@pytest.mark.parametrize("command", ["check", "serve"])
def test_a_bad_rules_file_stops_with_its_line(
    command: str, text: str, line: int, expected: str, tmp_path: Path
) -> None:
    (tmp_path / "rules.toml").write_text(text, encoding="utf-8")
    env = {**GOOD, **CHANNELS, "ROUTING_RULES": "rules.toml"}

    code, err = run(command, env, tmp_path)

    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"relaydesk: ROUTING_RULES: rules.toml, line {line}: "), err
    assert expected in err


def test_a_missing_rules_file_stops_serve(tmp_path: Path) -> None:
    code, err = run("serve", {**GOOD, "ROUTING_RULES": "missing.toml"}, tmp_path)
    assert code == 2
    assert err.strip() == (
        "relaydesk: ROUTING_RULES: missing.toml: cannot be read (No such file or directory)"
    )


def test_an_urgent_sla_must_be_positive(tmp_path: Path) -> None:
    code, err = run("serve", {**GOOD, "SLA_MINUTES_URGENT": "0"}, tmp_path)
    assert code == 2 and "SLA_MINUTES_URGENT: must be a positive number of minutes" in err


async def test_check_sums_up_good_rules(fakes: Fakes) -> None:
    env = fakes.environment(ROUTING_RULES=str(ROOT / "bot" / "routing.example.toml"))
    code, out = await check(env)
    assert code == 0, out
    assert re.search(r"\n\s+ok\s+rules\s+5 rules; routes to sales; detects en, es\n", out), out
