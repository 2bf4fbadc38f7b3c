"""Converse: requests valid for botocore's service model; recorded streams → valid Anthropic events, in
any chunking, equal to the non-streaming answer; thinking state round trips; stop reasons; errors."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anygate.protocol.errors import UpstreamError, UpstreamFailure
from anygate.providers.bedrock.call import ConverseCall
from anygate.providers.bedrock.converse_request import converse_body
from anygate.providers.bedrock.eventstream import encode_event
from anygate.providers.bedrock.provider import BedrockProvider
from anygate.signing import ThinkingSigner
from tests.providers.bedrock_support import (
    BEDROCK,
    EVENTSTREAMS,
    VERCEL,
    VERCEL_STREAMS,
    exception_frame,
    frame_events,
    validate_operation,
    vercel_events,
)
from tests.providers.openai_support import (
    SIGNER,
    answered,
    anthropic_validator,
    assert_valid_events,
    context,
    decode_events,
    deployment,
    reported,
)

CLAUDE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
NOVA = "amazon.nova-pro-v1:0"
STREAMS = {p.stem: p.read_bytes() for p in EVENTSTREAMS} | {
    "vercel-" + p.name.removesuffix(".chunks.txt"): frame_events(vercel_events(p)) for p in VERCEL_STREAMS
}


def call(request: dict[str, Any] | None = None, model: str = CLAUDE, stream: bool = True) -> ConverseCall:
    ctx = context(request)
    prepared = BedrockProvider().prepare(
        deployment("bedrock", "converse/" + model, api_key="k"), ctx.request, ctx, stream=stream
    )
    assert isinstance(prepared, ConverseCall)
    return prepared


def stream_events(
    data: bytes, cuts: list[int] | None = None, target: ConverseCall | None = None
) -> list[dict[str, Any]]:
    translator = (target or call()).stream_translator()
    out = b""
    last = 0
    for cut in [*sorted(cuts or []), len(data)]:
        out += translator.feed(data[last:cut])
        last = max(last, cut)
    out += translator.finish()
    return reported(translator, decode_events(out))


# --- requests -----------------------------------------------------------------------------------------

RICH_REQUEST: dict[str, Any] = {
    "model": "client-model",
    "max_tokens": 1000,
    "system": [
        {"type": "text", "text": "x-anthropic-billing-header: cc_version=1"},
        {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}},
    ],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look:"},
                {
                    "type": "image",
                    "source": {
                        "type": "base64",
                        "media_type": "image/png",
                        "data": base64.b64encode(b"png").decode(),
                    },
                },
                {
                    "type": "document",
                    "title": "Q3 report.pdf",
                    "source": {
                        "type": "base64",
                        "media_type": "application/pdf",
                        "data": base64.b64encode(b"%PDF").decode(),
                    },
                },
                {
                    "type": "document",
                    "source": {"type": "text", "media_type": "text/plain", "data": "notes"},
                    "cache_control": {"type": "ephemeral"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {
                    "type": "thinking",
                    "thinking": "Let me look.",
                    "signature": SIGNER.seal("bedrock", {"s": "EqQBCkgIBxAB"}),
                },
                {
                    "type": "thinking",
                    "thinking": "",
                    "signature": SIGNER.seal("bedrock", {"r": "cmVkYWN0ZWQ="}),
                },
                {"type": "thinking", "thinking": "foreign", "signature": SIGNER.seal("gemini", {"t": "x"})},
                {"type": "thinking", "thinking": "anthropic's", "signature": "EqQBCkgIBxABGAIqQ"},
                {"type": "redacted_thinking", "data": "abc"},
                {"type": "text", "text": "Calling."},
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "boom", "is_error": True},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01",
                    "content": [{"type": "text", "text": "21C"}],
                },
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": []},
            ],
        },
        {"role": "user", "content": "And tomorrow?"},
    ],
    "tools": [
        {
            "name": "get_weather",
            "description": "Weather.",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            "cache_control": {"type": "ephemeral"},
        },
        {"type": "web_search_20250305", "name": "web_search"},
    ],
    "tool_choice": {"type": "tool", "name": "get_weather"},
    "stop_sequences": ["END"],
    "temperature": 0.5,
    "top_p": 0.9,
    "top_k": 40,
    "thinking": {"type": "enabled", "budget_tokens": 2048, "display": "omitted"},
    "context_management": {"edits": []},
    "service_tier": "auto",
}


@pytest.mark.parametrize(
    "model", [CLAUDE, NOVA, "meta.llama3-3-70b-instruct-v1:0", "mistral.mistral-large-2402-v1:0"]
)
@pytest.mark.parametrize("stream", [True, False])
def test_requests_fit_botocores_converse_shape(model: str, stream: bool) -> None:
    prepared = call(RICH_REQUEST, model, stream)
    body = orjson.loads(prepared.request.body)
    validate_operation("ConverseStream" if stream else "Converse", {"modelId": model, **body})
    assert prepared.request.url.endswith("/converse-stream" if stream else "/converse")


def test_what_maps_where() -> None:
    body = converse_body(RICH_REQUEST, CLAUDE, SIGNER)
    assert body["system"] == [{"text": "You are terse."}, {"cachePoint": {"type": "default"}}]
    user, assistant, results = (
        body["messages"][0]["content"],
        body["messages"][1]["content"],
        body["messages"][2]["content"],
    )
    assert user[1] == {"image": {"format": "png", "source": {"bytes": base64.b64encode(b"png").decode()}}}
    assert user[2]["document"]["name"] == "Q3 report pdf" and user[2]["document"]["format"] == "pdf"
    assert user[3]["document"]["format"] == "txt" and user[4] == {"cachePoint": {"type": "default"}}
    assert assistant == [
        {"reasoningContent": {"reasoningText": {"text": "Let me look.", "signature": "EqQBCkgIBxAB"}}},
        {"reasoningContent": {"redactedContent": "cmVkYWN0ZWQ="}},
        {"text": "Calling."},
        {"toolUse": {"toolUseId": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}},
    ]
    assert results[0] == {
        "toolResult": {"toolUseId": "toolu_01", "content": [{"text": "boom"}], "status": "error"}
    }
    assert results[2]["toolResult"]["content"] == [{"text": "(empty)"}]
    assert results[-1] == {"text": "And tomorrow?"}  # consecutive user messages join into one turn
    assert body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["properties"] == {
        "city": {"type": "string"}
    }
    assert body["toolConfig"]["tools"][1] == {"cachePoint": {"type": "default"}}
    assert len(body["toolConfig"]["tools"]) == 2  # the server tool is dropped
    assert body["toolConfig"]["toolChoice"] == {"tool": {"name": "get_weather"}}
    assert body["inferenceConfig"] == {
        "maxTokens": 1000,
        "temperature": 0.5,
        "topP": 0.9,
        "stopSequences": ["END"],
    }
    assert body["additionalModelRequestFields"] == {
        "top_k": 40,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
    }
    assert not {"context_management", "service_tier"} & set(orjson.loads(orjson.dumps(body)))


def test_other_families_get_no_claude_fields_and_no_cache_points() -> None:
    body = converse_body(RICH_REQUEST, "meta.llama3-3-70b-instruct-v1:0", SIGNER)
    assert "additionalModelRequestFields" not in body
    assert b"cachePoint" not in orjson.dumps(body)
    nova = converse_body(RICH_REQUEST, NOVA, SIGNER)
    assert nova["additionalModelRequestFields"] == {"inferenceConfig": {"topK": 40}}


def test_tool_history_without_tools_still_has_a_tool_config() -> None:
    request = {**RICH_REQUEST, "tools": None, "tool_choice": None}
    body = converse_body(request, CLAUDE, SIGNER)
    assert body["toolConfig"] == {
        "tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}]
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [({"type": "auto"}, {"auto": {}}), ({"type": "any"}, {"any": {}}), ({"type": "none"}, None)],
)
def test_tool_choice(choice: dict[str, Any], expected: dict[str, Any] | None) -> None:
    body = converse_body({**RICH_REQUEST, "tool_choice": choice}, CLAUDE, SIGNER)
    assert body["toolConfig"].get("toolChoice") == expected


def test_an_envelope_from_another_gateway_is_not_sent() -> None:
    other = ThinkingSigner("another-master-key").seal("bedrock", {"s": "forged"})
    request = {
        **RICH_REQUEST,
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "t", "signature": other},
                    {"type": "text", "text": "ok"},
                ],
            },
        ],
    }
    assert converse_body(request, CLAUDE, SIGNER)["messages"][1]["content"] == [{"text": "ok"}]


def test_image_urls_are_refused_plainly() -> None:
    request = {
        **RICH_REQUEST,
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}],
            }
        ],
    }
    with pytest.raises(Exception, match="image URLs"):
        converse_body(request, CLAUDE, SIGNER)


# --- answers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_recorded_streams_become_valid_anthropic_streams(name: str) -> None:
    events = stream_events(STREAMS[name])
    message = assert_valid_events(events)
    if b"metadata" in STREAMS[name]:  # one Vercel fixture ends without it: usage is then estimated
        assert message["usage"]["output_tokens"] > 0
    assert events[-2]["type"] == "message_delta"


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(sorted(STREAMS)), st.data())
def test_any_chunking_gives_the_same_events(name: str, data: st.DataObject) -> None:
    stream = STREAMS[name]
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=30))
    assert stream_events(stream, cuts) == stream_events(stream)


def test_thinking_signatures_are_sealed_and_go_back_exactly() -> None:
    message = assert_valid_events(stream_events(STREAMS["model_thinking_part_stream.0"]))
    thinking = message["content"][0]
    state = SIGNER.unseal("bedrock", thinking["signature"])
    assert state is not None and state["s"].startswith("Eu0CCkgIBxAB")
    follow_up = {
        **RICH_REQUEST,
        "messages": [
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": message["content"]},
            {"role": "user", "content": "again"},
        ],
    }
    sent = converse_body(follow_up, CLAUDE, SIGNER)["messages"][1]["content"][0]
    assert sent == {
        "reasoningContent": {"reasoningText": {"text": thinking["thinking"], "signature": state["s"]}}
    }


def test_redacted_reasoning_becomes_redacted_thinking_blocks_that_go_back() -> None:
    message = assert_valid_events(stream_events(STREAMS["model_thinking_part_redacted_stream.0"]))
    redacted = [block for block in message["content"] if block["type"] == "redacted_thinking"]
    assert len(redacted) == 2 and all(SIGNER.unseal("bedrock", block["data"]) for block in redacted)
    follow_up = {
        **RICH_REQUEST,
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": message["content"]},
            {"role": "user", "content": "What was that?"},
        ],
    }
    sent = converse_body(follow_up, CLAUDE, SIGNER)["messages"][1]["content"]
    assert [set(block["reasoningContent"]) for block in sent[:2]] == [
        {"redactedContent"},
        {"redactedContent"},
    ]


RESPONSES = {
    "vercel-reasoning": (VERCEL / "reasoning.json", VERCEL / "reasoning.chunks.txt"),
    "vercel-text": (VERCEL / "text.json", VERCEL / "text.chunks.txt"),
    "vercel-tool-call": (VERCEL / "tool-call.1.json", VERCEL / "tool-call.1.chunks.txt"),
}


CONVERSE_ANSWERS = [
    path
    for path in sorted(BEDROCK.glob("*.json"))
    if (lambda r: r["status"] == 200 and r["uri"].endswith("/converse"))(orjson.loads(path.read_bytes()))
]


@pytest.mark.parametrize("path", CONVERSE_ANSWERS, ids=lambda p: p.stem)
def test_recorded_converse_answers_become_valid_messages(path: Any) -> None:
    recorded = orjson.loads(path.read_bytes())
    answer = call(stream=False).parse_response(orjson.dumps(recorded["response"]))
    message = answered(answer)
    anthropic_validator("Message").validate(message)
    usage = recorded["response"]["usage"]
    assert answer.usage.input_tokens == usage["inputTokens"]
    assert answer.usage.cache_read_input_tokens == usage.get("cacheReadInputTokens", 0)


def test_a_non_streaming_answer_is_what_its_stream_accumulates_to() -> None:
    """The same answer both ways: a whole Converse answer, and its events framed as a stream."""
    from anygate.protocol.accumulate import accumulate
    from anygate.providers.bedrock.converse_stream import converse_events

    assert len(CONVERSE_ANSWERS) >= 8
    for path in CONVERSE_ANSWERS:
        recorded = orjson.loads(path.read_bytes())
        whole = answered(call(stream=False).parse_response(orjson.dumps(recorded["response"])))
        streamed = accumulate(stream_events(frame_events(converse_events(recorded["response"]))))
        assert whole == streamed, path.stem


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("end_turn", "end_turn"),
        ("max_tokens", "max_tokens"),
        ("guardrail_intervened", "refusal"),
        ("content_filtered", "refusal"),
        ("model_context_window_exceeded", "model_context_window_exceeded"),
        ("something_new", "end_turn"),
    ],
)
def test_stop_reasons(reason: str, expected: str) -> None:
    events = stream_events(
        frame_events(
            [
                ("messageStart", {"role": "assistant"}),
                ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x"}}),
                ("contentBlockStop", {"contentBlockIndex": 0}),
                ("messageStop", {"stopReason": reason}),
                ("metadata", {"usage": {"inputTokens": 3, "outputTokens": 1}}),
            ]
        )
    )
    assert events[-2]["delta"]["stop_reason"] == expected
    if expected == "model_context_window_exceeded":  # Anthropic's own, in its beta stop reasons
        anthropic_validator("BetaStopReason").validate(expected)
    else:
        anthropic_validator("MessageStreamEvent").validate(events[-2])


def test_stop_sequence_and_cache_usage() -> None:
    events = stream_events(
        frame_events(
            [
                ("messageStart", {"role": "assistant"}),
                ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x"}}),
                ("contentBlockStop", {"contentBlockIndex": 0}),
                (
                    "messageStop",
                    {
                        "stopReason": "stop_sequence",
                        "additionalModelResponseFields": {"stop_sequence": "END"},
                    },
                ),
                (
                    "metadata",
                    {
                        "usage": {
                            "inputTokens": 3,
                            "outputTokens": 1,
                            "cacheReadInputTokens": 100,
                            "cacheWriteInputTokens": 20,
                        }
                    },
                ),
            ]
        )
    )
    assert events[-2]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}
    assert events[-2]["usage"] == {
        "input_tokens": 3,
        "output_tokens": 1,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 20,
    }


def test_the_final_message_delta_waits_for_metadata() -> None:
    translator = call().stream_translator()
    head = frame_events(
        [
            ("messageStart", {"role": "assistant"}),
            ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x"}}),
            ("messageStop", {"stopReason": "end_turn"}),
        ]
    )
    assert b"message_delta" not in translator.feed(head)
    assert b"message_delta" in translator.feed(
        encode_event("metadata", b'{"usage":{"inputTokens":1,"outputTokens":2}}')
    )


def test_a_stream_without_message_stop_fails() -> None:
    with pytest.raises(UpstreamFailure, match="messageStop"):
        stream_events(
            frame_events(
                [
                    ("messageStart", {"role": "assistant"}),
                    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x"}}),
                ]
            )
        )


@pytest.mark.parametrize(
    ("kind", "status", "error_type", "retryable"),
    [
        ("throttlingException", 429, "rate_limit_error", True),
        ("serviceUnavailableException", 529, "overloaded_error", True),
        ("modelStreamErrorException", 500, "api_error", True),
        ("internalServerException", 500, "api_error", True),
        ("modelTimeoutException", 504, "timeout_error", True),
        ("validationException", 400, "invalid_request_error", False),
    ],
)
def test_exception_frames_end_the_stream_with_the_mapped_error(
    kind: str, status: int, error_type: str, retryable: bool
) -> None:
    data = frame_events([("messageStart", {"role": "assistant"})]) + exception_frame(kind, "it broke")
    with pytest.raises(UpstreamError) as caught:
        stream_events(data)
    assert (caught.value.status, caught.value.error_type, caught.value.retryable) == (
        status,
        error_type,
        retryable,
    )
    assert caught.value.message == "it broke"


def test_malformed_tool_use_fails_the_attempt() -> None:
    with pytest.raises(UpstreamFailure):
        stream_events(
            frame_events(
                [
                    ("messageStart", {"role": "assistant"}),
                    ("messageStop", {"stopReason": "malformed_tool_use"}),
                ]
            )
        )
