"""The Slack app manifests agree with the contract and with what the code calls."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.check import BOT_SCOPES

ROOT = Path(__file__).resolve().parents[2]
URL = "https://YOUR-HOST/slack/events"

# CONTRACT.md, "Slack behaviour".
COMMANDS = {"/social-stats", "/handoff", "/escalate", "/oncall", "/replies"}
MESSAGE_SHORTCUTS = ["relaydesk.handoff", "relaydesk.saved_reply", "relaydesk.moment"]

# The bot scope each Web API method needs (None: no scope). A method the code
# starts calling must be added here, and its scope to both manifests.
SCOPES: dict[str, tuple[str, ...] | None] = {
    "auth.test": None,
    "apps.connections.open": None,  # app-level token (connections:write), not a bot scope
    "chat.postMessage": ("chat:write",),
    "chat.update": ("chat:write",),
    "chat.postEphemeral": ("chat:write",),
    "chat.delete": ("chat:write",),
    "chat.getPermalink": None,
    "reactions.add": ("reactions:write",),
    "reactions.remove": ("reactions:write",),
    "conversations.open": ("im:write",),
    "conversations.info": ("channels:read", "groups:read"),
    "conversations.members": ("channels:read", "groups:read"),
    # reading back our own posts' metadata (include_all_metadata) needs no more scope
    "conversations.history": ("channels:history", "groups:history"),
    "conversations.replies": ("channels:history", "groups:history"),
    "users.info": ("users:read",),
    "bots.info": ("users:read",),
    "views.open": None,
    "views.update": None,
    "views.publish": None,
    "files.getUploadURLExternal": ("files:write",),
    "files.completeUploadExternal": ("files:write",),
}
_QUOTED = re.compile(
    r"[\"']((?:apps|auth|bots|chat|conversations|files|reactions|users|views)\.[a-zA-Z.]+)[\"']"
)
_SDK_CALL = re.compile(
    r"\.(apps|auth|bots|chat|conversations|files|reactions|users|views)_([a-zA-Z_]+)\("
)


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / name).read_text())
    assert isinstance(data, dict)
    return data


def methods_called() -> set[str]:
    """Web API methods named in production code, as strings or slack_sdk calls."""
    found: set[str] = set()
    for folder in ("bot", "handlers"):
        for path in (ROOT / folder).rglob("*.py"):
            source = path.read_text()
            # (a host name such as files.slack.com is no method)
            found.update(m for m in _QUOTED.findall(source) if not m.endswith(".com"))
            for namespace, name in _SDK_CALL.findall(source):
                head, *rest = name.split("_")
                found.add(f"{namespace}.{head}" + "".join(part.title() for part in rest))
    return found


@pytest.mark.parametrize("name", ["manifest.yml", "manifest.socket.yml"])
def test_manifest_matches_the_contract(name: str) -> None:
    manifest = load(name)
    features = manifest["features"]
    commands = {c["command"]: c for c in features["slash_commands"]}
    assert set(commands) == COMMANDS
    for command in commands.values():
        assert command["description"] and len(command["description"]) <= 100
    for with_args in ("/social-stats", "/handoff", "/escalate"):
        assert commands[with_args]["usage_hint"]
    assert "#N" in commands["/handoff"]["usage_hint"]
    shortcuts = features["shortcuts"]
    assert [(s["type"], s["callback_id"]) for s in shortcuts] == [
        ("message", callback) for callback in MESSAGE_SHORTCUTS
    ]
    for shortcut in shortcuts:
        assert len(shortcut["name"]) <= 24 and len(shortcut["description"]) <= 80
    assert features["bot_user"]["display_name"] == "relaydesk"
    info = manifest["display_information"]
    assert len(info["description"]) <= 140 and 175 <= len(info["long_description"]) <= 4000
    settings = manifest["settings"]
    assert set(settings["event_subscriptions"]["bot_events"]) == {
        "message.channels",
        "message.groups",
        "reaction_added",  # meaningful moments: MRM_REACTION (needs reactions:read)
        "reaction_removed",
    }
    assert settings["interactivity"]["is_enabled"] is True


@pytest.mark.parametrize("name", ["manifest.yml", "manifest.socket.yml"])
def test_check_knows_the_manifests_scopes(name: str) -> None:
    assert list(BOT_SCOPES) == load(name)["oauth_config"]["scopes"]["bot"]


def test_downloading_shared_files_needs_files_read() -> None:
    """Team files are fetched from Slack's files host with the bot token."""
    assert "FILES_HOST" in (ROOT / "bot" / "slack.py").read_text()
    assert "files:read" in load("manifest.yml")["oauth_config"]["scopes"]["bot"]


def test_scopes_cover_every_method_the_code_calls() -> None:
    called = methods_called()
    assert {"chat.postMessage", "reactions.add", "users.info", "auth.test"} <= called
    unknown = called - set(SCOPES)
    assert not unknown, f"add the scope of {sorted(unknown)} to SCOPES and the manifests"
    needed = {scope for method in called for scope in SCOPES[method] or ()}
    bot_scopes = set(load("manifest.yml")["oauth_config"]["scopes"]["bot"])
    assert needed <= bot_scopes, f"missing scopes: {sorted(needed - bot_scopes)}"
    # message.channels / message.groups need the history scopes; commands and the
    # message shortcut need `commands`.
    assert {"channels:history", "groups:history", "commands"} <= bot_scopes
    # reaction_added / reaction_removed need reactions:read.
    assert "reactions:read" in bot_scopes
    # chat:write.public is left out on purpose: the bot must be in its channels to
    # receive thread replies at all, so posting without joining would not help.
    assert "chat:write.public" not in bot_scopes


def test_http_manifest_points_every_url_at_slack_events() -> None:
    manifest = load("manifest.yml")
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is False
    assert settings["event_subscriptions"]["request_url"] == URL
    assert settings["interactivity"]["request_url"] == URL
    # the saved replies' external select loads its options from here
    assert settings["interactivity"]["message_menu_options_url"] == URL
    assert {c["url"] for c in manifest["features"]["slash_commands"]} == {URL}


def test_socket_manifest_is_the_http_one_without_urls() -> None:
    http, socket = load("manifest.yml"), load("manifest.socket.yml")
    assert socket["settings"]["socket_mode_enabled"] is True
    del http["settings"]["event_subscriptions"]["request_url"]
    del http["settings"]["interactivity"]["request_url"]
    del http["settings"]["interactivity"]["message_menu_options_url"]
    for command in http["features"]["slash_commands"]:
        del command["url"]
    http["settings"]["socket_mode_enabled"] = True
    assert socket == http
    assert "YOUR-HOST" not in (ROOT / "manifest.socket.yml").read_text()
