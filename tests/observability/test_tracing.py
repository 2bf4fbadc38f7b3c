"""OpenTelemetry traces, captured with the SDK's in-memory exporter: the span tree of a retried request,
its GenAI attributes, and the client's trace context honoured and passed to the upstream."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import anygate
from anygate.config import parse_config
from anygate.observability import tracing_requested
from anygate.observability.tracing import TracingHook
from tests.fakes.gateway_server import GatewayServer
from tests.fakes.upstream import FakeUpstream, Json, Sse, sse_data
from tests.observability.support import BODY, CHAT, HEADERS, completion, config, stream, wait_for
from tests.rawhttp import RawResponse, send

FINISH_REASONS = "gen_ai.response.finish_reasons"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def traced(upstream: FakeUpstream, exporter: InMemorySpanExporter) -> Iterator[GatewayServer]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    parsed = parse_config(config(upstream))
    server = GatewayServer(parsed, hooks=[TracingHook(provider, parsed.deployments)]).start()
    yield server
    server.stop()


def test_a_retried_request_is_a_server_span_with_a_client_span_per_attempt(
    traced: GatewayServer, upstream: FakeUpstream, exporter: InMemorySpanExporter
) -> None:
    upstream.script(
        CHAT,
        Json({"error": {"message": "boom", "type": "server_error"}}, status=500),
        Json(completion(20, 8, cached=10)),
    )
    traceparent = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"
    answer = send(traced.url, "POST", "/v1/messages", BODY, {**HEADERS, "traceparent": traceparent})
    assert answer.status == 200
    wait_for(lambda: len(exporter.get_finished_spans()) == 3)
    spans = exporter.get_finished_spans()
    server = next(s for s in spans if s.kind == SpanKind.SERVER)
    attempts = sorted((s for s in spans if s.kind == SpanKind.CLIENT), key=lambda s: s.start_time or 0)
    assert len(attempts) == 2

    assert server.context is not None and server.parent is not None
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert format(server.parent.span_id, "016x") == CLIENT_SPAN
    assert server.name == "chat gpt"
    attributes = dict(server.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "gpt"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.usage.input_tokens"] == 20
    assert attributes["gen_ai.usage.output_tokens"] == 8
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 10
    assert attributes["anygate.attempts"] == 2
    assert attributes["http.response.status_code"] == 200
    assert attributes[FINISH_REASONS] == ("end_turn",)
    assert server.status.status_code == StatusCode.UNSET
    assert server.start_time is not None and server.end_time is not None

    for attempt in attempts:
        assert attempt.parent is not None and attempt.context is not None
        assert attempt.parent.span_id == server.context.span_id
        assert attempt.context.trace_id == server.context.trace_id
        assert attempt.name == "chat gpt-4o"
        attempt_attributes = dict(attempt.attributes or {})
        assert attempt_attributes["gen_ai.provider.name"] == "openai"
        assert attempt_attributes["gen_ai.request.model"] == "gpt-4o"
        assert attempt_attributes["server.address"] == "127.0.0.1"
        assert attempt_attributes["anygate.deployment_id"] == "gpt-a"
        assert server.start_time <= (attempt.start_time or 0) <= (attempt.end_time or 0) <= server.end_time
    failed, succeeded = attempts
    assert failed.status.status_code == StatusCode.ERROR
    assert dict(failed.attributes or {})["error.type"] == "api_error"
    assert FINISH_REASONS not in dict(failed.attributes or {})
    assert succeeded.status.status_code == StatusCode.UNSET
    assert dict(succeeded.attributes or {})[FINISH_REASONS] == ("end_turn",)  # the attempt that answered

    # The upstream saw the request span as its parent, in the same trace, on both attempts.
    received = upstream.requests_to(CHAT)
    assert len(received) == 2
    for request in received:
        version, trace_id, parent, flags = request.headers["traceparent"].split("-")
        assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
        assert parent == format(server.context.span_id, "016x")
    # No prompt and no key among the attributes.
    everything = " ".join(str(v) for s in spans for v in dict(s.attributes or {}).values())
    assert "hello" not in everything and "sk-" not in everything


def test_a_client_that_leaves_and_a_request_refused_early_are_error_spans(
    traced: GatewayServer, upstream: FakeUpstream, exporter: InMemorySpanExporter
) -> None:
    from tests.observability.support import SLOW_CHAT, leave_mid_stream

    upstream.script(SLOW_CHAT, stream(9, 9, pause=0.3))
    leave_mid_stream(traced.url, {**BODY, "model": "slow", "stream": True})
    assert send(traced.url, "POST", "/v1/messages", {"model": "gpt"}, HEADERS).status == 400
    wait_for(lambda: len([s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]) == 2)
    servers = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    gone = next(s for s in servers if dict(s.attributes or {}).get("anygate.stream"))
    assert dict(gone.attributes or {})["error.type"] == "client_gone"
    assert gone.status.status_code == StatusCode.ERROR
    assert FINISH_REASONS not in dict(gone.attributes or {})  # the answer never finished
    [left] = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CLIENT]
    assert dict(left.attributes or {})["anygate.attempt.abandoned"] is True
    assert FINISH_REASONS not in dict(left.attributes or {})
    refused = next(s for s in servers if s is not gone)
    assert dict(refused.attributes or {})["error.type"] == "invalid_request_error"
    assert refused.parent is None  # no traceparent sent: a new trace


CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOLS = [{"name": "get_weather", "input_schema": CITY}]
TOOL_CALL = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather"}}
ARGUMENTS = '{"city": "Oslo"}'
BAD_REQUEST = Json({"error": {"message": "bad request", "type": "invalid_request_error"}}, status=400)


def _tool_completion() -> dict[str, Any]:
    answer = completion(11, 7)
    answer["choices"] = [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [{**TOOL_CALL, "function": {"name": "get_weather", "arguments": ARGUMENTS}}],
            },
            "finish_reason": "tool_calls",
        }
    ]
    return answer


def _tool_stream() -> Sse:
    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {"id": "c", "object": "chat.completion.chunk", "choices": [
            {"index": 0, "delta": delta, "finish_reason": finish_reason}
        ]}  # fmt: skip

    return Sse(
        sse_data(
            chunk({"role": "assistant", "tool_calls": [{**TOOL_CALL, "function": {"name": "get_weather"}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": ARGUMENTS}}]}),
            chunk({}, "tool_calls"),
        )
    )


def _traced(
    exporter: InMemorySpanExporter, url: str, body: dict[str, Any]
) -> tuple[RawResponse, dict[str, Any], list[dict[str, Any]]]:
    """One request: the client's answer, its request span's attributes, its attempt spans' attributes."""
    exporter.clear()
    answer = send(url, "POST", "/v1/messages", body, HEADERS)
    wait_for(lambda: any(s.kind == SpanKind.SERVER for s in exporter.get_finished_spans()))
    spans = exporter.get_finished_spans()
    server = next(s for s in spans if s.kind == SpanKind.SERVER)
    attempts = [dict(s.attributes or {}) for s in spans if s.kind == SpanKind.CLIENT]
    return answer, dict(server.attributes or {}), attempts


