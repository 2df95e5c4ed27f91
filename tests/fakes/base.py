"""One local HTTP server base for every fake external API.

A fake listens on 127.0.0.1 (an ephemeral port unless one is given), records
each request as a `Call` before answering it, and can be told to fail, to be
slow, or to be down for a while. Subclasses only declare routes and answers.

Method names in `fail`, `delay`, `calls_to` and `wait_for` are shell-style
patterns matched case-sensitively (`fnmatchcase`): an exact name such as
`chat.postMessage` matches itself, `*` matches every call.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from fnmatch import fnmatchcase
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import CIMultiDict

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Form fields that carry JSON text (Slack's blocks, Telegram's reply_markup,
# Graph's recipient/message when sent form-encoded): decoded into params.
JSON_FORM_FIELDS = frozenset(
    {
        "blocks",
        "attachments",
        "view",
        "metadata",
        "reply_markup",
        "reply_parameters",
        "recipient",
        "message",
        "reply",
    }
)


@dataclass
class Call:
    """One request a fake received, and the HTTP status it answered with."""

    method: str
    params: dict[str, Any]
    headers: Mapping[str, str]
    body: bytes
    at: float
    http_method: str = "POST"
    path: str = "/"
    status: int = 0
    injected: bool = False

    @property
    def json(self) -> Any:
        """The body parsed as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


_CALL = web.RequestKey("fake_call", Call)


@dataclass
class Fault:
    """An injected failure: matching calls get `status` instead of an answer."""

    pattern: str
    status: int
    remaining: int | None = None
    retry_after: float | None = None
    body: dict[str, Any] | str | bytes | None = None
    until: float | None = None
    skip: int = 0  # matching calls answered normally before the fault starts

    def active(self, now: float) -> bool:
        if self.until is not None and now >= self.until:
            return False
        return self.remaining is None or self.remaining > 0


@dataclass
class _Delay:
    pattern: str
    seconds: float


def parse_params(query: Mapping[str, str], body: bytes, content_type: str) -> dict[str, Any]:
    """Query string merged with a JSON, form-urlencoded or multipart body (the body wins).

    A multipart file part becomes `{"filename", "content_type", "size", "data"}`.
    """
    params: dict[str, Any] = dict(query)
    if not body:
        return params
    if content_type.startswith("multipart/form-data"):
        params.update(_multipart(body, content_type))
        return params
    content_type = content_type.partition(";")[0].strip()
    if content_type == "application/json" or body.lstrip()[:1] == b"{":
        try:
            data = json.loads(body)
        except ValueError:
            return params
        if isinstance(data, dict):
            params.update(data)
        return params
    if content_type in ("application/x-www-form-urlencoded", ""):
        for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            params[key] = _maybe_json(key, value)
    return params


def _multipart(body: bytes, content_type: str) -> dict[str, Any]:
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(data, bytes):
            continue
        filename = part.get_filename()
        if filename is None:
            fields[name] = data.decode("utf-8", "replace")
        else:
            fields[name] = {
                "filename": filename,
                "content_type": part.get_content_type(),
                "size": len(data),
                "data": data,
            }
    return fields


def _maybe_json(key: str, value: str) -> Any:
    if key not in JSON_FORM_FIELDS or value[:1] not in ("[", "{"):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def retry_after_header(seconds: float) -> str:
    """Whole seconds, rounded up: Slack sends integers and slack_sdk parses with int()."""
    return str(max(0, math.ceil(seconds)))


