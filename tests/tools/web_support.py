"""Test doubles for the web tools: HTTP servers on loopback, a DNS, and an internet.

- :class:`Recorder` wraps an aiohttp app on 127.0.0.1 and keeps every request it received (method, path,
  query, headers, body), so a test checks what a search backend or a site was sent.
- :class:`FakeResolver` answers DNS questions from a table (a list of answers per host: one per lookup,
  the last repeated), and counts lookups: a rebinding DNS server is ``{"host": [["public"], ["private"]]}``.
- :class:`FakeInternet` stands in for the network below the fetcher: it wraps the event loop's
  ``sock_connect`` (where aiohttp's connector opens every TCP connection), records every address a
  connection is attempted to, routes chosen "public" addresses to a loopback server, lets loopback
  through, and refuses everything else, so no test ever reaches the real internet.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


class Recorder:
    """An aiohttp server on 127.0.0.1 that records what it received before its handler answers."""

    def __init__(self, routes: Mapping[str, Handler]) -> None:
        self.received: list[Received] = []
        app = web.Application()

        async def record(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            self.received.append(
                Received(request.method, request.path, dict(request.query), dict(request.headers), body)
            )
            handler = routes.get(request.path)
            if handler is None:
                return web.Response(status=404, text="no such page")
            return await handler(request)

        app.router.add_route("*", "/{tail:.*}", record)
        self.server = TestServer(app, host="127.0.0.1", handler_cancellation=True)

    async def __aenter__(self) -> Recorder:
        await self.server.start_server()
        assert self.server.port is not None
        self._port = self.server.port
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.close()

    @property
    def port(self) -> int:
        """The port it listens (or listened) on."""
        return self._port

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def json_answer(payload: Any, status: int = 200) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(payload, status=status)

    return handler


def text_answer(text: str, content_type: str = "text/plain", status: int = 200) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text=text, content_type=content_type, status=status)

    return handler


def redirect_to(location: str, status: int = 302) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": location})

    return handler


def stalls() -> Handler:
    """Answers nothing until the client gives up (the server cancels the handler then)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(30)
        return web.Response(text="too late")

    return handler


class FakeResolver(AbstractResolver):
    """DNS from a table: host → answers per lookup (the last one repeats)."""

    def __init__(self, table: Mapping[str, list[list[str]]]) -> None:
        self.table = table
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        answers = self.table.get(host)
        if not answers:
            raise OSError(f"no such host: {host}")
        answer = answers[min(self.lookups.count(host), len(answers)) - 1]
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in answer
        ]

    async def close(self) -> None:
        pass


@dataclass
class FakeInternet:
    """Every TCP connection the loop opens goes through here (see the module)."""

    routes: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    attempts: list[tuple[str, int]] = field(default_factory=list)

    def route(self, public: tuple[str, int], loopback_port: int) -> None:
        self.routes[public] = ("127.0.0.1", loopback_port)


async def fake_internet(loop: asyncio.AbstractEventLoop, internet: FakeInternet) -> AsyncIterator[None]:
    """Installs ``internet`` on ``loop`` for the duration of the generator."""
    original = loop.sock_connect

    async def sock_connect(sock: socket.socket, address: Any) -> None:
        host, port = str(address[0]), int(address[1])
        internet.attempts.append((host, port))
        if (host, port) in internet.routes:
            await original(sock, internet.routes[(host, port)])
            return
        if host in ("127.0.0.1", "::1"):
            await original(sock, address)
            return
        raise ConnectionRefusedError(f"the test network has no route to {host}")

    loop.sock_connect = sock_connect  # type: ignore[method-assign]
    try:
        yield
    finally:
        loop.sock_connect = original  # type: ignore[method-assign]
