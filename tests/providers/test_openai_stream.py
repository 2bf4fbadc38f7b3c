"""Chat Completions answers → Anthropic events and Messages: recordings, interleaving, cut-offs, usage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anygate.protocol.accumulate import accumulate
from anygate.protocol.errors import GatewayError
from anygate.signing import is_gateway_signature
from tests.providers.openai_support import (
    OPENAI_RECORDINGS,
    RECORDING_IDS,
    SIGNER,
    assert_valid_events,
    build,
    chunk,
    context,
    frames,
    parse,
    prepared,
    recording_to_completion,
    translate,
)

WEATHER_CALL = {
    "index": 0,
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": ""},
}
USAGE = {
    "usage": {"prompt_tokens": 50, "completion_tokens": 20, "prompt_tokens_details": {"cached_tokens": 30}}
}


def usage_chunk(**usage: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "choices": [], "usage": usage or USAGE["usage"]}


def kinds(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for event in events:
        kind = event["type"]
        if kind == "content_block_start":
            kind += ":" + event["content_block"]["type"]
        elif kind == "content_block_delta":
            kind = event["delta"]["type"]
        out.append(kind)
    return out


@pytest.mark.parametrize("path", OPENAI_RECORDINGS, ids=RECORDING_IDS)
def test_recordings_give_valid_events_and_equal_the_non_streaming_answer(path: Path) -> None:
    data = path.read_bytes()
    streamed = assert_valid_events(translate([data]))
    whole = parse(recording_to_completion(data))
    assert whole == streamed
    assert streamed["id"] == "msg_0123abcd" and streamed["model"] == "client-model"
    assert streamed["content"], "every recording has content"


EXPECTED = {
    "text": ("end_turn", ["text"], 14, 30),
    "finish_length": ("max_tokens", ["text"], 79, 1),
    "refusal": ("refusal", ["text"], 79, 11),
    "tool_call": ("tool_use", ["tool_use"], 44, 16),
    "parallel_tool_calls": ("tool_use", ["tool_use", "tool_use"], 149, 60),
    "three_choices": ("end_turn", ["text"], 79, 42),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recording_outcomes(name: str) -> None:
    message = accumulate(translate([(OPENAI_RECORDINGS[RECORDING_IDS.index(name)]).read_bytes()]))
    stop_reason, blocks, input_tokens, output_tokens = EXPECTED[name]
    assert message["stop_reason"] == stop_reason
    assert [b["type"] for b in message["content"]] == blocks
    assert (message["usage"]["input_tokens"], message["usage"]["output_tokens"]) == (
        input_tokens,
        output_tokens,
    )
    if name == "parallel_tool_calls":
        assert [b["input"] for b in message["content"]] == [
            {"city": "Edinburgh", "country": "GB", "units": "c"},
            {"ticker": "AAPL", "exchange": "NASDAQ"},
        ]
    if name == "three_choices":  # only choice 0 is the answer
        assert message["content"][0]["text"] == '{"city":"San Francisco","temperature":65,"units":"f"}'


def test_message_start_comes_with_the_first_chunk_and_local_input_tokens() -> None:
    translator = prepared().stream_translator()
    assert translator.feed(b"data: ") == b"" and not translator.started
    out = translator.feed(orjson.dumps(chunk({"role": "assistant", "content": ""})) + b"\n\n")
    assert translator.started and out.startswith(b"event: message_start\n")
    start = orjson.loads(out.split(b"data: ", 1)[1])
    assert start["message"]["usage"]["input_tokens"] > 0


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_random_chunk_splits_give_the_same_message(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(OPENAI_RECORDINGS))
    raw = path.read_bytes()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=40)))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    assert accumulate(translate(pieces)) == accumulate(translate([raw]))


def test_text_and_tool_call_in_one_chunk() -> None:
    events = translate(
        frames(
            chunk(
                {
                    "role": "assistant",
                    "content": "Let me check.",
                    "tool_calls": [
                        {**WEATHER_CALL, "function": {"name": "get_weather", "arguments": '{"city":'}}
                    ],
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "Paris"}'}}]}),
            chunk(finish_reason="tool_calls"),
            usage_chunk(),
        )
    )
    message = assert_valid_events(events)
    assert [b["type"] for b in message["content"]] == ["text", "tool_use"]
    assert message["content"][1]["input"] == {"city": "Paris"}
    assert message["stop_reason"] == "tool_use"


def test_interleaved_parallel_tool_calls() -> None:
    second = {
        "index": 1,
        "id": "call_2",
        "type": "function",
        "function": {"name": "get_time", "arguments": ""},
    }
    events = translate(
        frames(
            chunk({"tool_calls": [WEATHER_CALL]}),
            chunk({"tool_calls": [second]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city"'}}]}),
            chunk({"tool_calls": [{"index": 1, "function": {"arguments": '{"tz"'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": ': "Paris"}'}}]}),
            chunk({"tool_calls": [{"index": 1, "function": {"arguments": ': "CET"}'}}]}),
            chunk({"content": "Done."}),
            chunk(finish_reason="tool_calls"),
            usage_chunk(),
        )
    )
    message = assert_valid_events(events)
    assert [(b["type"], b.get("name"), b.get("input")) for b in message["content"]] == [
        ("tool_use", "get_weather", {"city": "Paris"}),
        ("tool_use", "get_time", {"tz": "CET"}),
        ("text", None, None),
    ]
    assert message["content"][2]["text"] == "Done."
    first_call_deltas = [e for e in events if e["type"] == "content_block_delta" and e["index"] == 0]
    assert len(first_call_deltas) == 2, "the first tool call streams live"


def test_a_whole_tool_call_in_the_first_chunk() -> None:
    whole = {**WEATHER_CALL, "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    message = assert_valid_events(
        translate(frames(chunk({"tool_calls": [whole]}, finish_reason="tool_calls"), usage_chunk()))
    )
    assert message["content"][0]["input"] == {"city": "Oslo"} and message["stop_reason"] == "tool_use"


def test_tool_calls_without_index_and_with_invalid_ids() -> None:
    calls = [
        {"id": "call/1 x", "type": "function", "function": {"name": "a", "arguments": "{}"}},
        {"id": "call/2", "type": "function", "function": {"name": "b", "arguments": {"k": 1}}},
    ]
    message = assert_valid_events(
        translate(frames(chunk({"tool_calls": calls}, finish_reason="stop"), usage_chunk()))
    )
    ids = [b["id"] for b in message["content"]]
    assert all(i.replace("_", "").replace("-", "").isalnum() for i in ids) and ids[0] != ids[1]
    assert ids == [
        b["id"]
        for b in accumulate(translate(frames(chunk({"tool_calls": calls}, finish_reason="stop"))))["content"]
    ]
    assert message["content"][1]["input"] == {"k": 1}
    assert message["stop_reason"] == "tool_use", "a stop finish with tool calls is still tool_use"


def test_broken_tool_arguments_are_repaired() -> None:
    message = assert_valid_events(
        translate(
            frames(
                chunk(
                    {
                        "tool_calls": [
                            {
                                **WEATHER_CALL,
                                "function": {"name": "get_weather", "arguments": '{"city": "Par'},
                            }
                        ]
                    }
                ),
                chunk(finish_reason="length"),
            )
        )
    )
    assert message["content"][0]["input"] == {"city": "Par"} and message["stop_reason"] == "max_tokens"
    not_object = parse(
        {
            "choices": [
                {
                    "message": {
                        "tool_calls": [{**WEATHER_CALL, "function": {"name": "f", "arguments": "[1]"}}]
                    },
                    "finish_reason": "tool_calls",
                }
            ]
        }
    )
    assert not_object["content"][0]["input"] == {"value": [1]}


def test_shortened_tool_names_are_mapped_back() -> None:
    long_name = "mcp__server__" + "x" * 80
    request = {
        "model": "m",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "go"}],
        "tools": [{"name": long_name, "input_schema": {"type": "object"}}],
    }
    body, _, prepared_call = build(request)
    wire = body["tools"][0]["function"]["name"]
    call = {"index": 0, "id": "c1", "function": {"name": wire, "arguments": "{}"}}
    streamed = translate(frames(chunk({"tool_calls": [call]}, finish_reason="tool_calls")), prepared_call)
    assert accumulate(streamed)["content"][0]["name"] == long_name
    whole = parse(
        {"choices": [{"message": {"tool_calls": [call]}, "finish_reason": "tool_calls"}]}, prepared_call
    )
    assert whole["content"][0]["name"] == long_name


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_becomes_a_signed_thinking_block(field: str) -> None:
    events = translate(
        frames(
            chunk({field: "Let me "}),
            chunk({field: "think."}),
            chunk({"content": "42"}),
            chunk(finish_reason="stop"),
            usage_chunk(prompt_tokens=10, completion_tokens=5),
        )
    )
    assert kinds(events) == [
        "message_start",
        "content_block_start:thinking",
        "thinking_delta",
        "thinking_delta",
        "signature_delta",
        "content_block_stop",
        "content_block_start:text",
        "text_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    message = assert_valid_events(events)
    thinking = message["content"][0]
    assert thinking["thinking"] == "Let me think." and is_gateway_signature(thinking["signature"])
    assert SIGNER.verify("Let me think.", thinking["signature"])
    whole = parse(
        {
            "choices": [{"message": {field: "Let me think.", "content": "42"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5},
        }
    )
    assert whole == message


@pytest.mark.parametrize(
    ("finish_reason", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
        ("tool_calls", "tool_use"),
        ("something_new", "end_turn"),
    ],
)
def test_finish_reasons(finish_reason: str, stop_reason: str) -> None:
    message = accumulate(translate(frames(chunk({"content": "x"}), chunk(finish_reason=finish_reason))))
    assert message["stop_reason"] == stop_reason and message["stop_sequence"] is None


def test_stop_sequence_from_vllm_and_from_the_text() -> None:
    request = {
        "model": "m",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "x"}],
        "stop_sequences": ["END", "STOP"],
    }
    ctx = context(request)
    vllm = accumulate(
        translate(frames(chunk({"content": "abc"}), chunk(finish_reason="stop", stop_reason="STOP")), ctx)
    )
    assert (vllm["stop_reason"], vllm["stop_sequence"]) == ("stop_sequence", "STOP")
    kept = accumulate(
        translate(frames(chunk({"content": "abc END"}), chunk(finish_reason="stop")), context(request))
    )
    assert (kept["stop_reason"], kept["stop_sequence"]) == ("stop_sequence", "END")
    natural = accumulate(
        translate(
            frames(chunk({"content": "abc"}), chunk(finish_reason="stop", stop_reason=None)), context(request)
        )
    )
    assert (natural["stop_reason"], natural["stop_sequence"]) == ("end_turn", None)


def test_usage_with_cached_tokens() -> None:
    message = accumulate(
        translate(frames(chunk({"content": "x"}), chunk(finish_reason="stop"), usage_chunk()))
    )
    assert message["usage"] == {
        "input_tokens": 20,
        "cache_read_input_tokens": 30,
        "cache_creation_input_tokens": 0,
        "output_tokens": 20,
    }
    deepseek = accumulate(
        translate(
            frames(
                chunk({"content": "x"}),
                chunk(finish_reason="stop"),
                usage_chunk(prompt_tokens=40, completion_tokens=3, prompt_cache_hit_tokens=32),
            )
        )
    )
    assert (deepseek["usage"]["input_tokens"], deepseek["usage"]["cache_read_input_tokens"]) == (8, 32)


def test_an_upstream_ignoring_stream_options_still_reports_usage() -> None:
    ctx = context({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hello " * 50}]})
    message = accumulate(
        translate(frames(chunk({"content": "hello world, again"}), chunk(finish_reason="stop")), ctx)
    )
    assert message["usage"]["input_tokens"] >= 50
    assert message["usage"]["output_tokens"] == 4  # o200k: "hello", " world", ",", " again"


@pytest.mark.parametrize(
    ("chunks", "message"),
    [
        (frames(chunk({"content": "partial"}), done=False), "finish_reason"),
        (frames(chunk({"content": "partial"})), "finish_reason"),
        (frames(chunk({"content": "x"}), chunk(finish_reason="stop"), done=False), "[DONE]"),
        ([], "finish_reason"),
    ],
    ids=["cut", "done-without-finish", "finish-without-done", "empty"],
)
def test_incomplete_streams_fail_instead_of_stopping(chunks: list[bytes], message: str) -> None:
    translator = prepared().stream_translator()
    out = b"".join(translator.feed(c) for c in chunks)
    assert b"message_stop" not in out
    with pytest.raises(GatewayError) as caught:
        translator.finish()
    assert message in caught.value.message


def test_errors_inside_a_stream_or_a_200_body() -> None:
    translator = prepared().stream_translator()
    translator.feed(frames(chunk({"content": "x"}), done=False)[0])
    with pytest.raises(GatewayError) as caught:
        translator.feed(
            b'data: {"error": {"message": "overloaded, sk-abcdef123456 try later", "code": 503}}\n\n'
        )
    assert caught.value.status == 529 and "sk-abcdef123456" not in caught.value.message
    with pytest.raises(GatewayError) as in_body:
        parse({"error": {"message": "bad thing", "code": 400}})
    assert in_body.value.status == 400 and in_body.value.message == "bad thing"
    aborted = prepared().stream_translator()
    with pytest.raises(GatewayError):
        aborted.feed(b"".join(frames(chunk({"content": "x"}), chunk(finish_reason="abort"))))


def test_non_streaming_answer_shape() -> None:
    completion = {
        "id": "chatcmpl-xyz",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "reasoning_content": "hmm",
                    "content": "Calling.",
                    "tool_calls": [
                        {
                            "id": "call_9",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7},
    }
    message = parse(completion)
    assert message["id"] == "msg_0123abcd" and message["model"] == "client-model"
    assert [b["type"] for b in message["content"]] == ["thinking", "text", "tool_use"]
    assert message["content"][2] == {
        "type": "tool_use",
        "id": "call_9",
        "name": "get_weather",
        "input": {"city": "Rome"},
    }
    assert message["usage"]["input_tokens"] == 12 and message["stop_reason"] == "tool_use"
    assert_valid_events(
        translate(
            [b"".join(frames(*[chunk(completion["choices"][0]["message"], finish_reason="tool_calls")]))]
        )
    )


def test_empty_answer_is_still_a_valid_message() -> None:
    message = parse(
        {"choices": [{"message": {"role": "assistant", "content": None}, "finish_reason": "stop"}]}
    )
    assert message["content"] == [] and message["stop_reason"] == "end_turn"
    with pytest.raises(ValueError):
        parse({"choices": []})