class FakeServer:
    """Base of the fakes: lifecycle, call log, fault injection.

    Subclasses implement `routes()` and may override `method_name()` (how a
    request is named in the log), `error_response()` (the platform's own
    error shape for an injected status) and `url_path` (the base URL's path).
    """

    url_path = ""

    def __init__(self, *, port: int = 0) -> None:
        self.calls: list[Call] = []
        self._port = port
        self._faults: list[Fault] = []
        self._delays: list[_Delay] = []
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self._origin: str | None = None

    # lifecycle

    async def start(self) -> Self:
        app = web.Application(middlewares=[self._middleware], client_max_size=8 * 1024 * 1024)
        app.add_routes(self.routes())
        self._stopping = asyncio.Event()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self._origin = f"http://{host}:{port}"
        return self

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def origin(self) -> str:
        """`http://127.0.0.1:PORT`, without the API's base path."""
        if self._origin is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._origin

    @property
    def url(self) -> str:
        """The base URL to put in the bot's settings."""
        return self.origin + self.url_path

    # subclass hooks

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    def method_name(self, request: web.Request) -> str:
        return request.path

    def error_response(
        self, status: int, retry_after: float | None, method: str
    ) -> web.StreamResponse:
        """The answer to an injected failure when no body was given."""
        headers = {}
        if retry_after is not None:
            headers["Retry-After"] = retry_after_header(retry_after)
        return web.json_response({"error": f"injected {status}"}, status=status, headers=headers)

    # call log

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if fnmatchcase(call.method, method)]

    async def wait_for(self, method: str, count: int = 1, timeout: float = 5.0) -> list[Call]:
        """Wait until `count` calls match `method`; returns the matching calls."""
        deadline = time.monotonic() + timeout
        while True:
            matching = self.calls_to(method)
            if len(matching) >= count:
                return matching
            if time.monotonic() >= deadline:
                seen = ", ".join(f"{c.method}:{c.status}" for c in self.calls) or "nothing"
                raise AssertionError(
                    f"{type(self).__name__}: expected {count} call(s) to {method!r} within "
                    f"{timeout}s, got {len(matching)}; calls so far: {seen}"
                )
            await asyncio.sleep(0.01)

    def reset_calls(self) -> None:
        self.calls.clear()

    # fault injection

    def fail(
        self,
        method: str = "*",
        status: int = 500,
        count: int | None = 1,
        retry_after: float | None = None,
        body: dict[str, Any] | str | bytes | None = None,
        skip: int = 0,
    ) -> Fault:
        """The next `count` matching calls (None: every one until cleared) answer `status`,
        after `skip` matching calls answered normally."""
        fault = Fault(method, status, count, retry_after, body, skip=skip)
        self._faults.append(fault)
        return fault

    def fail_for(
        self, seconds: float, status: int = 503, retry_after: float | None = None
    ) -> Fault:
        """Every call fails during the next `seconds` (an outage)."""
        fault = Fault("*", status, None, retry_after, until=time.monotonic() + seconds)
        self._faults.append(fault)
        return fault

    def delay(self, method: str, seconds: float) -> None:
        """Matching calls wait `seconds` before being answered (to provoke client timeouts)."""
        self._delays.append(_Delay(method, seconds))

    def clear_faults(self) -> None:
        self._faults.clear()
        self._delays.clear()

    def _take_fault(self, method: str) -> Fault | None:
        now = time.monotonic()
        for fault in self._faults:
            if fault.active(now) and fnmatchcase(method, fault.pattern):
                if fault.skip > 0:
                    fault.skip -= 1
                    return None
                if fault.remaining is not None:
                    fault.remaining -= 1
                return fault
        return None

    def _delay_for(self, method: str) -> float:
        return sum(d.seconds for d in self._delays if fnmatchcase(method, d.pattern))

    def _fault_response(self, fault: Fault, method: str) -> web.StreamResponse:
        if fault.body is None:
            return self.error_response(fault.status, fault.retry_after, method)
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = retry_after_header(fault.retry_after)
        if isinstance(fault.body, dict):
            return web.json_response(fault.body, status=fault.status, headers=headers)
        return web.Response(
            body=fault.body, status=fault.status, headers=headers, content_type="text/plain"
        )

    def streams(self, request: web.Request) -> bool:
        """True for requests whose handler reads the body itself (large uploads)."""
        return False

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = b"" if self.streams(request) else await request.read()
        call = Call(
            method=self.method_name(request),
            params=parse_params(
                request.query, body, request.headers.get("Content-Type", request.content_type)
            ),
            headers=CIMultiDict(request.headers),
            body=body,
            at=time.monotonic(),
            http_method=request.method,
            path=request.path,
        )
        self.calls.append(call)
        wait = self._delay_for(call.method)
        if wait > 0:
            try:
                await asyncio.wait_for(self._stopping.wait(), wait)
            except TimeoutError:
                pass
        fault = self._take_fault(call.method)
        if fault is not None:
            call.injected = True
            response = self._fault_response(fault, call.method)
        else:
            request[_CALL] = call
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                call.status = exc.status
                raise
        call.status = response.status
        return response


def call_of(request: web.Request) -> Call:
    """The `Call` the middleware recorded for this request (params already parsed)."""
    return request[_CALL]
