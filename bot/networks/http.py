"""HTTP sending shared by the adapters: one session each, errors mapped to DeliveryError."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

from bot.networks.base import DeliveryError

TIMEOUT = aiohttp.ClientTimeout(total=10)


class HttpSender:
    """Lazily opened aiohttp session; `post_json` returns (status, headers, JSON body)."""

    def __init__(self, timeout: aiohttp.ClientTimeout = TIMEOUT) -> None:
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def post_json(
        self,
        url: str,
        *,
        json_body: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Mapping[str, str], Any]:
        try:
            async with self.session().post(
                url, json=json_body, data=data, headers=headers
            ) as response:
                text = await response.text()
                try:
                    body = await response.json(content_type=None) if text else None
                except ValueError:
                    body = {"raw": text[:200]}
                return response.status, response.headers, body
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise DeliveryError(
                f"the network did not answer ({type(exc).__name__})", temporary=True
            ) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def retry_after_header(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    try:
        return float(value) if value else None
    except ValueError:
        return None


def status_error(status: int, message: str, retry_after: float | None = None) -> DeliveryError:
    """429 and 5xx are temporary; any other refusal is permanent."""
    temporary = status == 429 or status >= 500
    return DeliveryError(message, temporary=temporary, retry_after=retry_after)
