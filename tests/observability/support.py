"""A scripted run against an OpenAI-compatible fake upstream, and what ``/metrics`` must say after it."""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import MASTER_KEY, UPSTREAM_KEY
from tests.fakes.upstream import FakeUpstream, Json, Sse, sse_data
from tests.rawhttp import RawResponse, send

CHAT = "/v1/chat/completions"
SLOW_CHAT = "/slow/v1/chat/completions"
PRICES = {"input": 0.001, "output": 0.002, "cache_read": 0.0001}


def config(upstream: FakeUpstream, general: str = "") -> str:
    return f"""
model_list:
  - model_name: gpt
    litellm_params:
      model: openai/gpt-4o
      api_base: {upstream.url}/v1
      api_key: {UPSTREAM_KEY}
    model_info:
      id: gpt-a
      input_cost_per_token: {PRICES["input"]}
      output_cost_per_token: {PRICES["output"]}
      cache_read_input_token_cost: {PRICES["cache_read"]}
  - model_name: slow
    litellm_params:
      model: openai/gpt-4o
      api_base: {upstream.url}/slow/v1
      api_key: {UPSTREAM_KEY}
    model_info:
      id: gpt-b
router_settings:
  num_retries: 1
  allowed_fails: 0
  cooldown_time: 60
general_settings:
  master_key: {MASTER_KEY}
{general}
"""


def completion(prompt: int, completion_tokens: int, cached: int = 0) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached},
        },
    }


def stream(prompt: int, completion_tokens: int, *, pause: float = 0.0) -> Sse:
    chunks = [
        {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "he"}}]},
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"content": "llo"}}],
        },
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        },
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "choices": [],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion_tokens},
        },
    ]
    return Sse(sse_data(*chunks), pause=pause)


BODY = {"model": "gpt", "max_tokens": 50, "messages": [{"role": "user", "content": "hello"}]}
HEADERS = {"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"}


@dataclass
class Expected:
    """What the scripted run did, as the metrics must count it."""

    ok: int = 0
    upstream_400: int = 0
    client_gone: int = 0
    attempts_ok: int = 0
    attempts_api_error: int = 0
    attempts_invalid: int = 0
    attempts_abandoned: int = 0
    retries: int = 0
    usage: dict[str, int] = field(
        default_factory=lambda: {"input": 0, "output": 0, "cache_read": 0, "cache_creation": 0}
    )

    def add_usage(self, usage: dict[str, Any]) -> None:
        self.usage["input"] += usage["input_tokens"]
        self.usage["output"] += usage["output_tokens"]
        self.usage["cache_read"] += usage.get("cache_read_input_tokens") or 0
        self.usage["cache_creation"] += usage.get("cache_creation_input_tokens") or 0

    @property
    def spend(self) -> float:
        u = self.usage
        return (
            u["input"] * PRICES["input"]
            + u["output"] * PRICES["output"]
            + u["cache_read"] * PRICES["cache_read"]
            + u["cache_creation"] * PRICES["input"]
        )


def leave_mid_stream(base_url: str, body: dict[str, Any]) -> None:
    """A client that starts a stream, reads its first bytes and hangs up."""
    url = urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    try:
        connection.request("POST", "/v1/messages", body=orjson.dumps(body), headers=HEADERS)
        response = connection.getresponse()
        assert response.status == 200
        assert response.read1(64)
    finally:
        connection.close()


def post(base_url: str, body: dict[str, Any]) -> RawResponse:
    return send(base_url, "POST", "/v1/messages", body, HEADERS)


def scripted_run(base_url: str, upstream: FakeUpstream) -> Expected:
    """Successes (JSON and streamed), an upstream 500 retried to success, an upstream 400 (all on model
    ``gpt``), and a client that leaves in the middle of a stream (model ``slow``)."""
    expected = Expected()
    upstream.script(
        CHAT,
        Json(completion(10, 5, cached=4)),
        Json(completion(12, 6)),
        stream(7, 3),
        Json({"error": {"message": "boom", "type": "server_error"}}, status=500),
        Json(completion(20, 8, cached=10)),
        Json({"error": {"message": "bad request", "type": "invalid_request_error"}}, status=400),
    )
    upstream.script(SLOW_CHAT, stream(9, 9, pause=0.3))
    for _ in range(2):
        answer = post(base_url, BODY)
        assert answer.status == 200, answer.body
        expected.add_usage(answer.json()["usage"])
        expected.ok += 1
        expected.attempts_ok += 1
    answer = post(base_url, {**BODY, "stream": True})
    text = answer.body.decode()
    assert "message_stop" in text
    deltas = [line for line in text.splitlines() if line.startswith("data:") and "message_delta" in line]
    assert orjson.loads(deltas[-1][5:])["usage"]["output_tokens"] == 3
    expected.add_usage({"input_tokens": 7, "output_tokens": 3})  # the stream's final usage chunk
    expected.ok += 1
    expected.attempts_ok += 1
    answer = post(base_url, BODY)  # 500, retried, then 200
    assert answer.status == 200, answer.body
    assert answer.headers["x-anygate-attempts"] == "2"
    expected.add_usage(answer.json()["usage"])
    expected.ok += 1
    expected.attempts_api_error += 1
    expected.attempts_ok += 1
    expected.retries += 1
    answer = post(base_url, BODY)
    assert answer.status == 400
    expected.upstream_400 += 1
    expected.attempts_invalid += 1
    leave_mid_stream(base_url, {**BODY, "model": "slow", "stream": True})
    expected.client_gone += 1
    expected.attempts_abandoned += 1
    return expected


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base_url: str, key: str | None = MASTER_KEY) -> Samples:
    """Every sample of ``/metrics``, parsed by prometheus_client's own text parser."""
    headers = {"authorization": f"Bearer {key}"} if key else {}
    answer = send(base_url, "GET", "/metrics", headers=headers)
    assert answer.status == 200, answer.body
    assert answer.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.body.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(value for (n, found), value in samples.items() if n == name and wanted <= found)


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
