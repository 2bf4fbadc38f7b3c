"""A recording HTTP proxy between Claude Code and the gateway: what the gateway answered, byte for byte.

Claude Code prints only its final result; the answers to its side requests (the WebSearch tool's own
``/v1/messages`` call) never reach its output. Pointing ``ANTHROPIC_BASE_URL`` at this proxy lets a test
read them: every request is forwarded to the gateway unchanged, the answer is streamed back as it comes
(so Claude Code sees the same stream), and both are kept in :attr:`RecordingProxy.exchanges`.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import orjson
from aiohttp import web

HOP_BY_HOP: Final = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding"}
)


@dataclass
class Exchange:
    """One request Claude Code made and the gateway's answer to it."""

    method: str
    path: str
    request_body: bytes
    status: int
    response_body: bytes

    def request_json(self) -> Any:
        return orjson.loads(self.request_body)

    def events(self) -> list[dict[str, Any]]:
        """The ``data:`` payloads of a streamed answer, in order."""
        return [
            orjson.loads(line[len(b"data:") :])
            for line in self.response_body.splitlines()
            if line.startswith(b"data:") and line[len(b"data:") :].strip() not in (b"", b"[DONE]")
        ]

    def content_blocks(self) -> list[dict[str, Any]]:
        """The content blocks of a streamed Message, rebuilt from its events (text and JSON deltas
        applied, citations collected), in index order."""
        blocks: dict[int, dict[str, Any]] = {}
        partial: dict[int, str] = {}
        for event in self.events():
            kind = event.get("type")
            if kind == "content_block_start":
                blocks[event["index"]] = dict(event["content_block"])
            elif kind == "content_block_delta":
                block, delta = blocks[event["index"]], event["delta"]
                if delta["type"] == "text_delta":
                    block["text"] = block.get("text", "") + delta["text"]
                elif delta["type"] == "input_json_delta":
                    partial[event["index"]] = partial.get(event["index"], "") + delta["partial_json"]
                elif delta["type"] == "citations_delta":
                    block["citations"] = [*(block.get("citations") or []), delta["citation"]]
        for index, text in partial.items():
            blocks[index]["input"] = orjson.loads(text) if text else {}
        return [blocks[i] for i in sorted(blocks)]


class RecordingProxy:
    """Forwards everything to ``target``; start with :meth:`start`, stop with :meth:`stop`."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.exchanges: list[Exchange] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RecordingProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def messages(self) -> list[Exchange]:
        """The ``/v1/messages`` exchanges (not count_tokens or model listing), in order."""
        return [e for e in self.exchanges if e.path == "/v1/messages"]

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with self._session.request(
            request.method, self.target + str(request.rel_url), headers=headers, data=body
        ) as upstream:
            response = web.StreamResponse(
                status=upstream.status,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP},
            )
            await response.prepare(request)
            received = bytearray()
            async for chunk in upstream.content.iter_any():
                received.extend(chunk)
                await response.write(chunk)
            await response.write_eof()
        self.exchanges.append(Exchange(request.method, request.path, body, upstream.status, bytes(received)))
        return response
