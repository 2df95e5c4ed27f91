"""Files a fake serves for download, streamed in chunks (a 100 MB one is never built)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

CHUNK = 256 * 1024


@dataclass(frozen=True)
class ServedFile:
    data: bytes  # served once, or repeated up to `size`
    mimetype: str
    size: int
    announce_length: bool = True  # False: no Content-Length (the reader must spool)


class FileStore:
    def __init__(self) -> None:
        self.files: dict[str, ServedFile] = {}

    def add(
        self,
        key: str,
        data: bytes,
        mimetype: str = "application/octet-stream",
        *,
        size: int | None = None,
        announce_length: bool = True,
    ) -> ServedFile:
        served = ServedFile(data, mimetype, len(data) if size is None else size, announce_length)
        self.files[key] = served
        return served

    async def serve(self, request: web.Request, key: str) -> web.StreamResponse:
        served = self.files.get(key)
        if served is None:
            return web.json_response({"error": "not found"}, status=404)
        response = web.StreamResponse(headers={"Content-Type": served.mimetype})
        if served.announce_length:
            response.content_length = served.size
        await response.prepare(request)
        left = served.size
        while left > 0:
            piece = (served.data * (CHUNK // max(1, len(served.data)) + 1))[: min(CHUNK, left)]
            await response.write(piece)
            left -= len(piece)
        await response.write_eof()
        return response
