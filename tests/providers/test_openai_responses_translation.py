"""Responses API translation: recorded streams, every chunking, requests against the OpenAPI schema."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anygate.protocol.accumulate import accumulate
from anygate.protocol.errors import GatewayError, UpstreamFailure
from anygate.providers.openai_responses.request import ENVELOPE_PROVIDER
from tests.providers.openai_support import SIGNER, assert_valid_events, deployment
from tests.providers.responses_support import (
    RECORDED,
    assert_valid_responses_request,
    build,
    context,
    events_of,
    final_response,
    input_tokens_validator,
    parse,
    prepared,
    provider,
    sse,
    translate,
)

ANSWERS = sorted(name for name, data in RECORDED.items() if final_response(data)["status"] != "failed")  # type: ignore[index]
TOOLS = [
    {
        "name": "calculator",
        "description": "Arithmetic.",
        "input_schema": {"type": "object", "properties": {}},
    },
    {"name": "mcp__server__" + "x" * 70, "input_schema": {"type": "object"}, "strict": True},
]


@pytest.mark.parametrize("name", ANSWERS)
def test_recordings_give_valid_events_and_equal_the_non_streaming_answer(name: str) -> None:
    data = RECORDED[name]
    streamed = assert_valid_events(translate([data]))
    whole = parse(final_response(data))  # type: ignore[arg-type]
    assert same_items(whole) == same_items(streamed)
    assert streamed["id"] == "msg_0123abcd" and streamed["model"] == "client-model"
    assert streamed["content"]


def same_items(message: dict[str, Any]) -> dict[str, Any]:
    """The message with each sealed reasoning item reduced to its id: the upstream encrypts an item anew
    each time it serialises it, so the copy in ``response.completed`` differs from the one in
    ``output_item.done`` while both are the same item."""
    content = []
    for block in message["content"]:
        sealed = block.get("signature") or block.get("data")
        payload = SIGNER.unseal(ENVELOPE_PROVIDER, sealed)
        if payload is not None:
            block = {**block, "signature" if "signature" in block else "data": payload["id"]}
        content.append(block)
    return {**message, "content": content}


EXPECTED = {
    "gpt-4o-text": ("end_turn", ["text"], (278, 0, 9)),
    "gpt-4o-function-call": ("tool_use", ["tool_use"], (255, 0, 16)),
    "gpt-5-reasoning-function-call": ("tool_use", ["redacted_thinking", "tool_use"], (53, 0, 469)),
    "gpt-5-web-search": ("end_turn", ["redacted_thinking", "redacted_thinking", "text"], (1143, 8320, 582)),
    "o3-mini-reasoning-summaries": ("end_turn", ["thinking", "text"], (13, 0, 1680)),
    "openai-phase.1": ("end_turn", ["text"], (4040, 3072, 463)),
    "openai-reasoning-encrypted-content.1-0": ("tool_use", ["thinking", "tool_use"], (134, 0, 28)),
    "openai-reasoning-encrypted-content.1-3": ("end_turn", ["text"], (299, 0, 12)),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recording_outcomes(name: str) -> None:
    message = accumulate(translate([RECORDED[name]]))
    stop_reason, blocks, (fresh, cached, output) = EXPECTED[name]
    assert message["stop_reason"] == stop_reason
    assert [b["type"] for b in message["content"]] == blocks
    usage = message["usage"]
    assert (usage["input_tokens"], usage["cache_read_input_tokens"], usage["output_tokens"]) == (
        fresh,
        cached,
        output,
    )


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_random_chunk_splits_give_the_same_message(data: st.DataObject) -> None:
    raw = RECORDED[data.draw(st.sampled_from(ANSWERS))]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=40)))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    assert accumulate(translate(pieces)) == accumulate(translate([raw]))


def test_the_signature_seals_the_final_state_of_the_reasoning_item() -> None:
    data = RECORDED["openai-reasoning-encrypted-content.1-0"]
    events = events_of(data)
    added = next(e["item"] for e in events if e["type"] == "response.output_item.added")
    done = next(e["item"] for e in events if e["type"] == "response.output_item.done")
    assert added["encrypted_content"] != done["encrypted_content"]
    thinking = accumulate(translate([data]))["content"][0]
    assert thinking["thinking"].startswith("**Calculating step-by-step using calculator**")
    assert SIGNER.unseal(ENVELOPE_PROVIDER, thinking["signature"]) == {
        "id": done["id"],
        "encrypted_content": done["encrypted_content"],
    }


def test_a_reasoning_item_without_summary_is_redacted_thinking_carrying_it() -> None:
    message = accumulate(translate([RECORDED["gpt-5-reasoning-function-call"]]))
    redacted = message["content"][0]
    payload = SIGNER.unseal(ENVELOPE_PROVIDER, redacted["data"])
    assert (
        payload is not None
        and payload["id"].startswith("rs_")
        and payload["encrypted_content"].startswith("gAAAA")
    )


def test_multi_part_summaries_are_one_block_with_paragraph_breaks() -> None:
    message = accumulate(translate([RECORDED["o3-mini-reasoning-summaries"]]))
    response = final_response(RECORDED["o3-mini-reasoning-summaries"])
    parts = [p["text"] for p in response["output"][0]["summary"]]  # type: ignore[index]
    assert len(parts) > 1 and message["content"][0]["thinking"] == "\n\n".join(parts)


def test_an_error_event_before_anything_fails_with_the_mapped_status() -> None:
    translator = prepared().stream_translator()
    with pytest.raises(GatewayError) as failure:
        translator.feed(RECORDED["openai-error.1"])
    assert failure.value.status == 429 and "quota" in failure.value.message


def _item_events(text: str) -> list[dict[str, Any]]:
    message = {"id": "msg_1", "type": "message", "role": "assistant", "content": []}
    return [
        {"type": "response.created", "response": {"id": "r", "status": "in_progress"}},
        {"type": "response.output_item.added", "output_index": 0, "item": message},
        {"type": "response.output_text.delta", "output_index": 0, "delta": text},
    ]


@pytest.mark.parametrize(
    ("reason", "stop_reason"), [("max_output_tokens", "max_tokens"), ("content_filter", "refusal")]
)
def test_incomplete_answers(reason: str, stop_reason: str) -> None:
    end = {
        "type": "response.incomplete",
        "response": {"status": "incomplete", "incomplete_details": {"reason": reason}},
    }
    message = assert_valid_events(translate(sse(*_item_events("Partial"), end)))
    assert message["stop_reason"] == stop_reason and message["content"][0]["text"] == "Partial"


def test_a_failure_mid_stream_raises_after_the_start() -> None:
    translator = prepared().stream_translator()
    out = translator.feed(b"".join(sse(*_item_events("Hel"))))
    assert out.startswith(b"event: message_start")
    failed = {
        "type": "response.failed",
        "response": {"status": "failed", "error": {"code": "server_error", "message": "boom"}},
    }
    with pytest.raises(UpstreamFailure):
        translator.feed(b"".join(sse(failed)))


def test_a_stream_cut_before_completion_is_a_failure() -> None:
    translator = prepared().stream_translator()
    translator.feed(b"".join(sse(*_item_events("Hel"))))
    with pytest.raises(UpstreamFailure):
        translator.finish()


def test_a_refusal_part_is_a_refusal() -> None:
    item = {
        "id": "m",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "refusal", "refusal": "No."}],
    }
    message = parse({"status": "completed", "output": [item], "usage": None})
    assert message["stop_reason"] == "refusal" and message["content"][0]["text"] == "No."


# --- requests --------------------------------------------------------------------------------------


def conversation(assistant: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "model": "client-model",
        "max_tokens": 2048,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=1; cch=abc;"},
            {"type": "text", "text": "You are a calculator."},
        ],
        "messages": [
            {"role": "user", "content": "Compute (12+7)*3*10."},
            {"role": "assistant", "content": assistant},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_AB6AaRZ1FYZB2RwS6A5vbdqn", "content": "19"},
                    {"type": "text", "text": "go on"},
                ],
            },
        ],
        "tools": TOOLS,
        **extra,
    }


def test_the_reasoning_round_trips_right_before_its_call() -> None:
    first = accumulate(translate([RECORDED["openai-reasoning-encrypted-content.1-0"]]))
    body, _ = build(
        conversation(first["content"], thinking={"type": "enabled", "budget_tokens": 20000}), stream=True
    )
    assert_valid_responses_request(body)
    kinds = [item.get("type") or item["role"] for item in body["input"]]
    assert kinds == ["user", "reasoning", "function_call", "function_call_output", "user"]
    done = [
        e["item"]
        for e in events_of(RECORDED["openai-reasoning-encrypted-content.1-0"])
        if e["type"] == "response.output_item.done"
    ]
    reasoning = body["input"][1]
    assert (reasoning["id"], reasoning["encrypted_content"]) == (done[0]["id"], done[0]["encrypted_content"])
    assert reasoning["summary"][0]["text"] == first["content"][0]["thinking"]
    call = body["input"][2]
    assert call["call_id"] == "call_AB6AaRZ1FYZB2RwS6A5vbdqn" and orjson.loads(call["arguments"]) == {
        "a": 12,
        "b": 7,
        "op": "add",
    }
    assert body["reasoning"] == {"effort": "high", "summary": "auto"}
    assert body["store"] is False and body["include"] == ["reasoning.encrypted_content"]
    assert body["instructions"] == "You are a calculator." and body["max_output_tokens"] == 2048


def test_reasoning_from_elsewhere_never_goes_upstream() -> None:
    foreign = SIGNER.seal("gemini", {"id": "rs_x", "encrypted_content": "gAAAA-foreign"})
    other_gateway = "anygate.v2.openai_responses.eyJpZCI6InJzX3kifQ.AAAAAAAAAAAAAAAAAAAAAA"
    blocks = [
        {"type": "thinking", "thinking": "plain", "signature": SIGNER.sign("plain")},
        {"type": "thinking", "thinking": "anthropic", "signature": "EqQBCkYIBxgCKkA-genuine"},
        {"type": "thinking", "thinking": "gemini", "signature": foreign},
        {"type": "redacted_thinking", "data": other_gateway},
        {"type": "tool_use", "id": "call_AB6AaRZ1FYZB2RwS6A5vbdqn", "name": "calculator", "input": {}},
    ]
    body, _ = build(conversation(blocks))
    assert_valid_responses_request(body)
    assert not [item for item in body["input"] if item.get("type") == "reasoning"]


def test_a_reasoning_item_with_nothing_after_it_is_not_sent() -> None:
    first = accumulate(translate([RECORDED["openai-reasoning-encrypted-content.1-0"]]))
    body, _ = build(conversation(first["content"][:1]))
    assert not [item for item in body["input"] if item.get("type") == "reasoning"]


def test_amending_drops_the_reasoning_once() -> None:
    first = accumulate(translate([RECORDED["openai-reasoning-encrypted-content.1-0"]]))
    _, call = build(conversation(first["content"]))
    error = {
        "message": "The encrypted content gAAA...== could not be verified.",
        "type": "invalid_request_error",
    }
    refusal = orjson.dumps({"error": {**error, "param": None, "code": "invalid_encrypted_content"}})
    assert call.amend(500, refusal) is None and call.amend(400, b'{"error": {"code": "other"}}') is None
    amended = call.amend(400, refusal)
    assert amended is not None
    sent = orjson.loads(amended.request.body)
    assert_valid_responses_request(sent)
    assert [item.get("type") or item["role"] for item in sent["input"]] == [
        "user",
        "function_call",
        "function_call_output",
        "user",
    ]
    assert amended.amend(400, refusal) is None, "one retry at most"


def test_request_fields() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    pdf = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
    }
    request = {
        "model": "client-model",
        "max_tokens": 500,
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 5,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "user_" + "a" * 80},
        "output_config": {"effort": "low", "format": {"type": "json_schema", "schema": {"type": "object"}}},
        "tools": TOOLS,
        "tool_choice": {"type": "tool", "name": TOOLS[1]["name"], "disable_parallel_tool_use": True},
        "context_management": {"edits": []},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "see"}, image, pdf]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "calculator",
                                               "input": {"a": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True,
                                          "content": [{"type": "text", "text": "bad"}, image]}]},
        ],
    }  # fmt: skip
    body, call = build(request)
    assert_valid_responses_request(body)
    assert "temperature" not in body and "top_p" not in body and "top_k" not in body and "stop" not in body
    assert "context_management" not in body and "stream" not in body
    assert body["reasoning"] == {"effort": "low"}
    assert body["text"]["format"]["type"] == "json_schema" and body["text"]["format"]["schema"] == {
        "type": "object"
    }
    assert len(body["safety_identifier"]) == 64 and "user_" not in body["safety_identifier"]
    wire_name = body["tools"][1]["name"]
    assert len(wire_name) <= 64 and body["tools"][1]["strict"] is True and body["tools"][0]["strict"] is False
    assert (
        body["tool_choice"] == {"type": "function", "name": wire_name}
        and body["parallel_tool_calls"] is False
    )
    assert call.tool_names[wire_name] == TOOLS[1]["name"]
    user = body["input"][0]["content"]
    assert [p["type"] for p in user] == ["input_text", "input_image", "input_file"]
    assert user[1]["image_url"].startswith("data:image/png;base64,") and user[2]["file_data"].startswith(
        "data:application/pdf"
    )
    output = body["input"][2]
    assert output["type"] == "function_call_output" and output["call_id"] == "toolu_1"
    assert (
        output["output"][0] == {"type": "input_text", "text": "Error: bad"}
        and output["output"][1]["type"] == "input_image"
    )
    # a model that is no reasoning model keeps its sampling parameters and gets no reasoning include
    plain, _ = build(request, model="gpt-4.1")
    assert_valid_responses_request(plain)
    assert plain["temperature"] == 0.2 and "include" not in plain and "reasoning" not in plain


def test_the_prompt_cache_key_is_stable_across_turns_of_a_conversation() -> None:
    first = accumulate(translate([RECORDED["openai-reasoning-encrypted-content.1-0"]]))
    opening = {**conversation([]), "messages": conversation([])["messages"][:1]}
    later = conversation(first["content"])
    other = {**opening, "messages": [{"role": "user", "content": "something else"}]}
    keys = [build(r)[0]["prompt_cache_key"] for r in (opening, later, other)]
    assert keys[0] == keys[1] != keys[2]


def test_azure_urls_and_the_count_endpoint() -> None:
    azure = provider("azure")
    base = "https://res.openai.azure.com"
    assert azure.url(deployment("azure", "dep", api_base=base)) == f"{base}/openai/v1/responses"
    assert (
        azure.url(deployment("azure", "dep", api_base=base + "/openai/v1/")) == f"{base}/openai/v1/responses"
    )
    dated = deployment("azure", "dep", api_base=base, api_version="2025-04-01-preview")
    assert azure.url(dated) == f"{base}/openai/responses?api-version=2025-04-01-preview"
    request = conversation(
        [{"type": "tool_use", "id": "call_AB6AaRZ1FYZB2RwS6A5vbdqn", "name": "calculator", "input": {}}]
    )
    assert (
        azure.prepare_count_tokens(deployment("azure", "dep", api_base=base), request, context(request))
        is None
    )
    openai = provider("openai")
    count = openai.prepare_count_tokens(deployment("openai", "gpt-5"), request, context(request))
    assert count is not None and count.request.url == "https://api.openai.com/v1/responses/input_tokens"
    input_tokens_validator().validate(orjson.loads(count.request.body))
    assert count.parse(b'{"object": "response.input_tokens", "input_tokens": 321}') == 321
    local = deployment("openai", "gpt-5", api_base="http://localhost:8000/v1")
    assert openai.prepare_count_tokens(local, request, context(request)) is None