def _client_stop_reason(answer: RawResponse) -> str | None:
    """The stop reason the client received: the Message's, or its stream's ``message_delta``'s."""
    if not answer.body.startswith(b"event:"):
        stop_reason: str | None = answer.json().get("stop_reason")
        return stop_reason
    deltas = [
        orjson.loads(line[5:]) for line in answer.body.decode().splitlines() if line.startswith("data:")
    ]
    return next((d["delta"]["stop_reason"] for d in deltas if d.get("type") == "message_delta"), None)


@pytest.mark.parametrize(
    ("stream", "answer", "expected"),
    [
        (True, stream(7, 3), "end_turn"),
        (False, Json(_tool_completion()), "tool_use"),
        (True, _tool_stream(), "tool_use"),
        (False, BAD_REQUEST, None),
        (True, Sse(stream(7, 3).chunks[:2]), None),  # text, then the upstream ends: no finish_reason
    ],
    ids=["stream", "json-tool-use", "stream-tool-use", "upstream-400", "stream-cut-by-upstream"],
)
def test_the_finish_reason_is_what_the_client_received(
    traced: GatewayServer,
    upstream: FakeUpstream,
    exporter: InMemorySpanExporter,
    stream: bool,
    answer: Json | Sse,
    expected: str | None,
) -> None:
    upstream.script(CHAT, answer)
    body = {**BODY, "stream": stream, "tools": TOOLS}
    received, server, attempts = _traced(exporter, traced.url, body)
    assert _client_stop_reason(received) == expected
    [attempt] = attempts  # not retried: a 400 is final, and a stream that started cannot be
    if expected is None:
        assert FINISH_REASONS not in server and FINISH_REASONS not in attempt
        assert "error.type" in server
    else:
        assert server[FINISH_REASONS] == attempt[FINISH_REASONS] == (expected,)
        assert "error.type" not in server


