"""Inbound requests signed exactly as each platform signs them (pure functions).

Always sign the raw bytes you send: re-serialised JSON changes the signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode


def _hmac_sha256(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def slack_headers(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Slack v0 signing: HMAC-SHA256 of `v0:<timestamp>:<body>`, hex, prefixed `v0=`."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = _hmac_sha256(secret, b"v0:" + ts.encode() + b":" + body).hex()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def meta_headers(body: bytes, app_secret: str) -> dict[str, str]:
    """Meta webhooks (Messenger, Instagram, WhatsApp): `sha256=<hex HMAC of the body>`."""
    return {"X-Hub-Signature-256": "sha256=" + _hmac_sha256(app_secret, body).hex()}


def x_headers(body: bytes, consumer_secret: str) -> dict[str, str]:
    """X Account Activity: `sha256=<base64 HMAC of the body>` keyed by the consumer secret."""
    digest = base64.b64encode(_hmac_sha256(consumer_secret, body)).decode()
    return {"x-twitter-webhooks-signature": f"sha256={digest}"}


def x_crc(token: str, consumer_secret: str) -> str:
    """The `response_token` X expects for a CRC check of `crc_token=token`."""
    digest = base64.b64encode(_hmac_sha256(consumer_secret, token.encode())).decode()
    return f"sha256={digest}"


def telegram_headers(secret: str) -> dict[str, str]:
    """Telegram sends setWebhook's secret_token verbatim; there is no HMAC."""
    return {"X-Telegram-Bot-Api-Secret-Token": secret}


def generic_headers(body: bytes, secret: str) -> dict[str, str]:
    """Relaydesk's generic webhook: `sha256=<hex HMAC-SHA256(secret, body)>`."""
    return {"X-Relaydesk-Signature": "sha256=" + _hmac_sha256(secret, body).hex()}


def slack_form(payload: dict[str, Any]) -> bytes:
    """An interactivity body: form-encoded `payload=<json>` (send as x-www-form-urlencoded)."""
    return urlencode({"payload": json.dumps(payload)}).encode()


SLASH_COMMAND_DEFAULTS: dict[str, str] = {
    "token": "verification-token",
    "team_id": "T0001",
    "team_domain": "example",
    "channel_id": "C0INBOX1",
    "channel_name": "support-inbox",
    "user_id": "U0AGENT1",
    "user_name": "agent",
    "command": "/social-stats",
    "text": "",
    "api_app_id": "A0001",
    "response_url": "https://hooks.slack.com/commands/T0001/1/fake",
    "trigger_id": "1.2.fake",
}


def slack_command_body(**fields: Any) -> bytes:
    """A slash command body like Slack's (form-encoded); `fields` override the defaults."""
    values = {**SLASH_COMMAND_DEFAULTS, **{k: str(v) for k, v in fields.items()}}
    return urlencode(values).encode()
