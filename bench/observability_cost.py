"""CPU that observability adds per request, measured in-process (no HTTP, no other load in the figure).

    .venv/bin/python -m bench.observability_cost [--requests 20000] [--rounds 5]

The same requests go through :class:`anygate.Gateway` on the built-in mock model (JSON and streamed,
the streams read to their end) three ways: no observability hooks; metrics and the dashboard's records
(the default); and that plus OpenTelemetry traces to an in-memory exporter. Rounds alternate and the
minimum of each is kept, which on a shared machine is the figure least disturbed by other processes.
The end-to-end figures (`bench.run --observability bare,traces`) include HTTP and the upstream; this one
isolates the hooks.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

from anygate.config import parse_config
from anygate.gateway import Gateway
from anygate.hooks import MASTER
from anygate.observability import install

CONFIG = """
model_list:
  - model_name: bench-mock
    litellm_params: {model: mock/echo}
    model_info: {input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}
"""
BODY = {"model": "bench-mock", "max_tokens": 100, "messages": [{"role": "user", "content": "Hello, a joke?"}]}


def _bare() -> Gateway:
    gateway = Gateway(parse_config(CONFIG))
    return gateway


def _observed() -> Gateway:
    gateway = Gateway(parse_config(CONFIG))
    install(gateway, environ={})
    return gateway


def _traced() -> Gateway:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from anygate.observability.tracing import TracingHook

    gateway = _observed()
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    gateway.hooks.add(TracingHook(provider, gateway.config.deployments))
    gateway.exporter = exporter  # type: ignore[attr-defined]
    return gateway


async def _run(gateway: Gateway, requests: int, stream: bool) -> float:
    """CPU seconds per request for ``requests`` requests (after a warm-up)."""
    body: dict[str, Any] = {**BODY, "stream": stream}

    async def one() -> None:
        response = await gateway.create_message(body, principal=MASTER)
        if response.stream is not None:
            async for _ in response.stream:
                pass

    for _ in range(200):
        await one()
    started = time.process_time()
    for _ in range(requests):
        await one()
    exporter = getattr(gateway, "exporter", None)
    if exporter is not None:
        exporter.clear()
    return (time.process_time() - started) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    variants: dict[str, Callable[[], Gateway]] = {"off": _bare, "metrics+ui": _observed, "+traces": _traced}
    for stream in (False, True):
        best: dict[str, float] = {}
        for _ in range(args.rounds):
            for name, make in variants.items():
                cost = asyncio.run(_run(make(), args.requests, stream))
                best[name] = min(best.get(name, cost), cost)
        base = best["off"]
        kind = "stream" if stream else "json"
        print(f"{kind}: " + "  ".join(f"{n} {v * 1e3:.4f} ms" for n, v in best.items()))
        print(
            f"{kind}: added by metrics+ui {(best['metrics+ui'] - base) * 1e3:.4f} ms/request, "
            f"by metrics+ui+traces {(best['+traces'] - base) * 1e3:.4f} ms/request"
        )


if __name__ == "__main__":
    main()
