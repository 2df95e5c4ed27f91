"""`python -m bot check` against good and broken settings, on the fakes."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from pathlib import Path

from bot.check import hide_password, mask, run_check
from bot.config import Settings, load_settings
from storage.db import Database
from tests.cli.conftest import Fakes

ROOT = Path(__file__).resolve().parents[2]
PEOPLE = {
    "ONCALL_USERS": "U0ONCALL1,U0ONCALL2",
    "ESCALATION_MANAGER": "U0BOSS001",
    "ALLOWED_USERS": "U0ONCALL1,U0AGENT01",
}


async def check(env: dict[str, str]) -> tuple[int, str]:
    out = io.StringIO()
    code = await run_check(load_settings(env, env_file=None), out)
    return code, out.getvalue()


def setting(out: str, name: str) -> str:
    """The value shown for one setting (the table is aligned, so split on the name)."""
    line = next(line for line in out.splitlines() if line.startswith(f"  {name} "))
    return line.removeprefix(f"  {name} ").strip()


async def run_cli(env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "check",
        cwd=cwd,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def test_secrets_show_four_characters_and_the_length() -> None:
    assert mask("xoxb-1234567890-abcdef") == "xoxb**** (22 chars)"
    assert mask("short") == "**** (5 chars)"
    assert (
        hide_password("postgresql+asyncpg://app:s3cret@db:5432/relay")
        == "postgresql+asyncpg://app:****@db:5432/relay"
    )
    assert hide_password("redis://localhost:6379/0") == "redis://localhost:6379/0"


async def test_good_settings_pass(fakes: Fakes) -> None:
    env = fakes.environment(
        SLACK_APP_TOKEN="xapp-1-A0001-123-abcdef",
        SLACK_SUMMARY_CHANNEL="C0SUMMARY1",
        **PEOPLE,
    )
    db = Database(env["DATABASE_URL"])
    await db.migrate()
    await db.dispose()
    fakes.slack.add_user("U0ONCALL1", "Olga Oncall")

    code, out = await check(env)

    assert code == 0, out
    assert out.rstrip().endswith("Everything checks out.")
    for secret in ("xoxb-test-token", "test-signing-secret", "tg-secret-123", "meta-app-secret"):
        assert secret not in out
    assert setting(out, "SLACK_BOT_TOKEN") == "xoxb**** (15 chars)"
    assert setting(out, "TEAMS") == "support,sales  (default)"
    assert setting(out, "SLACK_TEAM_CHANNEL_SALES") == "C0SALES01"
    assert setting(out, "REDIS_URL") == "(unset)"
    for network in ("telegram", "meta", "whatsapp", "x", "generic"):
        assert f"enabled: /webhooks/{network}" in out
    assert "(head)" in out
    assert "works: @relaydesk (UBOT0001) in Example (T0001)" in out
    assert "works: Socket Mode can connect" in out
    assert "C0INBOX01 (inbox)" in out and "#c0summary1: the bot is a member" in out
    assert "U0ONCALL1 (ONCALL_USERS, ALLOWED_USERS)" in out and "Olga Oncall" in out
    assert fakes.slack.calls_to("apps.connections.open")[0].headers["Authorization"] == (
        "Bearer xapp-1-A0001-123-abcdef"
    )


async def test_broken_settings_name_each_problem_and_its_fix(fakes: Fakes) -> None:
    fakes.slack.not_in_channels.add("C0SALES01")
    fakes.slack.missing_channels.add("C0SUPPORT1")
    fakes.slack.users["U0ONCALL2"] = {"id": "U0ONCALL2", "name": "gone", "deleted": True}
    fakes.slack.fail(
        "users.info", status=200, body={"ok": False, "error": "user_not_found"}, count=1
    )
    env = fakes.environment(
        WHATSAPP_PHONE_NUMBER_ID="", REDIS_URL="redis://127.0.0.1:1/0", **PEOPLE
    )

    code, out = await check(env)

    assert code == 1
    assert "6 problems found." in out
    assert "FAIL  whatsapp" in out and "partly configured: missing WHATSAPP_PHONE_NUMBER_ID" in out
    assert "fix: set WHATSAPP_PHONE_NUMBER_ID, or unset WHATSAPP_TOKEN to turn it off" in out
    assert "REDIS_URL cannot be reached" in out
    assert "the bot is not a member of #c0sales01" in out
    assert "fix: invite the bot: /invite @relaydesk in #c0sales01" in out
    assert "C0SUPPORT1 (team support)" in out and "Slack says channel_not_found" in out
    assert "U0ONCALL1 (ONCALL_USERS, ALLOWED_USERS)" in out and "Slack says user_not_found" in out
    assert "fix: use a member ID (profile > ... > Copy member ID) in ONCALL_USERS and " in out
    assert "gone is deactivated" in out


async def test_a_refused_token_stops_the_slack_checks(fakes: Fakes) -> None:
    fakes.slack.token = "xoxb-the-real-one"

    code, out = await check(fakes.environment(SLACK_APP_TOKEN="xapp-1-A0001-123-abcdef"))

    assert code == 1
    assert "SLACK_BOT_TOKEN was refused: invalid_auth" in out
    assert "fix: copy the Bot User OAuth Token (OAuth & Permissions) into SLACK_BOT_TOKEN" in out
    assert "Channels" not in out
    assert fakes.slack.calls_to("conversations.info") == []


async def test_an_old_schema_without_auto_migrate_asks_for_migrate(fakes: Fakes) -> None:
    env = fakes.environment(AUTO_MIGRATE="false")
    db = Database(env["DATABASE_URL"])
    await db.ping()  # creates the file, no tables
    await db.dispose()

    code, out = await check(env)

    assert code == 1
    assert "at revision none, head is" in out and "fix: run: python -m bot migrate" in out


async def test_exit_codes_of_the_command(fakes: Fakes) -> None:
    good, out, _ = await run_cli(fakes.environment(), fakes.tmp_path)
    assert good == 0, out
    fakes.slack.not_in_channels.add("C0INBOX01")
    broken, out, _ = await run_cli(fakes.environment(), fakes.tmp_path)
    assert broken == 1 and "/invite @relaydesk in #c0inbox01" in out
    invalid, out, err = await run_cli(
        fakes.environment(SLACK_TEAM_CHANNEL_SALES="sales"), fakes.tmp_path
    )
    assert invalid == 2 and out == ""
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "SLACK_TEAM_CHANNEL_SALES must be a channel ID" in err


def named_secret(name: str) -> bool:
    return name.endswith(("_token", "_secret")) or "password" in name


def test_every_token_secret_or_password_setting_is_declared_secret() -> None:
    named = {name for name in Settings.model_fields if named_secret(name)}
    assert len(named) > 10, "the rule above no longer matches the settings"
    assert named <= Settings.secret_names()
    assert Settings.secret_names() <= set(Settings.model_fields)


# Values for the settings whose format is checked; every other string setting gets a
# distinctive value of its own, and each secret one of its own length.
FORMATTED = {
    "LOG_FORMAT": "json",
    "TIMEZONE": "Europe/Berlin",
    "ESCALATION_MANAGER": "U0BOSS001",
    "REDIS_URL": "redis://:redis-password-7d1e@127.0.0.1:1/0",
    "PUBLIC_URL": "https://desk.example.com",
    "BUSINESS_HOURS": "mon-fri 09:00-18:00",
    "HOLIDAYS": "2026-12-25",
    "ROUTING_RULES": str(ROOT / "bot" / "routing.example.toml"),
    "SLACK_LISTENING_CHANNEL": "C0LISTEN01",
}
PREFIXES = {"SLACK_BOT_TOKEN": "xoxb-", "SLACK_APP_TOKEN": "xapp-"}


async def test_check_masks_every_secret_setting(fakes: Fakes) -> None:
    env = fakes.environment(**FORMATTED)
    secrets = Settings.secret_names() | {n for n in Settings.model_fields if named_secret(n)}
    for index, (name, info) in enumerate(Settings.model_fields.items()):
        key = name.upper()
        if name in secrets:
            env[key] = f"{PREFIXES.get(key, '')}{name}-distinctive-{'x' * index}"
        elif key not in env and info.annotation in (str, str | None):
            env[key] = f"{name}-distinctive"
    fakes.slack.token = env["SLACK_BOT_TOKEN"]

    code, out, err = await run_cli(env, fakes.tmp_path)

    assert code == 1, err  # REDIS_URL does not answer
    assert "redis-password-7d1e" not in out + err
    assert setting(out, "REDIS_URL") == "redis://:****@127.0.0.1:1/0"
    assert secrets
    for name in secrets:
        value = env[name.upper()]
        assert value not in out + err, name
        assert setting(out, name.upper()) == mask(value)


async def test_a_missing_scope_is_a_problem_with_its_fix(fakes: Fakes) -> None:
    fakes.slack.scopes.remove("files:read")

    code, out = await check(fakes.environment())

    assert code == 1
    assert "the token lacks files:read" in out
    assert "and reinstall the app" in out
