"""A headless Chromium from the system's packages, driven over the DevTools protocol
(aiohttp's websocket client): load a page, read it, collect console errors, screenshot.

No driver package: the protocol's handful of commands used here is all a test needs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import signal
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

NAMES = ("chromium", "chromium-browser", "google-chrome")


def require_chromium() -> str:
    """The browser's path; skip outside CI when there is none, fail under CI=true
    (`.ci/run` installs it from the system's packages)."""
    found = os.environ.get("CHROMIUM") or next(filter(None, map(shutil.which, NAMES)), None)
    if found:
        return found
    message = "no Chromium found (apt-get install chromium, or set CHROMIUM)"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: a missing browser fails the run)")
    pytest.skip(message)


class Page:
    """One tab: commands by id, and every event it sent kept in order."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.events: list[dict[str, Any]] = []
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next = 0
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    def close(self) -> None:
        self._reader.cancel()

    async def _read(self) -> None:
        async for message in self.socket:
            data = message.json()
            if "id" in data:
                self._waiting.pop(data["id"]).set_result(data)
            else:
                self.events.append(data)
                self._arrived.set()

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        future = asyncio.get_running_loop().create_future()
        self._waiting[self._next] = future
        await self.socket.send_json({"id": self._next, "method": method, "params": params})
        answer = await asyncio.wait_for(future, 30)
        if "error" in answer:
            raise AssertionError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer["result"]
        return result

    async def event(self, method: str, after: int = 0) -> dict[str, Any]:
        async with asyncio.timeout(30):
            while True:
                for event in self.events[after:]:
                    if event["method"] == method:
                        return event
                self._arrived.clear()
                await self._arrived.wait()

    async def load(self, url: str, headers: Mapping[str, str], width: int, height: int) -> None:
        for domain in ("Network", "Page", "Runtime", "Log"):
            await self.send(f"{domain}.enable")
        await self.send("Network.setExtraHTTPHeaders", headers=dict(headers))
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=width < 600,
        )
        start = len(self.events)
        await self.send("Page.navigate", url=url)
        await self.event("Page.loadEventFired", start)

    def errors(self) -> list[str]:
        """Exceptions, console errors and browser log errors (CSP violations, failed loads)."""
        found = []
        for event in self.events:
            params = event.get("params", {})
            if event["method"] == "Runtime.exceptionThrown":
                found.append(str(params["exceptionDetails"]))
            elif event["method"] == "Runtime.consoleAPICalled" and params["type"] in (
                "error",
                "assert",
            ):
                found.append(str(params["args"]))
            elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(str(params["entry"]))
        return found

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def screenshot(self, path: Path) -> None:
        shot = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        _keep(path, base64.b64decode(shot["data"]))


def _keep(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


async def _port(profile: Path, process: asyncio.subprocess.Process) -> int:
    """Chromium writes the port it chose into the profile once it listens."""
    ready = profile / "DevToolsActivePort"
    async with asyncio.timeout(30):
        while not ready.exists() or not ready.read_text().strip():
            if process.returncode is not None:
                raise AssertionError(f"Chromium exited with {process.returncode}")
            await asyncio.sleep(0.1)
    return int(ready.read_text().split()[0])


@contextlib.asynccontextmanager
async def chromium(executable: str, profile: Path) -> AsyncIterator[Page]:
    """A headless Chromium with a fresh profile and one page; stopped on exit."""
    process = await asyncio.create_subprocess_exec(
        executable,
        "--headless",
        "--no-sandbox",  # test containers run as root, where the sandbox refuses to start
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        port = await _port(profile, process)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
            async with session.ws_connect(url, max_msg_size=0) as socket:
                page = Page(socket)
                try:
                    yield page
                finally:
                    page.close()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
