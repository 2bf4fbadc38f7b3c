"""The built-in mock model's tool inputs: they fit the tool's schema, and no schema a client can send
makes the mock fail (it reads client-written JSON schemas)."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import jsonschema
import pytest
from anthropic.types import Message

import anygate
from anygate.providers.mock import MAX_EXAMPLE_ITEMS, example_for_schema

FITTING_SCHEMAS: list[dict[str, Any]] = [
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    {
        "type": "object",
        "properties": {
            "count": {"type": "integer", "minimum": 3},
            "ratio": {"type": "number", "minimum": 0.5},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "mode": {"enum": ["fast", "slow"]},
            "flag": {"type": "boolean"},
            "nested": {"type": "object", "properties": {"x": {"const": 7}}, "required": ["x"]},
            "either": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            "maybe": {"type": ["null", "string"]},
        },
        "required": ["count", "ratio", "tags", "mode", "flag", "nested", "either", "maybe"],
    },
    {"type": "object", "properties": {}},
]

HOSTILE_SCHEMAS: list[Any] = [
    {"type": "array", "minItems": 10**12},
    {"type": "object", "properties": {"a": {"type": "array", "minItems": "many"}}, "required": ["a"]},
    {"type": "object", "properties": [1, 2]},
    {"type": "object", "required": 5},
    {"type": "object", "required": [["nested"]], "properties": {}},
    {"type": "object", "properties": {"n": {"type": "integer", "minimum": "low"}}, "required": ["n"]},
    {"type": "object", "properties": {"n": {"type": "number", "minimum": [1]}}, "required": ["n"]},
    {"anyOf": {"not": "a list"}},
    {"enum": {"not": "a list"}},
    {"type": {"weird": True}},
    {"type": ["object", {"x": 1}]},
    {"allOf": []},
]


def _deep_schema(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}, "required": ["a"]}
    return schema


@pytest.mark.parametrize("schema", FITTING_SCHEMAS)
def test_tool_input_fits_the_schema(schema: dict[str, Any]) -> None:
    message = anygate.anthropic.messages.create(
        model="mock/tools",
        max_tokens=200,
        tools=[{"name": "act", "input_schema": schema}],
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "go"}],
    )
    assert isinstance(message, Message) and message.stop_reason == "tool_use"
    call = message.content[-1]
    assert call.type == "tool_use"
    jsonschema.validate(call.input, schema)


@pytest.mark.parametrize("schema", [*HOSTILE_SCHEMAS, _deep_schema(100)])
def test_no_schema_makes_the_mock_fail(schema: Any) -> None:
    message = anygate.anthropic.messages.create(
        model="mock/tools",
        max_tokens=200,
        tools=[{"name": "act", "input_schema": schema}],
        tool_choice={"type": "tool", "name": "act"},
        messages=[{"role": "user", "content": "go"}],
    )
    assert message.stop_reason == "tool_use"


def test_schema_nested_beyond_what_json_writers_take_is_a_400() -> None:
    with pytest.raises(anthropic.BadRequestError, match="levels deep"):
        anygate.anthropic.messages.create(
            model="mock/tools",
            max_tokens=200,
            tools=[{"name": "act", "input_schema": _deep_schema(300)}],
            messages=[{"role": "user", "content": "go"}],
        )


def test_example_arrays_stay_small() -> None:
    assert len(example_for_schema({"type": "array", "minItems": 10**12})) == MAX_EXAMPLE_ITEMS
    assert example_for_schema({"enum": [None]}) is None


# --- the last user turn, Claude Code's shape, and structured outputs -----------------------------------

READ_TOOL = {
    "name": "Read",
    "input_schema": {
        "type": "object",
        "properties": {"file_path": {"type": "string"}},
        "required": ["file_path"],
    },
}


def test_the_mock_answers_the_last_user_turn_past_system_entries_and_reminders() -> None:
    """Claude Code's messages end with a ``system`` entry, and its user turns carry reminder blocks."""
    message = anygate.anthropic.messages.create(
        model="mock/demo",
        max_tokens=200,
        tools=[READ_TOOL, {"name": "Bash", "input_schema": {"type": "object"}}],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>Bash is available too</system-reminder>"},
                    {"type": "text", "text": "Use the Read tool on notes.txt"},
                ],
            },
            {"role": "system", "content": "environment: linux, cwd /tmp"},
        ],
    )
    assert message.stop_reason == "tool_use"
    block = message.content[0]
    assert block.type == "tool_use" and block.name == "Read" and set(block.input) == {"file_path"}


def test_the_mock_writes_json_that_fits_output_config_format() -> None:
    schema = {
        "type": "object",
        "properties": {
            "when": {"type": "string", "format": "date-time"},
            "owner": {"$ref": "#/$defs/Person"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["when", "owner", "tags"],
        "additionalProperties": False,
        "$defs": {
            "Person": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "email": {"type": "string", "format": "email"}},
                "required": ["name", "email"],
            }
        },
    }
    message = anygate.anthropic.messages.create(
        model="mock/demo",
        max_tokens=300,
        messages=[{"role": "user", "content": "Fill it in"}],
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )
    text = message.content[0].text  # type: ignore[union-attr]
    jsonschema.validate(json.loads(text), schema, format_checker=jsonschema.FormatChecker())
