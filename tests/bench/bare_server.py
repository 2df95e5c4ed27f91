"""The reference: a bare aiohttp handler that only checks Telegram's secret and answers 200.

python -m tests.bench.bare_server PORT SECRET
"""

from __future__ import annotations

import hmac
import sys

from aiohttp import web


def make_app(secret: str) -> web.Application:
    async def webhook(request: web.Request) -> web.Response:
        await request.read()
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not hmac.compare_digest(given, secret):
            return web.json_response({"error": "bad secret"}, status=401)
        return web.json_response({"ok": True})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/webhooks/telegram", webhook)
    app.router.add_get("/healthz", healthz)
    return app


if __name__ == "__main__":
    web.run_app(
        make_app(sys.argv[2]), host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None
    )
