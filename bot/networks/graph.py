"""Meta's Graph platform, shared by the Meta and WhatsApp adapters.

The `hub.*` subscription handshake, the `X-Hub-Signature-256` header, the 24-hour
messaging window, the mapping of Graph API errors to `DeliveryError`, and the
Messenger and Instagram user profile lookups.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from bot.networks.base import (
    DeliveryError,
    ForbiddenError,
    HandshakeAnswer,
    Profile,
    ProfileUnavailable,
)
from bot.networks.http import HttpAnswer, JsonHttp, retry_after

MESSAGING_WINDOW = timedelta(hours=24)
PROFILE_SECONDS = 5.0  # a profile is a nicety: never worth a long wait
# The User Profile APIs: Messenger (a PSID, developers.facebook.com/docs/messenger-platform/
# identity/user-profile) and Instagram messaging (an IGSID, .../instagram-messaging/
# features/user-profile), both with the Page access token.
PROFILE_FIELDS = {"messenger": "first_name,last_name", "instagram": "name,username"}


@dataclass(frozen=True)
class GraphError:
    """The `error` object of a Graph API answer."""

    status: int
    code: int | None
    subcode: int | None
    message: str
    details: str | None

    @classmethod
    def read(cls, answer: HttpAnswer) -> GraphError:
        error = answer.data.get("error") if answer.data else None
        if not isinstance(error, dict):
            return cls(answer.status, None, None, f"HTTP {answer.status}", None)
        code, subcode = error.get("code"), error.get("error_subcode")
        data = error.get("error_data")
        details = data.get("details") if isinstance(data, dict) else None
        message = error.get("error_user_msg") or error.get("message")
        return cls(
            status=answer.status,
            code=code if isinstance(code, int) and not isinstance(code, bool) else None,
            subcode=subcode if isinstance(subcode, int) and not isinstance(subcode, bool) else None,
            message=message if isinstance(message, str) and message else f"HTTP {answer.status}",
            details=details if isinstance(details, str) else None,
        )

    def describe(self) -> str:
        parts = [self.message]
        if self.details and self.details != self.message:
            parts.append(self.details)
        code = f"code {self.code}" if self.code is not None else f"HTTP {self.status}"
        if self.subcode is not None:
            code += f"/{self.subcode}"
        return f"{': '.join(parts)} ({code})"


def graph_delivery_error(
    answer: HttpAnswer,
    *,
    platform: str,
    temporary_codes: frozenset[int],
    window_closed: bool,
    window_message: str,
) -> DeliveryError:
    """Map a failed Graph API answer to a `DeliveryError` (see the callers for the codes)."""
    error = GraphError.read(answer)
    if window_closed:
        return DeliveryError(
            f"{window_message} ({platform}: {error.describe()})",
            temporary=False,
            window_closed=True,
        )
    if answer.status == 429 or answer.status >= 500 or error.code in temporary_codes:
        return DeliveryError(
            f"{platform} is busy or rate-limiting; the reply will be retried ({error.describe()})",
            temporary=True,
            retry_after=retry_after(answer.headers),
        )
    return DeliveryError(f"{platform} refused the reply: {error.describe()}", temporary=False)


def hub_handshake(query: Mapping[str, str], verify_token: str) -> HandshakeAnswer:
    """Meta's subscription handshake: echo `hub.challenge` for our verify token only."""
    token = query.get("hub.verify_token", "")
    if query.get("hub.mode") != "subscribe" or not _same(token, verify_token):
        raise ForbiddenError("wrong hub.mode or hub.verify_token")
    challenge = query.get("hub.challenge")
    if not challenge:
        raise ForbiddenError("missing hub.challenge")
    return HandshakeAnswer(200, challenge)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def signature_header(headers: Mapping[str, str]) -> str | None:
    """`X-Hub-Signature-256`, whatever the case of the mapping's keys."""
    value = headers.get("X-Hub-Signature-256")
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == "x-hub-signature-256"), None)
    return value


async def user_profile(
    http: JsonHttp, graph_url: str, token: str, channel: str, customer_id: str
) -> Profile | None:
    """A Messenger or Instagram customer's name (and Instagram handle); None for other
    channels. Raises `ProfileUnavailable` when Graph gives no name."""
    fields = PROFILE_FIELDS.get(channel)
    if fields is None:
        return None
    try:
        answer = await http.get(
            f"{graph_url}/{customer_id}?fields={fields}",
            {"Authorization": f"Bearer {token}"},
            timeout=PROFILE_SECONDS,
        )
    except DeliveryError as exc:
        raise ProfileUnavailable(exc.message) from None
    data = answer.data or {}
    if answer.status != 200:
        raise ProfileUnavailable(GraphError.read(answer).describe())
    texts = {key: value.strip() for key, value in data.items() if isinstance(value, str)}
    handle = texts.get("username") or None
    if channel == "messenger":
        name = " ".join(part for part in (texts.get("first_name"), texts.get("last_name")) if part)
    else:
        name = texts.get("name") or (f"@{handle}" if handle else "")
    if not name:
        raise ProfileUnavailable("the profile has no name")
    return Profile(name, handle)
