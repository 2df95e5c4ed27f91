"""Downloading a customer's files from the networks, streamed.

A download has its own session (files are rare next to messages, and a 100 MB
video must not share the 10-second budget of a JSON call): its bytes are read in
chunks and never held whole in memory. Failures become `MediaUnavailable`,
temporary (timeouts, 429, 5xx, a dropped connection) or not.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from bot.networks.base import Attachment, MediaStream, MediaUnavailable

CHUNK_BYTES = 256 * 1024
CONNECT_SECONDS = 10.0
READ_SECONDS = 60.0  # between two chunks: a slow network is not a dead one
MEDIA_KINDS = frozenset(
    {
        "image",
        "photo",
        "video",
        "video_note",
        "voice",
        "audio",
        "file",
        "document",
        "sticker",
        "gif",
        "animation",
    }
)
_DEFAULT_NAMES = {"image": "photo", "photo": "photo", "voice": "voice-note", "file": "document"}


def is_media(attachment: Attachment) -> bool:
    """A file worth showing in Slack (not a location, contact, link...)."""
    return attachment.kind in MEDIA_KINDS


def file_name(attachment: Attachment, mimetype: str | None) -> str:
    """The attachment's own name, or one from its kind and type (`photo.jpg`)."""
    if attachment.title and "/" not in attachment.title and "." in attachment.title:
        return attachment.title
    base = _DEFAULT_NAMES.get(attachment.kind, attachment.kind)
    extension = mimetypes.guess_extension((mimetype or "").split(";")[0].strip()) or ""
    return base + extension


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=CONNECT_SECONDS, sock_read=READ_SECONDS
        )
    )


def _refusal(platform: str, status: int, link: str | None) -> MediaUnavailable:
    temporary = status == 429 or status >= 500
    reason = f"{platform} refused the download (HTTP {status})"
    if status in (403, 404, 410):
        reason = f"{platform} no longer serves this file (HTTP {status})"
    return MediaUnavailable(reason, temporary=temporary, link=link)


async def get_json(platform: str, url: str, headers: Mapping[str, str]) -> dict[str, Any]:
    """A small JSON lookup before a download (WhatsApp's media id -> URL)."""
    async with _session() as session:
        try:
            async with session.get(url, headers=dict(headers)) as response:
                raw = await response.read()
                if response.status != 200:
                    raise _refusal(platform, response.status, None)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise MediaUnavailable(
                f"{platform} could not be reached ({type(exc).__name__})", temporary=True
            ) from None
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        data = None
    if not isinstance(data, dict):
        raise MediaUnavailable(f"{platform} answered the file lookup with no JSON", temporary=True)
    return data


async def download(
    platform: str,
    url: str,
    attachment: Attachment,
    *,
    headers: Mapping[str, str] | None = None,
    link: str | None = None,
) -> MediaStream:
    """Start a GET of `url`; the caller reads `chunks` and must `close()` the stream.

    `link` is what a person may open when the file cannot be shown (never a URL that
    carries a token)."""
    session = _session()
    try:
        response = await session.get(url, headers=dict(headers or {}))
    except (TimeoutError, aiohttp.ClientError) as exc:
        await session.close()
        raise MediaUnavailable(
            f"{platform} could not be reached ({type(exc).__name__})", temporary=True, link=link
        ) from None
    if response.status != 200:
        response.release()
        await session.close()
        raise _refusal(platform, response.status, link)

    async def close() -> None:
        response.release()
        await session.close()

    mimetype = attachment.mimetype or (
        response.content_type if response.content_type != "application/octet-stream" else None
    )
    return MediaStream(
        chunks=_chunks(platform, response, link),
        size=response.content_length if response.content_length is not None else attachment.size,
        mimetype=mimetype,
        filename=file_name(attachment, mimetype),
        close=close,
    )


async def _chunks(
    platform: str, response: aiohttp.ClientResponse, link: str | None
) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.content.iter_chunked(CHUNK_BYTES):
            yield chunk
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise MediaUnavailable(
            f"the download from {platform} broke off ({type(exc).__name__})",
            temporary=True,
            link=link,
        ) from None
