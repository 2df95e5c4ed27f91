"""Reading webhook JSON: typed getters that raise `PayloadError`, and parse results.

Shared by the adapters whose payloads are nested JSON (Meta, WhatsApp, X). Every getter
checks the type it returns, so a malformed body is a 400, never a 500.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from bot.networks.base import Attachment, DeliveryError, InboundEvent, PayloadError
from bot.networks.http import JSONObject

log = logging.getLogger(__name__)


# -- reading JSON -------------------------------------------------------------------------
MAX_DEPTH = 64
# A lone surrogate cannot be encoded (SQL, Slack, logs). NULs are the relay's to strip.
_UNPAIRED = re.compile("[\ud800-\udfff]")


# What can decode to a surrogate: an escape of one, or (bytes are decoded with
# "surrogatepass") its UTF-8-style bytes ED A0-BF, or a body in UTF-16/32.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


def _may_hide_problems(body: bytes | str) -> bool:
    """False when the decoded value cannot hold a surrogate nor nest deeper than MAX_DEPTH
    (fewer brackets than that in the whole body), so the walk below can be skipped: it
    had cost about 5% of a process's CPU per webhook."""
    if isinstance(body, str):
        if _SURROGATE_ESCAPE.search(body) or _UNPAIRED.search(body):
            return True
        brackets = body.count("{") + body.count("[")
    else:
        if json.detect_encoding(body) != "utf-8" or _SURROGATE_ESCAPE_BYTES.search(body):
            return True
        brackets = body.count(b"{") + body.count(b"[")
    return brackets > MAX_DEPTH


def load_object(body: bytes | str) -> JSONObject:
    """Decode a body that must be a JSON object: the one JSON reader of every route.

    Refused (`PayloadError`, a 400): undecodable bytes, nesting deeper than `MAX_DEPTH`,
    NaN, infinities and numbers out of range, a lone surrogate in any string or key.
    """

    def finite(text: str) -> float:
        number = float(text)
        if not math.isfinite(number):
            raise ValueError("number out of range")
        return number

    def no_constant(text: str) -> float:
        raise ValueError(f"{text} is not JSON")

    try:
        data = json.loads(body, parse_float=finite, parse_constant=no_constant)
    except RecursionError:
        raise PayloadError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except (UnicodeDecodeError, ValueError):
        raise PayloadError("body is not JSON") from None
    if not isinstance(data, dict):
        raise PayloadError("body is not a JSON object")
    if not _may_hide_problems(body):
        return data
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise PayloadError(f"JSON nested deeper than {MAX_DEPTH} levels")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str) and _UNPAIRED.search(key):
                raise PayloadError("a key holds an unpaired surrogate")
            if isinstance(item, str) and _UNPAIRED.search(item):
                raise PayloadError("a string holds an unpaired surrogate")
            if isinstance(item, dict | list):
                stack.append((item, depth + 1))
    return data


def as_object(value: Any, what: str) -> JSONObject:
    if not isinstance(value, dict):
        raise PayloadError(f"{what} is not an object")
    return value


def get_object(data: Mapping[str, Any], key: str) -> JSONObject:
    return as_object(data.get(key), key)


def opt_object(data: Mapping[str, Any], key: str) -> JSONObject | None:
    value = data.get(key)
    return None if value is None else as_object(value, key)


def get_list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise PayloadError(f"{key} is not a list")
    return value


def opt_list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    return [] if value is None else get_list(data, key)


def opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{key} is not a string")
    return value


