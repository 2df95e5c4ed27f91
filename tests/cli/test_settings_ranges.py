"""Out-of-range settings stop `serve` and `check` at start: exit 2, one sentence, no traceback.

Listening (HOST, PORT free) and Redis (database index) are checked by serve's
preflight; `check` reports them as problems (exit 1) with the same sentence.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.cli.test_config_errors import GOOD
from tests.services import require_redis

ROOT = Path(__file__).resolve().parents[2]


def run(command: str, overrides: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", command],
        cwd=cwd,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), **GOOD, **overrides},
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_sentence(done: subprocess.CompletedProcess[str], expected: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("relaydesk: ") and expected in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"PORT": "-5"}, "PORT: must be a port number from 1 to 65535"),
        ({"PORT": "99999"}, "PORT: must be a port number from 1 to 65535"),
        ({"SWEEP_SECONDS": "0"}, "SWEEP_SECONDS: must be a number of seconds above 0"),
        ({"SWEEP_SECONDS": "nan"}, "SWEEP_SECONDS: must be a number of seconds above 0"),
        ({"SWEEP_SECONDS": "inf"}, "SWEEP_SECONDS: must be a number of seconds above 0"),
        ({"SWEEP_SECONDS": "86400"}, "at most 3600"),
        ({"SLA_MINUTES": "nan"}, "SLA_MINUTES: Input should be a finite number"),
        ({"SLA_MINUTES": "inf"}, "SLA_MINUTES: Input should be a finite number"),
        ({"SLA_MINUTES": "1e15"}, "SLA_MINUTES: must be at most 525600 minutes"),
        ({"ESCALATION_REPEAT_MINUTES": "-inf"}, "ESCALATION_REPEAT_MINUTES: Input should be"),
        ({"ESCALATION_REPEAT_MINUTES": "600000"}, "ESCALATION_REPEAT_MINUTES: must be at most"),
        ({"ONCALL_ROTATION_DAYS": "0"}, "ONCALL_ROTATION_DAYS: must be a whole number of days"),
        ({"ONCALL_ROTATION_DAYS": "366"}, "from 1 to 365"),
        ({"TEAMS": ""}, "TEAMS: must name at least one team"),
    ],
)
@pytest.mark.parametrize("command", ["serve", "check"])
def test_an_out_of_range_setting_is_one_sentence(
    command: str, overrides: dict[str, str], expected: str, tmp_path: Path
) -> None:
    done = run(command, overrides, tmp_path)
    assert done.stdout == ""
    assert_one_sentence(done, expected)


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def assert_reported(
    overrides: dict[str, str], expected: str, cwd: Path, mark: str = "FAIL"
) -> None:
    """serve stops in one sentence; check reports the same sentence (as a problem, or as a
    note where it may be this bot's own serve holding the port)."""
    overrides["DATABASE_URL"] = f"sqlite+aiosqlite:///{cwd / 'relay.db'}"
    assert_one_sentence(run("serve", overrides, cwd), expected)
    checked = run("check", overrides, cwd)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "Traceback" not in checked.stderr and expected in checked.stdout, checked.stdout
    line = next(line for line in checked.stdout.splitlines() if expected in line)
    assert mark in line, line


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("203.0.113.1", "HOST 203.0.113.1 is not an address of this machine"),
        ("no-such-host.invalid", "HOST 'no-such-host.invalid' is not an address or a known name"),
    ],
)
def test_a_host_that_cannot_be_listened_on(host: str, expected: str, tmp_path: Path) -> None:
    assert_reported({"HOST": host}, expected, tmp_path)


def test_a_port_in_use(taken_port: int, tmp_path: Path) -> None:
    overrides = {"HOST": "127.0.0.1", "PORT": str(taken_port)}
    expected = f"PORT {taken_port} is already in use on HOST 127.0.0.1"
    assert_reported(overrides, expected, tmp_path, mark="--")


def test_a_redis_database_index_out_of_range(tmp_path: Path) -> None:
    url = urlsplit(require_redis())._replace(path="/9999").geturl()
    expected = "REDIS_URL is refused by Redis: DB index is out of range"
    assert_reported({"REDIS_URL": url}, expected, tmp_path)
