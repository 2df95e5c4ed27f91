"""Misconfigurations stop `serve` (and `migrate`) at start: exit 2, one sentence, no traceback.

`tests/integration/test_serve.py` covers an inbox channel given by name.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD = {
    "SLACK_BOT_TOKEN": "xoxb-1-2-3",
    "SLACK_SIGNING_SECRET": "signing-secret",
    "SLACK_INBOX_CHANNEL": "C0INBOX01",
    "SLACK_API_URL": "http://127.0.0.1:9/api/",
}


def run(command: str, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "bot", command],
        cwd=cwd,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout == ""
    return done.returncode, done.stderr


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"SLACK_BOT_TOKEN": ""}, "SLACK_BOT_TOKEN is required"),
        ({"SLACK_BOT_TOKEN": "xoxp-user-token"}, "must be a bot token starting with xoxb-"),
        ({"SLACK_SIGNING_SECRET": ""}, "SLACK_SIGNING_SECRET is required in HTTP mode"),
        ({"SLACK_APP_TOKEN": "xoxb-not-an-app-token"}, "SLACK_APP_TOKEN must be an app-level"),
        ({"SLACK_CHANNEL_WHATSAPP": "whatsapp-inbox"}, "SLACK_CHANNEL_WHATSAPP must be a channel"),
        ({"SLACK_TEAM_CHANNEL_SALES": "#sales"}, "SLACK_TEAM_CHANNEL_SALES must be a channel ID"),
        (
            {"DATABASE_URL": "postgresql+asyncpg://app:pw@db:notaport/relay"},
            "DATABASE_URL is not a valid database URL",
        ),
        ({"DATABASE_URL": "postgresql://app@db/relay"}, "DATABASE_URL must start with"),
        ({"DATABASE_URL": "mysql+aiomysql://app@db/relay"}, "DATABASE_URL must start with"),
        (
            {"DATABASE_URL": "postgresql+asyncpg://app:pw@127.0.0.1:1/relay"},
            "DATABASE_URL cannot be reached",
        ),
        (
            {"DATABASE_URL": "sqlite+aiosqlite:////no/such/folder/relay.db"},
            "DATABASE_URL cannot be reached",
        ),
        ({"REDIS_URL": "redis://127.0.0.1:1/0"}, "REDIS_URL cannot be reached"),
        ({"REDIS_URL": "http://cache:6379"}, "REDIS_URL is not a valid Redis URL"),
    ],
)
def test_serve_refuses_to_start(overrides: dict[str, str], expected: str, tmp_path: Path) -> None:
    env = {k: v for k, v in {**GOOD, **overrides}.items() if v}
    code, err = run("serve", env, tmp_path)
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("relaydesk: ") and expected in err


def test_migrate_refuses_a_bad_database_url(tmp_path: Path) -> None:
    env = {**GOOD, "DATABASE_URL": "postgresql+asyncpg://app:pw@db:notaport/relay"}
    code, err = run("migrate", env, tmp_path)
    assert code == 2 and "DATABASE_URL is not a valid database URL" in err
    assert len(err.strip().splitlines()) == 1
