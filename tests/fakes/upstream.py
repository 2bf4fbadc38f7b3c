"""A fake upstream: a real HTTP server on 127.0.0.1 that records what it receives and answers as scripted.

It runs on its own event loop in a background thread, so tests can drive the gateway with the blocking
``anthropic`` client as users do. Each path has a queue of scripted answers (the last one repeats), or a
handler that looks at the request and decides, like a model would.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Received:
    """One request the fake upstream got."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    raw_path: str = ""
    """The path exactly as sent (percent-encoded); ``path`` is decoded."""

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Json:
    """A JSON answer (or any bytes) with a status, optionally after a delay."""

    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Sse:
    """A streamed answer: the chunks as given (bytes are sent as they are), with pauses between them.

    ``cut`` drops the connection after the last chunk instead of ending the response cleanly.
    """

    chunks: Sequence[bytes]
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    pause: float = 0.0
    first_delay: float = 0.0
    cut: bool = False


@dataclass
class Hang:
    """Never answer (until the client gives up); records whether the client went away."""

    seconds: float = 30.0


Answer = Json | Sse | Hang
Handler = Callable[[Received], Answer]


class FakeUpstream:
    """Start with :meth:`start`, stop with :meth:`stop`; ``url`` is ``http://127.0.0.1:<port>``."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.cancelled: list[str] = []
        self._scripts: dict[str, list[Answer] | Handler] = {}
        self._fallback: Handler | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, path: str, *answers: Answer) -> None:
        """Answer requests to ``path`` with ``answers`` in order; the last one repeats."""
        self._scripts[path] = list(answers)

    def handle(self, path: str, handler: Handler) -> None:
        """Answer requests to ``path`` with whatever ``handler`` decides."""
        self._scripts[path] = handler

    def handle_all(self, handler: Handler) -> None:
        """Answer requests to every path not scripted otherwise with ``handler``."""
        self._fallback = handler

    def reset(self) -> None:
        """Forget what was received and scripted (a module-scoped fake serves test after test)."""
        self.received.clear()
        self.cancelled.clear()
        self._scripts.clear()
        self._fallback = None

    def requests_to(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def start(self) -> FakeUpstream:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._serve)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _next_answer(self, received: Received) -> Answer:
        script = self._scripts.get(received.path)
        if script is None and self._fallback is not None:
            return self._fallback(received)
        if script is None:
            return Json({"error": {"message": f"fake upstream: no script for {received.path}"}}, status=404)
        if callable(script):
            return script(received)
        return script.pop(0) if len(script) > 1 else script[0]

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        received = Received(
            request.method,
            request.path,
            request.query_string,
            {k.lower(): v for k, v in request.headers.items()},
            await request.read(),
            request.raw_path.partition("?")[0],
        )
        self.received.append(received)
        answer = self._next_answer(received)
        try:
            return await self._answer(request, answer)
        except asyncio.CancelledError:
            self.cancelled.append(received.path)
            raise

    async def _answer(self, request: web.Request, answer: Answer) -> web.StreamResponse:
        if isinstance(answer, Hang):
            await asyncio.sleep(answer.seconds)
            return web.Response(status=504)
        if isinstance(answer, Json):
            if answer.delay:
                await asyncio.sleep(answer.delay)
            body = answer.body if isinstance(answer.body, bytes) else orjson.dumps(answer.body)
            return web.Response(
                status=answer.status,
                body=body,
                headers={"content-type": "application/json", **answer.headers},
            )
        if answer.first_delay:
            await asyncio.sleep(answer.first_delay)
        response = web.StreamResponse(
            status=answer.status, headers={"content-type": "text/event-stream", **answer.headers}
        )
        await response.prepare(request)
        for i, chunk in enumerate(answer.chunks):
            if i and answer.pause:
                await asyncio.sleep(answer.pause)
            await response.write(chunk)
        if answer.cut:
            assert request.transport is not None
            request.transport.abort()
            return response
        await response.write_eof()
        return response


def sse_data(*payloads: Any, done: bool = True) -> list[bytes]:
    """OpenAI-style ``data:`` frames, one chunk each, ending with ``data: [DONE]``."""
    frames = [b"data: " + orjson.dumps(p) + b"\n\n" for p in payloads]
    if done:
        frames.append(b"data: [DONE]\n\n")
    return frames
