"""Anthropic request → Chat Completions body: every mapping, each body checked against OpenAI's spec."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anygate.providers.openai_chat.names import alnum9_tool_id, tool_name_map, wire_tool_name
from anygate.providers.openai_chat.reasoning import budget_to_effort
from tests.providers.openai_support import assert_valid_chat_request, build

WEATHER = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def req(**fields: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "model": "client-model",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "hi"}],
    }
    request.update(fields)
    return request


def body_of(request: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    body, _, _ = build(request, **kwargs)
    assert_valid_chat_request(body)
    return body


def test_minimal_request() -> None:
    body = body_of(req())
    assert body == {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "max_completion_tokens": 256,
    }


def test_system_string_and_blocks_without_the_billing_line() -> None:
    assert body_of(req(system="Be brief."))["messages"][0] == {"role": "system", "content": "Be brief."}
    system = [
        {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1; cch=abc;"},
        {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Be careful."},
    ]
    messages = body_of(req(system=system))["messages"]
    assert messages[0] == {"role": "system", "content": "You are Claude Code.\n\nBe careful."}
    only_billing = body_of(req(system=[{"type": "text", "text": "x-anthropic-billing-header: a"}]))
    assert only_billing["messages"][0]["role"] == "user"


def test_user_content_images_and_documents() -> None:
    content = [
        {"type": "text", "text": "Look:", "cache_control": {"type": "ephemeral"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"}},
        {
            "type": "document",
            "title": "notes",
            "source": {"type": "text", "media_type": "text/plain", "data": "a b"},
        },
    ]
    parts = body_of(req(messages=[{"role": "user", "content": content}]))["messages"][0]["content"]
    assert parts == [
        {"type": "text", "text": "Look:"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {
            "type": "file",
            "file": {"filename": "document.pdf", "file_data": "data:application/pdf;base64,JVBER"},
        },
        {"type": "text", "text": "notes\n\na b"},
    ]


def tool_turns(result: dict[str, Any], *extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Two cities.", "signature": "anygate.v1.sig"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_02", "name": "get_weather", "input": {"city": "Rome"}},
            ],
        },
        {"role": "user", "content": [result, *extra]},
    ]


def test_tool_use_and_tool_results_in_order() -> None:
    messages = tool_turns(
        {"type": "tool_result", "tool_use_id": "toolu_01", "content": [{"type": "text", "text": "18C"}]},
        {"type": "tool_result", "tool_use_id": "toolu_02", "content": "boom", "is_error": True},
        {"type": "text", "text": "Summarise."},
    )
    out = body_of(req(messages=messages, tools=[WEATHER]))["messages"]
    assert out[1] == {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [
            {
                "id": "toolu_01",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            },
            {
                "id": "toolu_02",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
            },
        ],
    }
    assert out[2:] == [
        {"role": "tool", "tool_call_id": "toolu_01", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_02", "content": "Error: boom"},
        {"role": "user", "content": "Summarise."},
    ]


def test_images_in_tool_results_follow_in_a_user_message() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAA"}}
    messages = tool_turns(
        {
            "type": "tool_result",
            "tool_use_id": "toolu_01",
            "content": [{"type": "text", "text": "shot"}, image],
        },
        {"type": "tool_result", "tool_use_id": "toolu_02", "content": ""},
    )
    out = body_of(req(messages=messages, tools=[WEATHER]))["messages"]
    assert out[2] == {"role": "tool", "tool_call_id": "toolu_01", "content": "shot"}
    assert out[3] == {"role": "tool", "tool_call_id": "toolu_02", "content": ""}
    assert out[4] == {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAA"}}],
    }


def test_thinking_goes_back_only_where_the_preset_wants_it() -> None:
    messages = tool_turns({"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C"})
    openai = body_of(req(messages=messages, tools=[WEATHER]))["messages"][1]
    assert "reasoning_content" not in openai
    deepseek = body_of(
        req(messages=messages, tools=[WEATHER]), provider="deepseek", model="deepseek-reasoner"
    )
    assert deepseek["messages"][1]["reasoning_content"] == "Two cities."


def test_consecutive_same_role_messages_are_joined() -> None:
    messages = [
        {"role": "user", "content": "one"},
        {"role": "user", "content": [{"type": "text", "text": "two"}]},
        {"role": "assistant", "content": "a"},
        {"role": "assistant", "content": [{"type": "text", "text": "b"}]},
        {"role": "user", "content": []},
    ]
    out = body_of(req(messages=messages))["messages"]
    assert [m["role"] for m in out] == ["user", "assistant", "user"]
    assert out[0]["content"] == [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]
    assert out[1]["content"] == "a\n\nb"
    assert out[2]["content"] == ""


def test_system_entries_inside_messages_join_the_user_turn_where_they_stand() -> None:
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "say hi"}]},
        {
            "role": "system",
            "content": [{"type": "text", "text": "# Environment", "cache_control": {"type": "ephemeral"}}],
        },
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": "thanks"},
        {"role": "system", "content": "deferred tools: none"},
    ]
    out = body_of(req(system="Be brief.", messages=messages))["messages"]
    assert [m["role"] for m in out] == ["system", "user", "assistant", "user"]
    assert out[1]["content"] == [
        {"type": "text", "text": "say hi"},
        {"type": "text", "text": "# Environment"},
    ]
    assert out[3]["content"] == [
        {"type": "text", "text": "thanks"},
        {"type": "text", "text": "deferred tools: none"},
    ]


def test_tools_and_server_tools() -> None:
    tools = [
        {**WEATHER, "strict": True, "cache_control": {"type": "ephemeral"}},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
        {"type": "bash_20250124", "name": "bash"},
    ]
    body = body_of(req(tools=tools))
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER["input_schema"],
                "description": "Weather in a city",
                "strict": True,
            },
        }
    ]
    only_server = body_of(req(tools=tools[1:], tool_choice={"type": "any"}))
    assert "tools" not in only_server and "tool_choice" not in only_server


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        (
            {"type": "tool", "name": "get_weather"},
            {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        ),
        (
            {"type": "auto", "disable_parallel_tool_use": True},
            {"tool_choice": "auto", "parallel_tool_calls": False},
        ),
        ({"type": "any", "disable_parallel_tool_use": False}, {"tool_choice": "required"}),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: dict[str, Any]) -> None:
    body = body_of(req(tools=[WEATHER], tool_choice=choice))
    assert {k: body[k] for k in ("tool_choice", "parallel_tool_calls") if k in body} == expected


def test_long_and_odd_tool_names_are_shortened_and_mapped_back() -> None:
    long_name = "mcp__some_server_with_a_long_name__" + "do_something_very_specific" * 3
    tools = [{**WEATHER, "name": long_name}, {**WEATHER, "name": "dotted.name"}, WEATHER]
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": long_name, "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]},
    ]
    body, _, call = build(
        req(tools=tools, messages=messages, tool_choice={"type": "tool", "name": long_name})
    )
    assert_valid_chat_request(body)
    wire = [t["function"]["name"] for t in body["tools"]]
    assert wire[2] == "get_weather"
    assert len(wire[0]) == 64 and wire[0] == wire_tool_name(long_name)
    assert wire[1].startswith("dotted_name_")
    assert body["messages"][1]["tool_calls"][0]["function"]["name"] == wire[0]
    assert body["tool_choice"]["function"]["name"] == wire[0]
    assert call.tool_names == {
        wire[0]: long_name,
        wire[1]: "dotted.name",
        "get_weather": "get_weather",
    }
    again, _, _ = build(req(tools=tools))
    assert [t["function"]["name"] for t in again["tools"]] == wire  # deterministic


def test_tool_name_collisions_stay_distinct() -> None:
    rewritten = wire_tool_name("a.b")
    mapping = tool_name_map([rewritten, "a.b"])
    assert mapping[rewritten] == rewritten and mapping["a.b"] != rewritten


def test_parameters() -> None:
    body = body_of(
        req(
            stop_sequences=["\n\nHuman:", "END"],
            temperature=0.3,
            top_p=0.9,
            top_k=40,
            metadata={"user_id": "user-123"},
        )
    )
    assert body["stop"] == ["\n\nHuman:", "END"]
    assert (body["temperature"], body["top_p"], body["user"]) == (0.3, 0.9, "user-123")
    assert "top_k" not in body
    vllm = body_of(req(top_k=40), provider="hosted_vllm", model="qwen", api_base="http://vllm:8000/v1")
    assert vllm["top_k"] == 40 and vllm["max_tokens"] == 256 and "max_completion_tokens" not in vllm
    many = body_of(req(stop_sequences=["a", "b", "c", "d", "e"]))
    assert many["stop"] == ["a", "b", "c", "d"]


def test_stream_asks_for_usage() -> None:
    body = body_of(req(stream=True), stream=True)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    mistral = body_of(
        req(stream=True, metadata={"user_id": "u"}), provider="mistral", model="mistral-large", stream=True
    )
    assert "stream_options" not in mistral and "user" not in mistral


@pytest.mark.parametrize(
    ("budget", "effort"),
    [(1024, "low"), (4095, "low"), (4096, "medium"), (16383, "medium"), (16384, "high"), (64000, "high")],
)
def test_budget_thresholds(budget: int, effort: str) -> None:
    assert budget_to_effort(budget) == effort
    body = body_of(req(thinking={"type": "enabled", "budget_tokens": budget}), model="o3-mini")
    assert body["reasoning_effort"] == effort


def test_reasoning_effort_sources() -> None:
    assert body_of(req(thinking={"type": "adaptive"}), model="o4-mini")["reasoning_effort"] == "medium"
    assert body_of(req(thinking={"type": "disabled"}), model="gpt-5.1")["reasoning_effort"] == "none"
    assert "reasoning_effort" not in body_of(req(thinking={"type": "disabled"}), model="o3")
    explicit = req(thinking={"type": "enabled", "budget_tokens": 2000}, output_config={"effort": "high"})
    assert body_of(explicit, model="gpt-5")["reasoning_effort"] == "high"
    assert "reasoning_effort" not in body_of(req(thinking={"type": "adaptive"}), model="gpt-4o")
    groq = body_of(req(thinking={"type": "adaptive"}), provider="groq", model="qwen/qwen3-32b")
    assert groq["reasoning_effort"] == "medium"
    router = body_of(
        req(thinking={"type": "enabled", "budget_tokens": 20000}), provider="openrouter", model="x/y"
    )
    assert router["reasoning"] == {"effort": "high"} and "reasoning_effort" not in router
    deepseek_off = body_of(req(thinking={"type": "disabled"}), provider="deepseek", model="deepseek-chat")
    assert deepseek_off["thinking"] == {"type": "disabled"} and "reasoning_effort" not in deepseek_off


def test_structured_output() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    body = body_of(req(output_config={"format": {"type": "json_schema", "schema": schema}, "effort": "low"}))
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": schema},
    }


def test_anthropic_only_fields_are_dropped() -> None:
    body = body_of(
        req(
            context_management={"edits": [{"type": "clear_tool_uses_20250919"}]},
            container="container_1",
            service_tier="auto",
            inference_geo="us",
            speed="fast",
            cache_control={"type": "ephemeral"},
            mcp_servers=[{"type": "url", "url": "https://x"}],
            betas=["x"],
            some_future_field={"a": 1},
        )
    )
    assert set(body) == {"model", "messages", "max_completion_tokens"}


def test_mistral_tool_ids_are_nine_alphanumerics_and_consistent() -> None:
    messages = tool_turns({"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C"})
    out = body_of(req(messages=messages, tools=[WEATHER]), provider="mistral", model="mistral-large")[
        "messages"
    ]
    call_id = out[1]["tool_calls"][0]["id"]
    assert len(call_id) == 9 and call_id.isalnum() and call_id == alnum9_tool_id("toolu_01")
    assert out[2]["tool_call_id"] == call_id


# --- property: every valid Anthropic request translates to a valid Chat Completions request -----------

_text = st.text(min_size=0, max_size=20)
_name = st.from_regex(r"[a-zA-Z0-9_.:-]{1,90}", fullmatch=True)
_image = st.fixed_dictionaries(
    {
        "type": st.just("image"),
        "source": st.fixed_dictionaries(
            {"type": st.just("base64"), "media_type": st.just("image/png"), "data": st.just("AAAA")}
        ),
    }
)
_doc = st.fixed_dictionaries(
    {
        "type": st.just("document"),
        "source": st.fixed_dictionaries(
            {"type": st.just("text"), "media_type": st.just("text/plain"), "data": _text}
        ),
    }
)
_text_block = st.fixed_dictionaries({"type": st.just("text"), "text": _text})
_tool_result = st.fixed_dictionaries(
    {
        "type": st.just("tool_result"),
        "tool_use_id": st.from_regex(r"toolu_[a-z0-9]{1,6}", fullmatch=True),
        "content": st.one_of(_text, st.lists(st.one_of(_text_block, _image), max_size=3)),
        "is_error": st.booleans(),
    }
)
_user_content = st.one_of(_text, st.lists(st.one_of(_text_block, _image, _doc, _tool_result), max_size=4))
# Integers stay within 64 bits: both entry points (the proxy's JSON parser and the SDK's body
# normalisation) turn wider ones into floats before a translator sees them.
_json_int = st.integers(-(2**63), 2**64 - 1)
_tool_use = st.builds(
    lambda i, name, value: {"type": "tool_use", "id": f"toolu_{i}", "name": name, "input": {"v": value}},
    st.integers(0, 99),
    _name,
    st.one_of(_json_int, _text, st.none()),
)
_thinking = st.fixed_dictionaries(
    {"type": st.just("thinking"), "thinking": _text, "signature": st.just("anygate.v1.x")}
)
_assistant_content = st.one_of(_text, st.lists(st.one_of(_text_block, _tool_use, _thinking), max_size=4))
_message = st.one_of(
    st.fixed_dictionaries({"role": st.just("user"), "content": _user_content}),
    st.fixed_dictionaries({"role": st.just("assistant"), "content": _assistant_content}),
)
_tool = st.builds(
    lambda name, desc: {"name": name, "description": desc, "input_schema": {"type": "object"}}, _name, _text
)
_optional = {
    "system": st.one_of(_text, st.lists(_text_block, max_size=3)),
    "tools": st.lists(_tool, max_size=3),
    "tool_choice": st.one_of(
        st.fixed_dictionaries(
            {"type": st.sampled_from(["auto", "any", "none"]), "disable_parallel_tool_use": st.booleans()}
        ),
        st.builds(lambda n: {"type": "tool", "name": n}, _name),
    ),
    "stop_sequences": st.lists(st.text(min_size=1, max_size=5), max_size=6),
    "temperature": st.floats(0, 1),
    "top_p": st.floats(0, 1),
    "top_k": st.integers(1, 100),
    "metadata": st.fixed_dictionaries({"user_id": _text}),
    "thinking": st.one_of(
        st.builds(lambda b: {"type": "enabled", "budget_tokens": b}, st.integers(1024, 64000)),
        st.just({"type": "adaptive"}),
        st.just({"type": "disabled"}),
    ),
    "output_config": st.fixed_dictionaries({"effort": st.sampled_from(["low", "medium", "high", "max"])}),
    "context_management": st.just({"edits": []}),
}
_requests = st.fixed_dictionaries(
    {
        "model": st.just("m"),
        "max_tokens": st.integers(1, 64000),
        "messages": st.lists(_message, min_size=1, max_size=5),
    },
    optional=_optional,
)
_targets = st.sampled_from(
    [
        ("openai", "gpt-4o"),
        ("openai", "o3"),
        ("deepseek", "deepseek-reasoner"),
        ("mistral", "m"),
        ("hosted_vllm", "q"),
    ]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=_requests, target=_targets, stream=st.booleans())
def test_random_requests_translate_to_valid_chat_requests(
    request: dict[str, Any], target: tuple[str, str], stream: bool
) -> None:
    provider, model = target
    body, upstream, _ = build(request, provider=provider, model=model, stream=stream, api_base="http://h/v1")
    assert_valid_chat_request(body)
    assert body["model"] == model
    for message in body["messages"]:
        if message["role"] == "tool":
            assert isinstance(message["content"], str)
    assert upstream.url == "http://h/v1/chat/completions"
