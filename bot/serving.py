"""Listening for HTTP: bind at start, then serve with deadlines and a connection cap.

aiohttp on its own never times out a request whose head or body stops arriving,
so a few hundred half-sent requests used to take every file descriptor. Here:
- the head of a request must be complete within HEADER_SECONDS of its first byte;
- its body within BODY_SECONDS of the head (408 otherwise);
- an idle keep-alive connection is closed after IDLE_SECONDS (aiohttp's
  `keepalive_timeout`, which it also applies from the accept to the first byte);
- at most `connection_limit()` sockets are open at once: beyond it the oldest
  connection that is not running a handler is closed to make room, so a flood
  of slow clients cannot lock out `/healthz` and the webhooks.
"""

from __future__ import annotations

import asyncio
import errno
import faulthandler
import logging
import resource
import signal
import socket
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)

HEADER_SECONDS = 10.0
BODY_SECONDS = 20.0  # 1 MiB (the body limit) at ~50 KiB/s
# Longer than the 60 s idle timeout of common load balancers, so that they, not we,
# close an idle connection first (a proxy reusing one we just closed answers 502).
IDLE_SECONDS = 75.0
MAX_CONNECTIONS = 4096  # per process; run more processes for more
# Descriptors kept for everything but inbound connections: SQL and Redis pools,
# Slack and network clients, logs, the event loop's own.
RESERVED_DESCRIPTORS = 256
BACKLOG = 128
# After SIGTERM: requests (4 s) and the dispatcher (4 s) have had their time by then.
HANG_SECONDS = 12

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Unbindable(Exception):
    """HOST and PORT cannot be listened on; the message says why, for a person."""

    def __init__(self, message: str, *, in_use: bool = False) -> None:
        super().__init__(message)
        self.in_use = in_use


def bind(host: str, port: int) -> list[socket.socket]:
    """Bound sockets for every address HOST resolves to ('' or 0.0.0.0: all), like aiohttp."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        problem = f"HOST '{host}' is not an address or a known name ({exc.strerror})"
        raise Unbindable(problem) from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        in_use = exc.errno == errno.EADDRINUSE
        raise Unbindable(_bind_problem(host, port, exc), in_use=in_use) from None
    return sockets


def _bind_problem(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"PORT {port} is already in use on HOST {host} (another process listens there)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"HOST {host} is not an address of this machine (use 0.0.0.0 for all of them)"
    if exc.errno == errno.EACCES:
        return f"PORT {port} needs privileges on this machine (use a port from 1024 up)"
    return f"cannot listen on HOST {host} PORT {port}: {exc.strerror}"


def connection_limit() -> int:
    """Open inbound sockets allowed, under this process's descriptor limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return min(MAX_CONNECTIONS, max(soft // 2, soft - RESERVED_DESCRIPTORS))


class BodyTimeout(Exception):
    """Fed into a request body stream that did not finish in time."""


class _Connection(web.RequestHandler):
    """aiohttp's connection handler, counted by a `ConnectionGuard`, with a head deadline."""

    def __init__(
        self, guard: ConnectionGuard, manager: web.Server, loop: asyncio.AbstractEventLoop
    ) -> None:
        # No access log, as `web.run_app(access_log=None)` had (aiohttp types it non-optional).
        access_log: logging.Logger | None = None
        super().__init__(
            manager,
            loop=loop,
            keepalive_timeout=IDLE_SECONDS,
            access_log=access_log,  # type: ignore[arg-type]
        )
        self._guard = guard
        self._awaiting_head = True
        self._head_deadline: asyncio.TimerHandle | None = None
        self._shed = False
        self.busy = False  # a handler runs on a complete request: not to be shed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self._shed:
            self.force_close()

    def data_received(self, data: bytes) -> None:
        if self._awaiting_head and self._head_deadline is None:
            self._head_deadline = self._loop.call_later(HEADER_SECONDS, self.force_close)
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._guard.closed(self)
        self._cancel_head_deadline()
        super().connection_lost(exc)

    def shed(self) -> None:
        """Close now, or as soon as the socket is handed over."""
        self._shed = True
        self.force_close()

    def head_received(self) -> None:
        self._awaiting_head = False
        self._cancel_head_deadline()

    def body_received(self) -> None:
        self.busy = True

    def request_done(self) -> None:
        self._awaiting_head = True
        self.busy = False

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None


class ConnectionGuard:
    """The protocol factory: one `_Connection` per accepted socket, at most `limit` open.

    A socket counts from its accept (when the loop calls the factory) to
    `connection_lost`. At the limit the oldest connection without a running
    handler is closed; if every one is running a handler, the new one is.
    """

    def __init__(self, server: web.Server, limit: int) -> None:
        self._server = server
        self._loop = asyncio.get_running_loop()
        self.limit = limit
        self._open: dict[_Connection, None] = {}  # oldest first
        self._full = False

    def __call__(self) -> _Connection:
        connection = _Connection(self, self._server, self._loop)
        if len(self._open) < self.limit:
            self._full = False
        elif not self._make_room():
            connection.shed()
            return connection
        self._open[connection] = None
        return connection

    def _make_room(self) -> bool:
        if not self._full:
            self._full = True
            log.warning("%d connections open: closing the oldest idle ones", self.limit)
        oldest = next((c for c in self._open if not c.busy), None)
        if oldest is None:
            return False
        del self._open[oldest]
        oldest.shed()
        return True

    def closed(self, connection: _Connection) -> None:
        self._open.pop(connection, None)


@web.middleware
async def _deadlines(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Marks the connection's request phases and gives the body BODY_SECONDS to arrive."""
    connection = request.protocol
    if not isinstance(connection, _Connection):
        return await handler(request)
    connection.head_received()
    body = request.content
    late: asyncio.TimerHandle | None = None
    if not body.is_eof():
        late = asyncio.get_running_loop().call_later(
            BODY_SECONDS, body.set_exception, BodyTimeout()
        )
        body.on_eof(late.cancel)
    body.on_eof(connection.body_received)
    try:
        return await handler(request)
    except BodyTimeout:
        response = web.json_response(
            {"error": f"request body not received within {BODY_SECONDS:g} s"}, status=408
        )
        response.force_close()
        return response
    finally:
        if late is not None:
            late.cancel()
        connection.request_done()


def run(
    app: web.Application,
    sockets: list[socket.socket],
    *,
    shutdown_timeout: float,
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """Serve `app` on the bound `sockets` until SIGINT or SIGTERM, then stop gracefully."""
    app.middlewares.append(_deadlines)
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_serve(app, sockets, shutdown_timeout))


async def _serve(app: web.Application, sockets: list[socket.socket], shutdown: float) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=shutdown)
    await runner.setup()
    listeners: list[asyncio.Server] = []
    try:
        assert runner.server is not None  # set by setup()
        guard = ConnectionGuard(runner.server, connection_limit())
        for sock in sockets:
            listeners.append(await loop.create_server(guard, sock=sock, backlog=BACKLOG))
        log.info("listening (at most %d connections)", guard.limit)
        await stop.wait()
        log.info("stopping: finishing requests in flight")
        # A shutdown that hangs says where, then ends: platforms kill a process that
        # outlives its grace period anyway, and this one has left a trace of why.
        faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
    finally:
        for listener in listeners:
            listener.close()
        await runner.cleanup()
