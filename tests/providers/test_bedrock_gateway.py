"""Bedrock through the whole gateway and the official SDK, against a fake Bedrock Runtime on loopback
that checks SigV4 signatures with botocore and refuses what Bedrock refuses."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import orjson
import pytest

from anygate.hooks import Hook, RequestRecord
from anygate.providers.bedrock.eventstream import encode_event
from tests.conftest import sdk_client
from tests.fakes.gateway_server import GatewayServer
from tests.fakes.upstream import FakeUpstream, Json, Received, Sse
from tests.providers.bedrock_support import (
    ACCESS_KEY,
    ANTHROPIC_SSE,
    BEDROCK,
    EVENTSTREAM_TYPE,
    SECRET_KEY,
    FakeBedrock,
    aws_error,
    eventstream_answer,
    exception_frame,
    invoke_stream,
    sse_events,
)

CLAUDE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
ARN = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/ab12cd34"
NOVA = "amazon.nova-pro-v1:0"
TEXT_STREAM = BEDROCK / "model_stream.0.eventstream"
Answerer = Callable[[str, Received], Json | Sse]


def config(upstream: FakeUpstream, model: str, credentials: str = "") -> str:
    credentials = (
        credentials or f"      aws_access_key_id: {ACCESS_KEY}\n      aws_secret_access_key: {SECRET_KEY}\n"
    )
    return (
        "model_list:\n  - model_name: m\n    litellm_params:\n"
        f"      model: bedrock/{model}\n      aws_region_name: us-east-1\n"
        f"      aws_bedrock_runtime_endpoint: {upstream.url}\n{credentials}"
        "router_settings:\n  num_retries: 1\n  retry_after: 0\n"
    )


@pytest.fixture
def bedrock(upstream: FakeUpstream) -> Iterator[Callable[[Answerer], FakeBedrock]]:
    def install(answer: Answerer, **kwargs: Any) -> FakeBedrock:
        fake = FakeBedrock(f"127.0.0.1:{upstream.port}", answer, **kwargs)
        upstream.handle_all(fake)
        return fake

    yield install


def converse_answer(action: str, received: Received) -> Json | Sse:
    if action == "converse-stream":
        return eventstream_answer(TEXT_STREAM.read_bytes())
    return Json(
        {
            "output": {"message": {"role": "assistant", "content": [{"text": "Hello from Nova."}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 9, "outputTokens": 4, "totalTokens": 13},
        }
    )


def claude_answer(action: str, received: Received) -> Json | Sse:
    events = sse_events((ANTHROPIC_SSE[0]).read_bytes())
    if action == "invoke-with-response-stream":
        return eventstream_answer(invoke_stream(events))
    if action == "count-tokens":
        return Json({"inputTokens": 42})
    from anygate.protocol.accumulate import accumulate

    return Json(accumulate(events))


def test_converse_streams_and_answers_with_verified_signatures(
    upstream: FakeUpstream, bedrock: Any, serve: Callable[[str], GatewayServer]
) -> None:
    fake = bedrock(converse_answer)
    client = sdk_client(serve(config(upstream, "converse/" + NOVA)))
    message = client.messages.create(model="m", max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    assert message.content[0].text == "Hello from Nova."  # type: ignore[union-attr]
    assert message.usage.input_tokens == 9
    with client.messages.stream(
        model="m", max_tokens=50, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
    assert text.startswith("The capital of France is Paris.")
    assert fake.rejected == []
    assert [r.raw_path for r in upstream.received] == [
        "/model/amazon.nova-pro-v1%3A0/converse",
        "/model/amazon.nova-pro-v1%3A0/converse-stream",
    ]


def test_claude_on_bedrock_streams_anthropic_events(
    upstream: FakeUpstream, bedrock: Any, serve: Callable[[str], GatewayServer]
) -> None:
    fake = bedrock(claude_answer)
    client = sdk_client(serve(config(upstream, ARN.replace("ab12cd34", "claude-ab12"))))
    betas = "claude-code-20250219,interleaved-thinking-2025-05-14,oauth-2025-04-20"
    with client.messages.stream(
        model="m",
        max_tokens=50,
        messages=[{"role": "user", "content": "Hi"}],
        extra_headers={"anthropic-beta": betas},
        extra_body={"service_tier": "auto", "container": "c"},
    ) as stream:
        final = stream.get_final_message()
    expected = sse_events(ANTHROPIC_SSE[0].read_bytes())
    assert final.content[0].text == "".join(  # type: ignore[union-attr]
        e["delta"]["text"] for e in expected if e["type"] == "content_block_delta"
    )
    assert fake.rejected == []
    sent = upstream.received[-1]
    assert sent.raw_path.endswith("application-inference-profile%2Fclaude-ab12/invoke-with-response-stream")
    body = sent.json()
    assert body["anthropic_beta"] == ["interleaved-thinking-2025-05-14"]
    assert "model" not in body and "stream" not in body and body["anthropic_version"] == "bedrock-2023-05-31"
    message = client.messages.create(model="m", max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    assert message.content
    assert (
        client.messages.count_tokens(model="m", messages=[{"role": "user", "content": "Hi"}]).input_tokens
        == 42
    )


def test_a_wrong_secret_is_refused_by_the_fake_and_reported_as_the_gateways_fault(
    upstream: FakeUpstream, bedrock: Any, serve: Callable[[str], GatewayServer]
) -> None:
    fake = bedrock(converse_answer, secret="another-secret")
    client = sdk_client(serve(config(upstream, "converse/" + NOVA)))
    with pytest.raises(anthropic.InternalServerError) as caught:
        client.messages.create(model="m", max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    assert "credentials" in str(caught.value)
    assert SECRET_KEY not in str(caught.value)
    assert fake.rejected


def test_session_tokens_are_signed(
    upstream: FakeUpstream, bedrock: Any, serve: Callable[[str], GatewayServer]
) -> None:
    fake = bedrock(converse_answer)
    credentials = (
        f"      aws_access_key_id: {ACCESS_KEY}\n      aws_secret_access_key: {SECRET_KEY}\n"
        "      aws_session_token: FwoGZXIvYXdzEBYaDexample\n"
    )
    client = sdk_client(serve(config(upstream, "converse/" + NOVA, credentials)))
    client.messages.create(model="m", max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    assert fake.rejected == []
    assert upstream.received[-1].headers["x-amz-security-token"] == "FwoGZXIvYXdzEBYaDexample"


def test_bedrock_api_keys_are_bearer_tokens(
    upstream: FakeUpstream, bedrock: Any, serve: Callable[[str], GatewayServer]
) -> None:
    fake = bedrock(converse_answer, api_key="ABSKexamplebedrockkey")
    client = sdk_client(serve(config(upstream, NOVA, "      api_key: ABSKexamplebedrockkey\n")))
    client.messages.create(model="m", max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    assert fake.rejected == []
    assert "x-amz-date" not in upstream.received[-1].headers


def test_throttling_is_retried_then_reported_as_429(
    upstream: FakeUpstream, bedrock: Any, serve: Callable[[str], GatewayServer]
) -> None:
    bedrock(lambda action, received: aws_error("ThrottlingException", "Too many requests, please wait.", 429))
    client = sdk_client(serve(config(upstream, "converse/" + NOVA)))
    with pytest.raises(anthropic.RateLimitError, match="Too many requests"):
        client.messages.create(model="m", max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    assert len(upstream.received) == 2


def test_validation_errors_are_400_and_not_retried(
    upstream: FakeUpstream, bedrock: Any, serve: Callable[[str], GatewayServer]
) -> None:
    bedrock(
        lambda action, received: aws_error(
            "ValidationException", "The provided model identifier is invalid.", 400
        )
    )
    client = sdk_client(serve(config(upstream, "converse/" + NOVA)))
    with pytest.raises(anthropic.BadRequestError, match="model identifier is invalid"):
        client.messages.create(model="m", max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    assert len(upstream.received) == 1


def test_an_exception_frame_before_any_byte_is_retried(
    upstream: FakeUpstream, bedrock: Any, serve: Callable[[str], GatewayServer]
) -> None:
    answers = [
        eventstream_answer(
            exception_frame("serviceUnavailableException", "Bedrock is unable to process your request.")
        ),
        eventstream_answer(TEXT_STREAM.read_bytes()),
    ]
    bedrock(lambda action, received: answers.pop(0))
    client = sdk_client(serve(config(upstream, "converse/" + NOVA)))
    with client.messages.stream(
        model="m", max_tokens=50, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        assert "".join(stream.text_stream).startswith("The capital")
    assert len(upstream.received) == 2


def test_an_exception_frame_mid_stream_is_an_error_event(
    upstream: FakeUpstream, bedrock: Any, serve: Callable[[str], GatewayServer]
) -> None:
    head = encode_event("messageStart", b'{"role":"assistant"}') + encode_event(
        "contentBlockDelta", b'{"contentBlockIndex":0,"delta":{"text":"Hel"}}'
    )
    tail = exception_frame("throttlingException", "Too many tokens, please wait.")
    bedrock(
        lambda action, received: Sse([head, tail], headers={"content-type": EVENTSTREAM_TYPE}, pause=0.05)
    )
    client = sdk_client(serve(config(upstream, "converse/" + NOVA)))
    with client.messages.with_streaming_response.create(
        model="m", max_tokens=50, messages=[{"role": "user", "content": "Hi"}], stream=True
    ) as response:
        raw = response.read()
    assert b"Hel" in raw and b"message_stop" not in raw
    last = raw.rstrip().split(b"\n\n")[-1]
    assert last.startswith(b"event: error") and b"rate_limit_error" in last and b"Too many tokens" in last
    assert len(upstream.received) == 1


def test_claude_cache_usage_from_message_start_reaches_the_final_usage(
    upstream: FakeUpstream, bedrock: Any, serve: Callable[[str], GatewayServer]
) -> None:
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_bdrk_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {
                "input_tokens": 3, "cache_read_input_tokens": 1200, "cache_creation_input_tokens": 50,
                "output_tokens": 1,
            },
        },
    }  # fmt: skip
    events = [
        start,
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 2},
        },
        {"type": "message_stop"},
    ]
    bedrock(lambda action, received: eventstream_answer(invoke_stream(events)))
    client = sdk_client(serve(config(upstream, CLAUDE)))
    with client.messages.with_streaming_response.create(
        model="m", max_tokens=50, messages=[{"role": "user", "content": "Hi"}], stream=True
    ) as response:
        body = response.read()
    deltas = [e for e in sse_events(body) if e["type"] == "message_delta"]
    assert deltas[0]["usage"] == {
        "output_tokens": 2, "input_tokens": 3,
        "cache_read_input_tokens": 1200, "cache_creation_input_tokens": 50,
    }  # fmt: skip
    assert b"amazon-bedrock-invocationMetrics" not in body


def test_image_bytes_travel_as_base64(
    upstream: FakeUpstream, bedrock: Any, serve: Callable[[str], GatewayServer]
) -> None:
    fake = bedrock(converse_answer)
    client = sdk_client(serve(config(upstream, "converse/" + NOVA)))
    image = base64.b64encode(b"\x89PNG\r\n").decode()
    client.messages.create(
        model="m",
        max_tokens=50,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": image}},
                    {"type": "text", "text": "What?"},
                ],
            }
        ],
    )
    assert fake.rejected == []
    content = orjson.loads(upstream.received[-1].body)["messages"][0]["content"]
    assert content[0]["image"]["source"]["bytes"] == image


class _StopReasons(Hook):
    """Keeps each completed request's stop reason, in order."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []

    def completed(self, record: RequestRecord) -> None:
        self.seen.append(record.stop_reason)


@pytest.mark.parametrize(
    ("model", "answer"),
    [("converse/" + NOVA, converse_answer), (CLAUDE, claude_answer)],
    ids=["converse", "invoke"],
)
def test_hooks_see_the_stop_reason_the_client_received(
    upstream: FakeUpstream, bedrock: Any, model: str, answer: Answerer
) -> None:
    """Both Bedrock families, both ways: Converse (translated) and Claude's InvokeModel (relayed)."""
    bedrock(answer)
    hook = _StopReasons()
    server = GatewayServer(config(upstream, model), hooks=[hook]).start()
    try:
        client = sdk_client(server)
        hi: Any = [{"role": "user", "content": "Hi"}]
        whole = client.messages.create(model="m", max_tokens=50, messages=hi)
        with client.messages.stream(model="m", max_tokens=50, messages=hi) as stream:
            streamed = stream.get_final_message()
        deadline = time.monotonic() + 5
        while len(hook.seen) < 2 and time.monotonic() < deadline:  # a stream completes after its last byte
            time.sleep(0.01)
    finally:
        server.stop()
    assert whole.stop_reason is not None and streamed.stop_reason is not None
    assert hook.seen == [whole.stop_reason, streamed.stop_reason]
