"""Signed, time-limited download links for files the team shares with a generic-webhook
customer (`GET /files/<token>` on PUBLIC_URL).

The token carries the Slack file's download URL, name, type, size and expiry, and an
HMAC-SHA256 over them with a key derived like the reports links' (`link_key`, its own
label): nothing is stored, and changing any byte voids it. The bot fetches the file
from Slack when the link is opened and streams it through.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.config import Settings
from bot.services.outbound import SharedFile
from bot.services.report_links import link_key

FILE_LINK_LIFETIME = timedelta(hours=24)
_LABEL = b"relaydesk file link v1"


@dataclass(frozen=True, slots=True)
class LinkedFile:
    url: str
    name: str
    mimetype: str
    size: int


def file_link(settings: Settings, shared: SharedFile, now: datetime) -> str | None:
    """The customer's link to `shared`; None without PUBLIC_URL, a secret or a URL."""
    key = link_key(settings, _LABEL)
    if not settings.public_url or key is None or shared.url is None:
        return None
    expires = int((now + FILE_LINK_LIFETIME).timestamp())
    fields = [shared.url, shared.name, shared.mimetype, shared.size, expires]
    payload = base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip("=")
    return f"{settings.public_url.rstrip('/')}/files/{payload}.{_sign(key, payload)}"


def verified_file(settings: Settings, token: str, now: datetime) -> LinkedFile | None:
    """The file a valid, unexpired token names; None for anything else."""
    key = link_key(settings, _LABEL)
    payload, _, given = token.partition(".")
    if key is None or not hmac.compare_digest(given.encode(), _sign(key, payload).encode()):
        return None
    try:
        fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        url, name, mimetype, size, expires = fields
    except (ValueError, TypeError, binascii.Error):
        return None
    if not isinstance(expires, int) or expires <= now.timestamp():
        return None
    return LinkedFile(str(url), str(name), str(mimetype), int(size))


def _sign(key: bytes, payload: str) -> str:
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()