def opt_id(data: Mapping[str, Any], key: str) -> str | None:
    """An id sent as a string or a number (Meta and X send both)."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PayloadError(f"{key} is not an id")
    text = str(value)
    if not text:
        raise PayloadError(f"{key} is empty")
    return text


def get_id(data: Mapping[str, Any], key: str) -> str:
    value = opt_id(data, key)
    if value is None:
        raise PayloadError(f"{key} is missing")
    return value


def epoch(value: Any, *, milliseconds: bool, what: str) -> datetime:
    """A Unix timestamp (number or numeric string) as an aware UTC datetime.

    An ISO-8601 string with a UTC offset is read too (some tools replay Meta payloads so).
    """
    if isinstance(value, str) and "T" in value:
        return _iso(value, what)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise PayloadError(f"{what} is not a timestamp")
    try:
        number = float(value)
    except ValueError:
        raise PayloadError(f"{what} is not a timestamp") from None
    if not math.isfinite(number):
        raise PayloadError(f"{what} is not a timestamp")
    try:
        return datetime.fromtimestamp(number / 1000 if milliseconds else number, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise PayloadError(f"{what} is out of range") from None


def _iso(value: str, what: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PayloadError(f"{what} is not a timestamp") from None
    if parsed.tzinfo is None:
        raise PayloadError(f"{what} has no UTC offset")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise PayloadError(f"{what} is out of range") from None


# -- what the team sees -------------------------------------------------------------------
# A message's `text` is what the team reads: the customer's words, then one line per other
# part (media, location, contact, order, button...), so the first message of a conversation
# shows everything too. `attachments` carry what a download needs, for the media only.
MEDIA_LABELS = {
    "image": "photo",
    "video": "video",
    "audio": "audio",
    "voice": "voice message (audio)",
    "video_note": "video message",
    "file": "document",
    "sticker": "sticker",
    "gif": "GIF",
}


def shown(*parts: str | None) -> str:
    """The lines the team reads, in order, leaving out the empty ones."""
    return "\n".join(part for part in parts if part and part.strip())


def media_line(attachment: Attachment) -> str:
    """`[photo]`, `[document: invoice.pdf]`, `[sticker: 🛠]`, with its link when it has a
    web one (a customer-supplied `javascript:` or `!here` is no link to show)."""
    label = MEDIA_LABELS.get(attachment.kind, attachment.kind)
    if attachment.title:
        label += f": {attachment.title}"
    return f"[{label}] {attachment.url}" if web_url(attachment.url) else f"[{label}]"


def web_url(url: str | None) -> bool:
    """An http(s) URL with a host: the only kind shown to the team as a link."""
    if not url:
        return False
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def location_line(lat: Any, lon: Any, *names: str | None) -> str:
    """Coordinates, any name/address, and a map link; raises if the coordinates are not numbers."""
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lat, lon)):
        raise PayloadError("location has no latitude/longitude")
    if not all(math.isfinite(v) for v in (lat, lon)):
        raise PayloadError("location has no latitude/longitude")
    words = [name for name in names if name]
    words.append(f"{lat}, {lon}")
    # Google Maps URLs (https://developers.google.com/maps/documentation/urls/get-started).
    return f"[location: {' · '.join(words)}] https://www.google.com/maps?q={lat},{lon}"


def contact_line(name: str | None, phones: list[str]) -> str:
    words = [name or "no name", *phones]
    return f"[contact: {' · '.join(words)}]"


def tapped_line(title: str) -> str:
    """A button, quick reply or list choice the customer tapped."""
    return f"tapped: {title}"


def unknown_part(network: str, kind: str) -> str:
    """The placeholder for a part we cannot show; logged with its type, never its content."""
    log.warning("%s: unknown message part %r shown as a placeholder", network, kind[:64])
    return f"[unsupported message part: {kind[:64]}]"


# -- parse results ------------------------------------------------------------------------
@dataclass(frozen=True)
class SkippedItem:
    """An item of a batch that could not be read: where it was and its ids (never text)."""

    where: str
    ids: str
    reason: str


@dataclass(frozen=True)
class ParseResult:
    events: list[InboundEvent] = field(default_factory=list)
    skipped: list[SkippedItem] = field(default_factory=list)

    def logged(self, network: str) -> list[InboundEvent]:
        for item in self.skipped:
            log.warning(
                "%s webhook: skipped %s (%s): %s", network, item.where, item.ids, item.reason
            )
        return self.events


def item_ids(item: Any, *paths: tuple[str, ...]) -> str:
    """`key=value` for the ids found at `paths` inside an item, for logs."""
    found = []
    for path in paths:
        value: Any = item
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, str | int) and not isinstance(value, bool):
            found.append(f"{'.'.join(path)}={value}")
    return ", ".join(found) or "no ids"


def context_id(context: Mapping[str, Any], key: str) -> str:
    """A string id `send` needs from a conversation's stored `reply_context`."""
    value = context.get(key)
    if not isinstance(value, str) or not value:
        raise DeliveryError(f"cannot reply: the conversation has no {key}", temporary=False)
    return value
