"""The built-in mock model through the proxy, driven by the official anthropic SDK."""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import pytest

from tests.conftest import MASTER_KEY, sdk_client
from tests.fakes.gateway_server import GatewayServer

CONFIG = f"""
model_list:
  - model_name: anthropic-claude
    litellm_params: {{model: mock/claude}}
general_settings:
  master_key: {MASTER_KEY}
"""
JOKE_REQUEST = [{"role": "user", "content": "Hello, can you tell me a short joke?"}]
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"],
    },
}


@pytest.fixture
def client(serve: Callable[[str], GatewayServer]) -> anthropic.Anthropic:
    return sdk_client(serve(CONFIG))


def test_answers_the_readme_example(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model="anthropic-claude", max_tokens=100, messages=JOKE_REQUEST)
    assert message.type == "message" and message.role == "assistant"
    assert message.model == "anthropic-claude"
    assert message.id.startswith("msg_")
    assert message.stop_reason == "end_turn"
    assert message.content[0].type == "text" and "atoms" in message.content[0].text
    assert message.usage.input_tokens > 5 and message.usage.output_tokens > 5


def test_streaming_gives_the_same_message(client: anthropic.Anthropic) -> None:
    plain = client.messages.create(model="anthropic-claude", max_tokens=100, messages=JOKE_REQUEST)
    with client.messages.stream(model="anthropic-claude", max_tokens=100, messages=JOKE_REQUEST) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(texts) > 3
    assert "".join(texts) == final.content[0].text == plain.content[0].text  # type: ignore[union-attr]
    assert final.usage.output_tokens == plain.usage.output_tokens
    assert final.stop_reason == "end_turn"


def test_tool_turn_then_answer_to_the_tool_result(client: anthropic.Anthropic) -> None:
    messages: list[anthropic.types.MessageParam] = [{"role": "user", "content": "Use get_weather for Paris"}]
    first = client.messages.create(
        model="anthropic-claude", max_tokens=200, tools=[WEATHER_TOOL], messages=messages
    )
    assert first.stop_reason == "tool_use"
    call = first.content[-1]
    assert call.type == "tool_use" and call.name == "get_weather"
    assert call.input == {"city": "example city", "unit": "celsius"}
    messages += [
        {"role": "assistant", "content": first.content},  # type: ignore[list-item]
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18 degrees"}],
        },
    ]
    second = client.messages.create(
        model="anthropic-claude", max_tokens=200, tools=[WEATHER_TOOL], messages=messages
    )
    assert second.stop_reason == "end_turn"
    assert "get_weather returned: 18 degrees" in second.content[0].text  # type: ignore[union-attr]


def test_no_tool_call_without_the_trigger(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model="anthropic-claude", max_tokens=100, tools=[WEATHER_TOOL], messages=JOKE_REQUEST
    )
    assert message.stop_reason == "end_turn"


def test_max_tokens_and_stop_sequences_are_honoured(client: anthropic.Anthropic) -> None:
    short = client.messages.create(model="anthropic-claude", max_tokens=3, messages=JOKE_REQUEST)
    assert short.stop_reason == "max_tokens"
    assert short.usage.output_tokens <= 3
    stopped = client.messages.create(
        model="anthropic-claude", max_tokens=100, messages=JOKE_REQUEST, stop_sequences=["atoms"]
    )
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "atoms"
    assert stopped.content[0].text == "Why don't scientists trust "  # type: ignore[union-attr]


def test_count_tokens_is_honest(client: anthropic.Anthropic) -> None:
    small = client.messages.count_tokens(model="anthropic-claude", messages=JOKE_REQUEST)
    big = client.messages.count_tokens(
        model="anthropic-claude", messages=[{"role": "user", "content": "word " * 1000}], tools=[WEATHER_TOOL]
    )
    assert 5 < small.input_tokens < big.input_tokens
    assert big.input_tokens > 1000


def test_thinking_when_enabled(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model="anthropic-claude",
        max_tokens=200,
        messages=JOKE_REQUEST,
        thinking={"type": "enabled", "budget_tokens": 1024},
    ) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].signature.startswith("anygate.v1.")  # type: ignore[union-attr]


def test_lists_models(serve: Callable[[str], GatewayServer]) -> None:
    client = sdk_client(serve(CONFIG))
    models = client.models.list()
    assert [m.id for m in models.data] == ["anthropic-claude"]
    assert models.first_id == models.last_id == "anthropic-claude"
    assert models.data[0].type == "model"