async def test_a_local_answer_has_its_finish_reason_too(exporter: InMemorySpanExporter) -> None:
    """The built-in mock answers in-process (a list of events): JSON and streamed."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    gateway = anygate.Gateway(hooks=[TracingHook(provider)])
    hi: Any = [{"role": "user", "content": "tell me a long story"}]
    try:
        cut = await gateway.messages.acreate(model="mock/demo", max_tokens=3, messages=hi)
        events = await gateway.messages.acreate(
            model="mock/demo",
            max_tokens=200,
            messages=hi,
            tools=TOOLS,
            tool_choice={"type": "any"},
            stream=True,
        )
        async for _ in events:
            pass
    finally:
        await gateway.aclose()
    assert cut.stop_reason == "max_tokens"
    servers = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert [dict(s.attributes or {}).get(FINISH_REASONS) for s in servers] == [("max_tokens",), ("tool_use",)]
    attempts = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CLIENT]
    assert [dict(s.attributes or {}).get(FINISH_REASONS) for s in attempts] == [
        ("max_tokens",),
        ("tool_use",),
    ]


def test_without_a_traceparent_no_header_is_invented_when_tracing_is_off(
    serve: object, upstream: FakeUpstream
) -> None:
    from tests.fakes.gateway_server import GatewayServer as Server

    server = Server(config(upstream)).start()
    try:
        upstream.script(CHAT, Json(completion(3, 2)))
        assert send(server.url, "POST", "/v1/messages", BODY, HEADERS).status == 200
        assert "traceparent" not in upstream.requests_to(CHAT)[-1].headers
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_the_standard_variables_turn_tracing_on(env: dict[str, str], on: bool) -> None:
    assert tracing_requested(env) is on


def test_nothing_of_opentelemetry_is_imported_when_tracing_is_off() -> None:
    code = (
        "import sys\n"
        "from anygate.config import parse_config\n"
        "from anygate.server.app import create_app\n"
        "create_app(parse_config('model_list: []'), environ={})\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_tracing_turned_on_by_the_environment_registers_the_hook(upstream: FakeUpstream) -> None:
    from anygate.server.app import create_app

    app = create_app(parse_config(config(upstream)), environ={"OTEL_TRACES_EXPORTER": "console"})
    assert app.observability.tracing
    assert any(isinstance(hook, TracingHook) for hook in app.gateway.hooks.completion_listeners)


def test_token_counting_upstream_gets_the_trace_context_too(
    upstream: FakeUpstream, exporter: InMemorySpanExporter
) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    parsed = parse_config(
        f"""
model_list:
  - model_name: claude
    litellm_params: {{model: anthropic/claude-sonnet-4-5, api_base: "{upstream.url}", api_key: sk-up-0000}}
general_settings: {{master_key: sk-test-master-key}}
"""
    )
    server = GatewayServer(parsed, hooks=[TracingHook(provider, parsed.deployments)]).start()
    try:
        upstream.script("/v1/messages/count_tokens", Json({"input_tokens": 12}))
        headers = {**HEADERS, "traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01"}
        body = {"model": "claude", "messages": [{"role": "user", "content": "hello"}]}
        answer = send(server.url, "POST", "/v1/messages/count_tokens", body, headers)
        assert answer.status == 200 and answer.json() == {"input_tokens": 12}
    finally:
        server.stop()
    received = upstream.requests_to("/v1/messages/count_tokens")
    assert received[0].headers["traceparent"].split("-")[1] == TRACE_ID
    server_span = next(s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER)
    assert server_span.name == "count_tokens claude"
