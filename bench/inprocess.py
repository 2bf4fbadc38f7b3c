"""In-process call overhead: CPU per request of ``anygate.AsyncAnthropic`` and of the gateway beneath it.

The upstream is :class:`anygate.testing.MockTransport` answering a small OpenAI completion, so what is
measured is anygate plus the official client, with no socket anywhere. Three figures, same request:

- ``gateway``: ``Gateway.create_message`` alone (what the proxy runs per request, minus its server);
- ``AsyncAnthropic``: the official async client over the gateway transport (its request building, model
  validation and response parsing included);
- ``Anthropic (sync)``: the official sync client, each call crossing to the client's loop thread.

Run: ``.venv/bin/python -m bench.inprocess [--requests 3000]``. Compare with the proxy's CPU ms/req in
BENCHMARKS.md (scenario (a): the same request through the server, measured under load).
"""

from __future__ import annotations

import argparse
import asyncio
import time

import orjson

import anygate
from anygate.config import config_from_mapping
from anygate.gateway import Gateway
from anygate.testing import MockResponse, MockTransport

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-4o-mini",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hi there!"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
}
CONFIG = {
    "model_list": [
        {"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4o-mini", "api_key": "sk-bench"}}
    ]
}
REQUEST = {"model": "gpt", "max_tokens": 100, "messages": [{"role": "user", "content": "Hello!"}]}


def _gateway() -> Gateway:
    gateway = Gateway(
        config_from_mapping(CONFIG), transport=MockTransport(lambda _: MockResponse.json(COMPLETION))
    )
    gateway.warm_up()
    return gateway


def _per_request(started: float, requests: int) -> float:
    return (time.process_time() - started) / requests * 1000


async def _gateway_alone(requests: int) -> float:
    gateway = _gateway()
    body = orjson.loads(orjson.dumps(REQUEST))
    for _ in range(100):
        await gateway.create_message(dict(body))
    started = time.process_time()
    for _ in range(requests):
        await gateway.create_message(dict(body))
    return _per_request(started, requests)


async def _async_client(requests: int) -> float:
    async with anygate.AsyncAnthropic(gateway=_gateway(), max_retries=0) as client:
        for _ in range(100):
            await client.messages.create(**REQUEST)  # type: ignore[call-overload]
        started = time.process_time()
        for _ in range(requests):
            await client.messages.create(**REQUEST)  # type: ignore[call-overload]
        return _per_request(started, requests)


def _sync_client(requests: int) -> float:
    with anygate.Anthropic(gateway=_gateway(), max_retries=0) as client:
        for _ in range(100):
            client.messages.create(**REQUEST)  # type: ignore[call-overload]
        started = time.process_time()
        for _ in range(requests):
            client.messages.create(**REQUEST)  # type: ignore[call-overload]
        return _per_request(started, requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    rows = [
        ("gateway (Gateway.create_message)", asyncio.run(_gateway_alone(args.requests))),
        ("anygate.AsyncAnthropic", asyncio.run(_async_client(args.requests))),
        ("anygate.Anthropic (sync)", _sync_client(args.requests)),
    ]
    print("| path | CPU ms/request |\n|---|--:|")
    for name, figure in rows:
        print(f"| {name} | {figure:.3f} |")


if __name__ == "__main__":
    main()
