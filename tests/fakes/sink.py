"""A catch-all receiver: the generic webhook's reply URL (`GENERIC_REPLY_URL`).

Every request to any path is recorded (headers, raw body, parsed JSON in
`Call.json`) and answered 200 `{"ok": true}`, unless a fault is injected.
"""

from __future__ import annotations

from aiohttp import web

from tests.fakes.base import Call, FakeServer


class FakeSink(FakeServer):
    def routes(self) -> list[web.RouteDef]:
        return [web.route("*", "/{tail:.*}", self._handle)]

    def received(self, path: str = "*") -> list[Call]:
        """Calls that were answered 2xx (what the receiver actually accepted)."""
        return [c for c in self.calls_to(path) if 200 <= c.status < 300]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"ok": True})
