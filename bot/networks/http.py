"""HTTP sending shared by every adapter: one session each, errors as DeliveryError."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from bot.networks.base import DeliveryError, OutgoingFile

JSONObject = dict[str, Any]
HTTP_TIMEOUT_SECONDS = 10.0
UPLOAD_TIMEOUT_SECONDS = 600.0  # a file of tens of MB on a slow link


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: Mapping[str, str]
    data: JSONObject | None


class JsonHttp:
    """One lazily created `aiohttp.ClientSession` (10 s total timeout) posting JSON.

    An injected session belongs to the caller and is never closed here.
    """

    def __init__(self, platform: str, session: aiohttp.ClientSession | None = None) -> None:
        self._platform = platform
        self._session = session
        self._owned = session is None

    async def post(
        self,
        url: str,
        payload: JSONObject | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        data: bytes | None = None,
        form: aiohttp.FormData | None = None,
        timeout: float | None = None,
    ) -> HttpAnswer:
        """POST `payload` as JSON (or raw `data`, e.g. a signed body, or a multipart
        `form`, whose open files aiohttp streams). `timeout` overrides the session's
        (uploads take longer).

        Network failures and timeouts become temporary `DeliveryError`s.
        """
        return await self.request(
            "POST", url, payload, headers, data=data, form=form, timeout=timeout
        )

    async def delete(self, url: str, headers: Mapping[str, str] | None = None) -> HttpAnswer:
        """DELETE `url` (a message or comment we sent); errors as for `post`."""
        return await self.request("DELETE", url, None, headers)

    async def get(
        self,
        url: str,
        headers: Mapping[str, str] | None = None,
        *,
        params: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> HttpAnswer:
        """GET a JSON answer with query `params`; failures as for `post`; `timeout`
        overrides the session's."""
        return await self.request("GET", url, None, headers, params=params, timeout=timeout)

    async def request(
        self,
        method: str,
        url: str,
        payload: JSONObject | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        data: bytes | None = None,
        form: aiohttp.FormData | None = None,
        params: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> HttpAnswer:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_SECONDS)
            )
        try:
            body: bytes | aiohttp.FormData | None = form if form is not None else data
            async with self._session.request(
                method,
                url,
                json=payload if body is None else None,
                data=body,
                headers=dict(headers or {}),
                params=dict(params) if params else None,
                timeout=aiohttp.ClientTimeout(total=timeout) if timeout else self._session.timeout,
            ) as response:
                raw = await response.read()
                status, answer_headers = response.status, response.headers
        except TimeoutError:
            raise DeliveryError(
                f"{self._platform} did not answer in time", temporary=True
            ) from None
        except aiohttp.ClientError as exc:
            raise DeliveryError(
                f"{self._platform} could not be reached ({type(exc).__name__})", temporary=True
            ) from None
        try:
            parsed = json.loads(raw) if raw else None
        except (UnicodeDecodeError, ValueError):
            parsed = None
        return HttpAnswer(status, answer_headers, parsed if isinstance(parsed, dict) else None)

    async def close(self) -> None:
        if self._owned and self._session is not None:
            await self._session.close()
            self._session = None


@contextmanager
def file_form(
    fields: Mapping[str, str], field: str, file: OutgoingFile
) -> Iterator[aiohttp.FormData]:
    """A multipart form of `fields` plus the spooled file under `field`. aiohttp reads the
    open file a chunk at a time (in its executor) while sending: never held whole."""
    with open(file.path, "rb") as content:
        form = aiohttp.FormData()
        for name, value in fields.items():
            form.add_field(name, value)
        form.add_field(field, content, filename=file.name, content_type=file.mimetype)
        yield form


def retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from `Retry-After` (seconds or an HTTP date)."""
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def status_error(answer: HttpAnswer, message: str) -> DeliveryError:
    """429 and 5xx are temporary (honouring Retry-After); any other refusal is permanent."""
    temporary = answer.status == 429 or answer.status >= 500
    return DeliveryError(message, temporary=temporary, retry_after=retry_after(answer.headers))
