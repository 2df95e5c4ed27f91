"""Signed, time-limited links to `/reports`.

A link carries its filters, `expires` (Unix seconds) and `sig`: hex
HMAC-SHA256 over the expiry and every filter parameter (absent ones as empty),
so changing, adding or dropping any of them, or the expiry, invalidates it.

The key is derived, never a secret used as is: HMAC-SHA256(secret, a fixed
label). The secret is `SLACK_SIGNING_SECRET` when set, because it never
travels (Slack and the bot each hold it; only signatures cross the wire),
every HTTP-mode install has it, and only the bot's operators know it.
`API_TOKEN` is the fallback (Socket Mode may run without a signing secret):
it is a bearer credential sent in headers and handed to dashboards, so it is
the weaker of the two. The label separates the uses: a link signature is never
a valid signature of anything else, and reveals nothing of the secret. Every
process with the same settings derives the same key; rotating the secret
voids the links, which live 24 hours anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from urllib.parse import urlencode

from bot.config import Settings

LINK_LIFETIME = timedelta(hours=24)
SIGNED = ("period", "since", "until", "network", "team")
_LABEL = b"relaydesk reports link v1"


def link_key(settings: Settings, label: bytes = _LABEL) -> bytes | None:
    """The key links are signed with (one per `label`, i.e. per use); None when neither
    secret is set."""
    secret = settings.slack_signing_secret or settings.api_token
    if not secret:
        return None
    return hmac.new(secret.encode(), label, hashlib.sha256).digest()


def _signature(key: bytes, params: Mapping[str, str], expires: int) -> str:
    message = json.dumps([expires, [params.get(name, "") for name in SIGNED]])
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def signed_params(key: bytes, params: Mapping[str, str], expires: int) -> dict[str, str]:
    """`params` (filters only) with `expires` and `sig` added."""
    unknown = set(params) - set(SIGNED)
    if unknown:
        raise ValueError(f"not a report filter: {', '.join(sorted(unknown))}")
    return {**params, "expires": str(expires), "sig": _signature(key, params, expires)}


def verified_expiry(key: bytes | None, query: Mapping[str, str], now: datetime) -> int | None:
    """The link's expiry when `query` is a valid, unexpired signed link; else None."""
    expires, given = query.get("expires", ""), query.get("sig", "")
    if key is None or not expires.isdigit() or not given:
        return None
    expected = _signature(key, query, int(expires))
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return None
    return int(expires) if int(expires) > now.timestamp() else None


def report_link(settings: Settings, params: Mapping[str, str], now: datetime) -> str | None:
    """A link to `/reports` with these filters, valid LINK_LIFETIME from `now`;
    None without `PUBLIC_URL` or a secret to sign with."""
    key = link_key(settings)
    if not settings.public_url or key is None:
        return None
    expires = int((now + LINK_LIFETIME).timestamp())
    query = urlencode(signed_params(key, params, expires))
    return f"{settings.public_url.rstrip('/')}/reports?{query}"
