"""`python -m bot check`: the settings, and whether what they name answers.

Lists every setting (secrets masked), which networks are on, whether SQL and
Redis answer, whether the Slack token works, whether the bot is in each
configured channel and whether the configured people exist, each problem
with the exact fix. `run_check` returns the exit code: 1 if anything is
wrong, else 0. `reach_sql` and `reach_redis` are shared with `serve`'s
preflight, which turns their `Unreachable` into exit code 2.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any, Literal, TextIO
from urllib.parse import urlsplit, urlunsplit

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from redis.exceptions import ResponseError
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError

from bot.config import Settings
from bot.networks.registry import BY_NAME, NETWORKS, own_settings
from bot.serving import Unbindable, bind
from bot.slack import Slack, SlackError, SlackTemporary, make_web_client
from storage.coordination import CoordinationUnavailable, Coordinator, make_coordinator
from storage.db import Database, DatabaseUnavailable, alembic_config

TIMEOUT = 5.0
USER_SETTINGS = (
    "oncall_users",
    "escalation_manager",
    "oncall_admins",
    "stats_users",
    "allowed_users",
)

State = Literal["ok", "fail", "info"]
MARKS: dict[State, str] = {"ok": "ok", "fail": "FAIL", "info": "--"}


class Unreachable(Exception):
    """A service the settings name cannot be used; the message says why, for a person."""


@dataclass
class Finding:
    state: State
    subject: str
    detail: str
    fix: str | None = None


@dataclass
class Report:
    sections: list[tuple[str, list[Finding]]] = field(default_factory=list)

    def add(self, title: str, findings: Iterable[Finding]) -> None:
        self.sections.append((title, list(findings)))

    @property
    def problems(self) -> int:
        return sum(f.state == "fail" for _, findings in self.sections for f in findings)


# -- shared with serve's preflight --------------------------------------------
async def reach_sql(url: str, timeout: float = TIMEOUT) -> Database:
    """A `Database` that answered a ping; the caller disposes of it."""
    try:
        db = Database(url)
    except (ArgumentError, ValueError) as exc:
        raise Unreachable(f"DATABASE_URL is not a valid database URL ({exc})") from None
    try:
        await asyncio.wait_for(db.ping(), timeout)
    except (DatabaseUnavailable, TimeoutError) as exc:
        await db.dispose()
        raise Unreachable(f"DATABASE_URL cannot be reached: {exc or 'timed out'}") from None
    return db


async def reach_redis(url: str, timeout: float = TIMEOUT) -> Coordinator:
    """A Redis coordinator that answered a ping; the caller closes it."""
    try:
        coordinator = make_coordinator(url)
    except ValueError as exc:
        raise Unreachable(f"REDIS_URL is not a valid Redis URL ({exc})") from None
    try:
        await asyncio.wait_for(coordinator.ping(), timeout)
    except (CoordinationUnavailable, TimeoutError) as exc:
        await coordinator.close()
        raise Unreachable(f"REDIS_URL cannot be reached: {exc or 'timed out'}") from None
    except ResponseError as exc:  # e.g. a database index beyond the server's `databases`
        await coordinator.close()
        raise Unreachable(f"REDIS_URL is refused by Redis: {exc}") from None
    return coordinator


# -- the settings ---------------------------------------------------------------
def mask(value: str) -> str:
    """The first 4 characters and the length; nothing of a short secret."""
    shown = value[:4] if len(value) >= 12 else ""
    return f"{shown}**** ({len(value)} char{'s' if len(value) != 1 else ''})"


def hide_password(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":****@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _shown(name: str, value: Any) -> str:
    if value is None or value == "" or value == []:
        return "(unset)"
    if name in Settings.secret_names():
        return mask(str(value))
    if name in ("database_url", "redis_url"):
        return hide_password(str(value))
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def settings_table(settings: Settings) -> list[tuple[str, str]]:
    """(ENV_NAME, shown value) for every setting, in declaration order."""
    rows: list[tuple[str, str]] = []
    for name in Settings.model_fields:
        if name == "network_channels":
            rows.extend(
                (BY_NAME[network].channel_setting, channel)
                for network, channel in sorted(settings.network_channels.items())
            )
        elif name == "tones":
            rows.extend(
                (BY_NAME[network].tone_setting, tone)
                for network, tone in sorted(settings.tones.items())
            )
        elif name == "team_channels":
            rows.extend(
                (f"SLACK_TEAM_CHANNEL_{team.upper()}", channel)
                for team, channel in sorted(settings.team_channels.items())
            )
        else:
            shown = _shown(name, getattr(settings, name))
            if name not in settings.model_fields_set and shown != "(unset)":
                shown += "  (default)"
            rows.append((name.upper(), shown))
    return rows


def network_findings(settings: Settings) -> list[Finding]:
    enabled = settings.enabled_networks()
    findings: list[Finding] = []
    for network in NETWORKS:
        if network.name in enabled:
            findings.append(Finding("ok", network.name, "enabled: /webhooks/" + network.name))
            continue
        own = own_settings(network, settings)
        missing = [n.upper() for n in network.required if not getattr(settings, n)]
        if any(getattr(settings, n) for n in own):
            present = [n.upper() for n in own if getattr(settings, n)]
            findings.append(
                Finding(
                    "fail",
                    network.name,
                    "partly configured: missing " + ", ".join(missing),
                    f"set {', '.join(missing)}, or unset {', '.join(present)} to turn it off",
                )
            )
        else:
            findings.append(Finding("info", network.name, "off"))
    if not enabled:
        findings.append(
            Finding(
                "fail",
                "networks",
                "no network is enabled, so no customer message can arrive",
                "configure at least one network (see .env.example)",
            )
        )
    return findings


# -- SQL and Redis ------------------------------------------------------------------
def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _missing_sqlite_file(database_url: str) -> str | None:
    """The path of a SQLite file that does not exist yet (connecting would create it)."""
    try:
        url = make_url(database_url)
    except ArgumentError:
        return None
    path = url.database or ""
    if url.get_backend_name() != "sqlite" or path in ("", ":memory:") or Path(path).exists():
        return None
    return path


async def sql_findings(settings: Settings) -> list[Finding]:
    path = _missing_sqlite_file(settings.database_url)
    if path is not None:
        later = "; serve creates it" if settings.auto_migrate else ""
        return [
            Finding(
                "ok" if settings.auto_migrate else "fail",
                "sqlite",
                f"{path} does not exist yet{later}",
                None if settings.auto_migrate else "run: python -m bot migrate",
            )
        ]
    try:
        db = await reach_sql(settings.database_url)
    except Unreachable as exc:
        return [Finding("fail", "database", str(exc), "fix DATABASE_URL or start the database")]
    try:
        async with db.engine.connect() as connection:
            current = await connection.run_sync(_current_revision)
    finally:
        await db.dispose()
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    answers = Finding("ok", db.dialect, "answers")
    if current == head:
        return [answers, Finding("ok", "schema", f"at revision {current} (head)")]
    detail = f"at revision {current or 'none'}, head is {head}"
    if settings.auto_migrate:
        return [answers, Finding("ok", "schema", detail + "; serve upgrades it at start")]
    return [
        answers,
        Finding("fail", "schema", detail + " and AUTO_MIGRATE=false", "run: python -m bot migrate"),
    ]


async def redis_findings(settings: Settings) -> list[Finding]:
    if not settings.redis_url:
        return [Finding("info", "redis", "not set: coordination in memory (one process only)")]
    try:
        coordinator = await reach_redis(settings.redis_url)
    except Unreachable as exc:
        return [Finding("fail", "redis", str(exc), "fix REDIS_URL or start Redis")]
    await coordinator.close()
    return [Finding("ok", "redis", "answers")]


def listen_findings(settings: Settings) -> list[Finding]:
    """Whether serve could listen on HOST:PORT now (a serve already running holds it too)."""
    where = f"{settings.host}:{settings.port}"
    try:
        sockets = bind(settings.host, settings.port)
    except Unbindable as exc:
        if exc.in_use:  # most often this bot's own serve, running: a note, not a fault
            fix = "fine if that is this bot's serve; otherwise fix PORT or stop what listens there"
            return [Finding("info", "listen", str(exc), fix)]
        return [Finding("fail", "listen", str(exc), "fix HOST or PORT")]
    for sock in sockets:
        sock.close()
    return [Finding("ok", "listen", f"{where} is free")]


def routing_findings(settings: Settings) -> list[Finding]:
    """ROUTING_RULES was read and checked with the settings (a mistake exits 2): what it holds."""
    rules = settings.routing
    assert rules is not None
    teams = sorted({rule.team for rule in rules.rules if rule.team})
    detail = f"{len(rules.rules)} rule{'s' if len(rules.rules) != 1 else ''}"
    if teams:
        detail += f"; routes to {', '.join(teams)}"
    if rules.languages:
        detail += f"; detects {', '.join(rules.languages)}"
    return [Finding("ok", "rules", detail)]


# -- Slack --------------------------------------------------------------------------
# The bot scopes of manifest.yml and manifest.socket.yml (tests/cli/test_manifest.py
# keeps the three lists equal).
BOT_SCOPES = (
    "channels:history",
    "groups:history",
    "chat:write",
    "reactions:write",
    "users:read",
    "channels:read",
    "groups:read",
    "im:write",
    "files:read",
    "commands",
    "files:write",
    "chat:write.customize",  # a saved reply shows the name of the person who sent it
    "reactions:read",
)


async def slack_findings(settings: Settings, report: Report) -> None:
    """Token, app token, channels and people; adds one section each."""
    try:
        settings.require_slack()
    except ValueError as exc:
        bad_token = "SLACK_BOT_TOKEN" in str(exc)
        report.add("Slack", [Finding("fail", "settings", str(exc), "set it in .env")])
        if bad_token:
            return
    slack = Slack(make_web_client(settings.slack_bot_token, settings.slack_api_url))
    try:
        identity = await slack.call("auth.test")
    except SlackTemporary as exc:
        report.add(
            "Slack",
            [
                Finding(
                    "fail",
                    "token",
                    f"Slack did not answer at {settings.slack_api_url} ({exc.code})",
                    "check the network, or SLACK_API_URL",
                )
            ],
        )
        return
    except SlackError as exc:
        report.add(
            "Slack",
            [
                Finding(
                    "fail",
                    "token",
                    f"SLACK_BOT_TOKEN was refused: {exc.code}",
                    "copy the Bot User OAuth Token (OAuth & Permissions) into SLACK_BOT_TOKEN",
                )
            ],
        )
        return
    handle = str(identity.get("user") or "relaydesk")
    found = [
        Finding(
            "ok",
            "token",
            f"works: @{handle} ({identity.get('user_id')}) in {identity.get('team')} "
            f"({identity.get('team_id')})",
        )
    ]
    found.append(await _scopes_finding(slack))
    if settings.slack_app_token:
        found.append(await _app_token_finding(settings))
    report.add("Slack", found)
    report.add(
        "Channels",
        [await _channel_finding(slack, c, roles, handle) for c, roles in _channels(settings)],
    )
    people = _people(settings)
    if people:
        report.add("People", [await _user_finding(slack, u, r) for u, r in people])


async def _scopes_finding(slack: Slack) -> Finding:
    """Every bot scope of the manifests is granted (Slack lists them on each answer)."""
    try:
        granted = await slack.granted_scopes()
    except SlackError as exc:
        return Finding("info", "scopes", f"could not read the token's scopes ({exc.code})")
    if granted is None:
        return Finding("info", "scopes", "Slack did not list the token's scopes")
    missing = sorted(set(BOT_SCOPES) - granted)
    if missing:
        return Finding(
            "fail",
            "scopes",
            f"the token lacks {', '.join(missing)}",
            "add them (OAuth & Permissions > Bot Token Scopes, or paste manifest.yml again) "
            "and reinstall the app",
        )
    return Finding("ok", "scopes", f"all {len(BOT_SCOPES)} bot scopes granted")


async def _app_token_finding(settings: Settings) -> Finding:
    """The app-level token opens a Socket Mode connection (the URL is left unused)."""
    assert settings.slack_app_token
    app = Slack(make_web_client(settings.slack_app_token, settings.slack_api_url))
    try:
        await app.call("apps.connections.open")
    except SlackError as exc:
        return Finding(
            "fail",
            "app token",
            f"SLACK_APP_TOKEN was refused: {exc.code}",
            "create an app-level token with connections:write (Basic Information > "
            "App-Level Tokens) and enable Socket Mode",
        )
    return Finding("ok", "app token", "works: Socket Mode can connect")


def _channels(settings: Settings) -> list[tuple[str, list[str]]]:
    roles: dict[str, list[str]] = {}
    if settings.slack_inbox_channel:
        roles.setdefault(settings.slack_inbox_channel, []).append("inbox")
    for network, channel in sorted(settings.network_channels.items()):
        roles.setdefault(channel, []).append(f"{network} inbox")
    for team, channel in sorted(settings.team_channels.items()):
        roles.setdefault(channel, []).append(f"team {team}")
    if settings.summary_channel:
        roles.setdefault(settings.summary_channel, []).append("summary")
    if settings.slack_listening_channel:
        roles.setdefault(settings.slack_listening_channel, []).append("listening")
    return list(roles.items())


async def _channel_finding(slack: Slack, channel: str, roles: list[str], handle: str) -> Finding:
    subject = f"{channel} ({', '.join(roles)})"
    try:
        data = await slack.call("conversations.info", channel=channel)
    except SlackError as exc:
        if exc.code == "channel_not_found":
            fix = (
                "check the ID (channel details > About > Channel ID); for a private channel, "
                f"invite the bot first: /invite @{handle}"
            )
        elif exc.code == "missing_scope":
            fix = "add channels:read and groups:read (manifest.yml) and reinstall the app"
        else:
            fix = "check the channel ID and the app's scopes"
        return Finding("fail", subject, f"Slack says {exc.code}", fix)
    info = data.get("channel", {})
    name = f"#{info['name']}" if info.get("name") else channel
    if info.get("is_archived"):
        return Finding("fail", subject, f"{name} is archived", f"unarchive {name} or pick another")
    if not info.get("is_member"):
        return Finding(
            "fail",
            subject,
            f"the bot is not a member of {name}",
            f"invite the bot: /invite @{handle} in {name}",
        )
    return Finding("ok", subject, f"{name}: the bot is a member")


def _people(settings: Settings) -> list[tuple[str, list[str]]]:
    roles: dict[str, list[str]] = {}
    for name in USER_SETTINGS:
        value = getattr(settings, name)
        for user in [value] if isinstance(value, str) else value or []:
            roles.setdefault(user, []).append(name.upper())
    return list(roles.items())


async def _user_finding(slack: Slack, user: str, roles: list[str]) -> Finding:
    subject = f"{user} ({', '.join(roles)})"
    where = " and ".join(roles)
    try:
        data = await slack.call("users.info", user=user)
    except SlackError as exc:
        return Finding(
            "fail",
            subject,
            f"Slack says {exc.code}",
            f"use a member ID (profile > ... > Copy member ID) in {where}",
        )
    person = data.get("user", {})
    label = person.get("real_name") or person.get("name") or user
    if person.get("deleted"):
        return Finding("fail", subject, f"{label} is deactivated", f"remove {user} from {where}")
    return Finding("ok", subject, str(label))


# -- the whole check ------------------------------------------------------------
async def run_check(settings: Settings, out: TextIO = sys.stdout) -> int:
    """Print the report; 1 if anything is wrong, else 0."""
    report = Report()
    report.add("Networks", network_findings(settings))
    report.add("SQL", await sql_findings(settings))
    report.add("Redis", await redis_findings(settings))
    report.add("Listen", listen_findings(settings))
    if settings.routing is not None:
        report.add("Routing", routing_findings(settings))
    await slack_findings(settings, report)
    out.write(render(settings_table(settings), report))
    return 1 if report.problems else 0


def render(table: list[tuple[str, str]], report: Report) -> str:
    width = max(len(name) for name, _ in table)
    lines = ["Settings"]
    lines += [f"  {name.ljust(width)}  {value}" for name, value in table]
    subject_width = max(
        (len(f.subject) for _, findings in report.sections for f in findings), default=0
    )
    for title, findings in report.sections:
        lines += ["", title]
        for finding in findings:
            mark = MARKS[finding.state].ljust(4)
            lines.append(f"  {mark}  {finding.subject.ljust(subject_width)}  {finding.detail}")
            if finding.fix:
                lines.append(f"  {'':4}  {'':{subject_width}}  fix: {finding.fix}")
    problems = report.problems
    lines += [
        "",
        f"{problems} problem{'s' if problems != 1 else ''} found."
        if problems
        else "Everything checks out.",
    ]
    return "\n".join(lines) + "\n"
