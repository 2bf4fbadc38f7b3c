"""Server tools run by the gateway: CPU per request of turns that take several upstream calls.

The upstream is :class:`anygate.testing.MockTransport` (an OpenAI-shaped model scripted per call) and the
search backend a SearXNG-shaped server in a child process on loopback, so the figures are the gateway's
own work (``time.process_time`` of this process) with no model and no network in them. Scenarios, each
as a JSON answer and as a stream:

- ``plain``: a small request without tools (the baseline of every other figure);
- ``cc-tools``: 12 ordinary tools, no server tool: what the one extra test on the request path costs;
- ``search-offered``: a ``web_search`` tool the model does not call (the loop path, one upstream call);
- ``tool-search``: 200 deferred MCP-style tools, the model searches by regex, then calls a found tool
  (two upstream calls, the search over 200 tools);
- ``web-search``: the model searches the web, then answers citing [1] (two upstream calls, one search
  through the backend, results sealed, citations).

Run: ``.venv/bin/python -m bench.server_tools [--requests 300]``. Compare rows within one run only.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from anygate.config import config_from_mapping
from anygate.gateway import Gateway
from anygate.providers.base import UpstreamRequest
from anygate.testing import MockResponse, MockTransport

QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]
ORDINARY_TOOLS = [
    {
        "name": f"tool_{n}",
        "description": f"Does thing number {n} with a file.",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    }
    for n in range(12)
]
DEFERRED_TOOLS = [
    {
        "name": f"{service}_{verb}_{n}",
        "description": f"{verb.title()} a {service} item (variant {n}).",
        "input_schema": {
            "type": "object",
            "properties": {"id": {"type": "string", "description": "Item id"}},
        },
        "defer_loading": True,
    }
    for service in ("jira", "github", "slack", "linear", "notion")
    for verb in ("create", "delete", "list", "update")
    for n in range(10)
]
SEARXNG_ANSWER = {
    "results": [
        {"url": f"https://site{n}.example/page", "title": f"Result {n}", "content": "Sunny, 24 °C. " * 20}
        for n in range(5)
    ]
}


def completion(text: str | None = None, call: tuple[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if call is not None:
        arguments = orjson.dumps(call[1]).decode()
        message["tool_calls"] = [
            {"id": "call_1", "type": "function", "function": {"name": call[0], "arguments": arguments}}
        ]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if call else "stop"}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 8, "total_tokens": 58},
    }


def stream_frames(answer: dict[str, Any]) -> list[bytes]:
    message = answer["choices"][0]["message"]
    chunks: list[dict[str, Any]] = [{"role": "assistant", "content": message["content"] or ""}]
    for index, call in enumerate(message.get("tool_calls") or []):
        chunks.append({"tool_calls": [{"index": index, **call}]})
    frames = [
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": d, "finish_reason": None}],
        }
        for d in chunks
    ]
    finish = answer["choices"][0]["finish_reason"]
    frames.append(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {}, "finish_reason": finish}],
        }
    )
    frames.append({"id": "c", "object": "chat.completion.chunk", "choices": [], "usage": answer["usage"]})
    return [b"data: " + orjson.dumps(f) + b"\n\n" for f in frames] + [b"data: [DONE]\n\n"]


Scripted = Callable[[dict[str, Any]], dict[str, Any]]
"""The upstream's answer to a Chat Completions body."""


def by_turn(first: dict[str, Any], then: dict[str, Any]) -> Scripted:
    """``first`` for a conversation without tool results yet, ``then`` after one."""
    return lambda body: then if any(m.get("role") == "tool" for m in body["messages"]) else first


SCENARIOS: dict[str, tuple[dict[str, Any], Scripted]] = {
    "plain": ({"messages": QUESTION}, lambda _: completion("Sunny.")),
    "cc-tools": ({"messages": QUESTION, "tools": ORDINARY_TOOLS}, lambda _: completion("Sunny.")),
    "search-offered": (
        {
            "messages": QUESTION,
            "tools": [*ORDINARY_TOOLS, {"type": "web_search_20250305", "name": "web_search"}],
        },
        lambda _: completion("Sunny."),
    ),
    "tool-search": (
        {
            "messages": QUESTION,
            "tools": [
                *ORDINARY_TOOLS,
                {"type": "tool_search_tool_regex_20251119", "name": "tool_search_tool_regex"},
                *DEFERRED_TOOLS,
            ],
        },
        by_turn(
            completion(call=("tool_search_tool_regex", {"pattern": "jira_create"})),
            completion("Found it."),
        ),
    ),
    "web-search": (
        {"messages": QUESTION, "tools": [{"type": "web_search_20250305", "name": "web_search"}]},
        by_turn(completion(call=("web_search", {"query": "paris weather"})), completion("Sunny [1].")),
    ),
}


def _serve_searxng(port: int) -> None:
    async def search(request: web.Request) -> web.Response:
        return web.json_response(SEARXNG_ANSWER)

    app = web.Application()
    app.router.add_get("/search", search)
    web.run_app(app, host="127.0.0.1", port=port, print=None, handle_signals=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _gateway(scripted: Scripted, search_port: int) -> Gateway:
    def answer(request: UpstreamRequest) -> MockResponse:
        body = orjson.loads(request.body)
        reply = scripted(body)
        return MockResponse.sse(stream_frames(reply)) if body.get("stream") else MockResponse.json(reply)

    config = config_from_mapping(
        {
            "model_list": [
                {
                    "model_name": "gpt",
                    "litellm_params": {"model": "openai/gpt-4o-mini", "api_key": "sk-bench"},
                }
            ],
            "general_settings": {
                "web_search": {"provider": "searxng", "api_base": f"http://127.0.0.1:{search_port}"}
            },
        }
    )
    gateway = Gateway(config, transport=MockTransport(answer))
    gateway.warm_up()
    return gateway


async def _measure(name: str, stream: bool, requests: int, search_port: int) -> float:
    extra, scripted = SCENARIOS[name]
    gateway = _gateway(scripted, search_port)
    body = {"model": "gpt", "max_tokens": 200, **extra, "stream": stream}

    async def one() -> None:
        response = await gateway.create_message(orjson.loads(orjson.dumps(body)))
        if response.stream is not None:
            async for _ in response.stream:
                pass

    for _ in range(30):
        await one()
    started = time.process_time()
    for _ in range(requests):
        await one()
    spent = (time.process_time() - started) / requests * 1000
    await gateway.aclose()
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    port = _free_port()
    backend = multiprocessing.get_context("spawn").Process(target=_serve_searxng, args=(port,), daemon=True)
    backend.start()
    try:
        _wait_for(port)
        figures: dict[tuple[str, bool], list[float]] = {}
        for _ in range(args.rounds):  # interleaved: a noisy machine spreads over every row alike
            for name in SCENARIOS:
                for stream in (False, True):
                    spent = asyncio.run(_measure(name, stream, args.requests, port))
                    figures.setdefault((name, stream), []).append(spent)
    finally:
        backend.terminate()
    base = {
        stream: sorted(figures[("plain", stream)])[len(figures[("plain", stream)]) // 2]
        for stream in (False, True)
    }
    print("| scenario | answer | CPU ms/request (median) | vs plain |\n|---|---|--:|--:|")
    for (name, stream), values in figures.items():
        median = sorted(values)[len(values) // 2]
        kind = "stream" if stream else "JSON"
        print(f"| {name} | {kind} | {median:.3f} | {median / base[stream]:.2f} |")


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the search backend did not start")


if __name__ == "__main__":
    main()
