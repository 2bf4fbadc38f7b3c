"""An OpenAI-shaped upstream scripted per call, and the official SDK over a gateway in front of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson

import anygate
from anygate.config import config_from_mapping
from anygate.gateway import Gateway
from anygate.providers.base import UpstreamRequest
from anygate.testing import MockResponse, MockTransport
from tests.providers.openai_support import chunk, frames


def completion(
    *, text: str | None = None, calls: list[tuple[str, str, dict[str, Any]]] = ()
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": orjson.dumps(args).decode()},
            }
            for call_id, name, args in calls
        ]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110},
    }


def streamed(answer: dict[str, Any]) -> list[bytes]:
    """The same completion as Chat Completions streams it."""
    message = answer["choices"][0]["message"]
    payloads = [chunk({"role": "assistant", "content": ""})]
    if message.get("content"):
        payloads.append(chunk({"content": message["content"]}))
    for index, call in enumerate(message.get("tool_calls") or []):
        payloads.append(chunk({"tool_calls": [{"index": index, **call}]}))
    payloads.append(chunk({}, answer["choices"][0]["finish_reason"]))
    payloads.append({**chunk({}), "choices": [], "usage": answer["usage"]})
    return frames(*payloads)


class Script:
    """The upstream: the n-th call is answered by ``replies[n]``; every request body is kept."""

    def __init__(self, *replies: dict[str, Any]) -> None:
        self.replies = list(replies)
        self.bodies: list[dict[str, Any]] = []
        self.transport = MockTransport(self.answer)

    def answer(self, request: UpstreamRequest) -> MockResponse:
        body = orjson.loads(request.body)
        self.bodies.append(body)
        reply = self.replies[len(self.bodies) - 1]
        return MockResponse.sse(streamed(reply)) if body.get("stream") else MockResponse.json(reply)

    def tool_names(self, call: int) -> list[str]:
        return [tool["function"]["name"] for tool in self.bodies[call].get("tools") or []]


@asynccontextmanager
async def client(script: Script, **general: Any) -> AsyncIterator[anygate.AsyncAnthropic]:
    """The SDK over a gateway in front of ``script``, with ``general_settings``; the gateway is closed
    after (its web client included)."""
    config = config_from_mapping(
        {
            "model_list": [
                {
                    "model_name": "up",
                    "litellm_params": {"model": "openai/gpt-4o", "api_base": "http://up/v1", "api_key": "k"},
                }
            ],
            "router_settings": {"num_retries": 0},
            "general_settings": general,
        }
    )
    gateway = Gateway(config, transport=script.transport)
    try:
        async with anygate.AsyncAnthropic(gateway=gateway) as sdk:
            yield sdk
    finally:
        await gateway.aclose()


# --- edge cases: raw answers, deployment settings ------------------------------------------------

QUESTION = [{"role": "user", "content": "What is new in Python?"}]
WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search"}
READ = {"name": "Read", "description": "Read a file.", "input_schema": {"type": "object", "properties": {}}}


class RawScript(Script):
    """``Script`` whose replies may also be MockResponse objects (errors, delays)."""

    def answer(self, request: UpstreamRequest) -> MockResponse:
        body = orjson.loads(request.body)
        self.bodies.append(body)
        reply = self.replies[len(self.bodies) - 1]
        if isinstance(reply, MockResponse):
            return reply
        return MockResponse.sse(streamed(reply)) if body.get("stream") else MockResponse.json(reply)


def scripted_gateway(
    script: Script, *, model_info: dict[str, Any] | None = None, retries: int = 0
) -> Gateway:
    entry: dict[str, Any] = {
        "model_name": "up",
        "litellm_params": {"model": "openai/gpt-4o", "api_base": "http://up/v1", "api_key": "k"},
    }
    if model_info:
        entry["model_info"] = model_info
    config = config_from_mapping(
        {"model_list": [entry], "router_settings": {"num_retries": retries, "retry_after": 0}}
    )
    return Gateway(config, transport=script.transport)


@asynccontextmanager
async def sdk_over(gw: Gateway) -> AsyncIterator[anygate.AsyncAnthropic]:
    try:
        async with anygate.AsyncAnthropic(gateway=gw, max_retries=0) as sdk:
            yield sdk
    finally:
        await gw.aclose()


async def raw_stream(gw: Gateway, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The SSE events a streamed request gets, decoded (error events included)."""
    try:
        response = await gw.create_message({**body, "stream": True})
        assert response.stream is not None
        data = b"".join([chunk async for chunk in response.stream]).decode()
    finally:
        await gw.aclose()
    return [orjson.loads(line[6:]) for line in data.splitlines() if line.startswith("data: ")]


def openai_error(status: int, message: str, code: str | None = None) -> MockResponse:
    return MockResponse.json(
        {"error": {"message": message, "type": "invalid_request_error", "code": code}}, status=status
    )
