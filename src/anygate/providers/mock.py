"""The built-in mock model (``mock/<anything>``): deterministic answers with no upstream at all.

It backs the quickstart, the examples and many tests, so it behaves like a real model in the ways that
matter to a client: realistic usage, ``max_tokens`` and ``stop_sequences`` honoured, thinking when asked,
and a tool turn.

It answers the last turn of the conversation, skipping ``system`` entries inside ``messages`` (Claude
Code ends its messages with one) and, in a user turn, Claude Code's ``<system-reminder>`` text blocks,
which are context rather than what the user said.

Tool trigger: when the request has tools and either ``tool_choice`` forces one (``any`` or ``tool``) or
the last user turn mentions a tool by its exact name, the answer is a ``tool_use`` block for that tool
whose input fits the tool's ``input_schema``. A user turn carrying ``tool_result`` blocks is answered with
text that reports the results. With ``output_config.format`` (a JSON schema) the text is a JSON value
valid against that schema, so structured-output helpers (``messages.parse``) work on the mock.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, Final

import orjson

from anygate.deployment import Deployment
from anygate.hooks import Usage
from anygate.providers.base import CallContext, LocalProvider
from anygate.providers.blocks import BlockStream
from anygate.tokens import estimate_request_tokens, estimate_text_tokens

JOKE: Final = "Why don't scientists trust atoms? Because they make up everything!"
_WORDS: Final = re.compile(r"\S+\s*")


SYSTEM_REMINDER: Final = "<system-reminder>"
"""How Claude Code opens the context blocks it adds to a user turn."""


def _user_text(message: dict[str, Any]) -> str:
    """What the user wrote in a turn: its text blocks, without Claude Code's system reminders."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return " ".join(
        text
        for block in content
        if isinstance(block, dict)
        and block.get("type") == "text"
        and not (text := str(block.get("text", ""))).lstrip().startswith(SYSTEM_REMINDER)
    )


def last_turn(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The turn to answer: the last message that is not a ``system`` entry."""
    return next((m for m in reversed(messages) if m.get("role") != "system"), messages[-1])


def named_tool(tools: list[dict[str, Any]], text: str) -> dict[str, Any] | None:
    """The first of ``tools`` whose name ``text`` mentions as a whole word, in one pass over the text.

    A name made of word characters is mentioned exactly when it equals a maximal run of word characters,
    so one set of the text's words answers for every such tool.
    """
    text = text[:MAX_TRIGGER_TEXT]
    words = set(_WORD_RUN.findall(text))
    irregular = 0
    for tool in tools:
        name = str(tool["name"])
        if _WORD_RUN.fullmatch(name):
            if name in words:
                return tool
        elif name and irregular < MAX_IRREGULAR_NAMES:
            irregular += 1
            if re.search(rf"\b{re.escape(name)}\b", text):
                return tool
    return None


def output_schema(request: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema of ``output_config.format`` (structured outputs), when the request has one."""
    config = request.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    schema = fmt.get("schema") if isinstance(fmt, dict) and fmt.get("type") == "json_schema" else None
    return schema if isinstance(schema, dict) else None


MAX_SCHEMA_DEPTH: Final = 32
"""Nesting beyond this gets a null: schemas come from clients and may nest without bound."""
MAX_EXAMPLE_ITEMS: Final = 16
"""An example array holds at most this many items, whatever ``minItems`` asks (it may ask for billions)."""


def _finite_number(value: Any, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return default
    return float(value)


STRING_FORMATS: Final = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00Z",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
}
"""Example strings for the ``format`` values that typed clients (pydantic) check."""


def example_for_schema(
    schema: Any, name: str = "value", depth: int = 0, root: dict[str, Any] | None = None
) -> Any:
    """A value that satisfies a (simple) JSON schema: required properties, enums, consts, types, local
    ``$ref`` s (``#/$defs/...``, as pydantic writes nested models) and common string formats.

    The schema is whatever a client sent, so every keyword is read defensively: a malformed schema gets
    a plausible value, never an exception.
    """
    if not isinstance(schema, dict) or depth > MAX_SCHEMA_DEPTH:
        return name if depth <= MAX_SCHEMA_DEPTH else None
    if root is None:
        root = schema
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return example_for_schema(_resolve_ref(root, ref), name, depth + 1, root)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return example_for_schema(options[0], name, depth + 1, root)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            properties = {}
        required = schema.get("required")
        if not isinstance(required, list):
            required = list(properties)[:1]
        return {
            key: example_for_schema(properties.get(key, {}), key, depth + 1, root)
            for key in required
            if isinstance(key, str)
        }
    if kind == "array":
        count = int(min(max(_finite_number(schema.get("minItems"), 1), 1), MAX_EXAMPLE_ITEMS))
        return [example_for_schema(schema.get("items", {}), name, depth + 1, root)] * count
    if kind == "integer":
        return math.ceil(_finite_number(schema.get("minimum"), 1))
    if kind == "number":
        return _finite_number(schema.get("minimum"), 1.0)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    known = STRING_FORMATS.get(str(schema.get("format")))
    return known if known is not None else f"example {name}"


def _resolve_ref(root: dict[str, Any], ref: str) -> Any:
    """The schema a local ``$ref`` (``#/a/b``) points to in ``root``; None when it points nowhere."""
    if not ref.startswith("#"):
        return None
    node: Any = root
    for part in ref[1:].split("/"):
        if not part:
            continue
        if not isinstance(node, dict):
            return None
        node = node.get(part.replace("~1", "/").replace("~0", "~"))
    return node


class MockProvider(LocalProvider):
    """Answers every request locally and deterministically."""

    name = "mock"
    api_key_env: Final = ()

    def count_tokens_locally(self, deployment: Deployment, request: dict[str, Any]) -> int:
        return estimate_request_tokens(request)

    def answer(
        self, deployment: Deployment, request: dict[str, Any], ctx: CallContext
    ) -> list[dict[str, Any]]:
        stream = BlockStream(
            message_id=ctx.message_id,
            model=ctx.requested_model,
            sign_thinking=ctx.signer.sign,
        )
        input_tokens = estimate_request_tokens(request)
        stream.start(Usage(input_tokens=input_tokens, output_tokens=1))
        budget = int(request["max_tokens"])
        last = last_turn(request["messages"])
        tool = self._tool_to_call(request, last)
        text = self._reply(request, last) if tool is None else ""
        schema = output_schema(request) if tool is None else None
        if schema is not None:
            text = orjson.dumps(example_for_schema(schema)).decode()
        used = 0
        thinking = request.get("thinking") or {}
        if thinking.get("type") in ("enabled", "adaptive"):
            thought = f"The user wrote: {_user_text(last)[:200]!r}. I will answer directly."
            used += self._emit_words(stream.thinking, thought, budget)[0]
        stop_reason, stop_sequence = "end_turn", None
        if tool is not None:
            arguments = orjson.dumps(example_for_schema(tool.get("input_schema", {}))).decode()
            tool_id = "toolu_" + ctx.request_id.removeprefix("req_")
            stream.tool_call(0, tool_id=tool_id, name=str(tool["name"]), arguments=arguments)
            used += estimate_text_tokens(arguments) + 8
            stop_reason = "tool_use"
        else:
            text, stop_sequence = self._apply_stop_sequences(text, request.get("stop_sequences") or [])
            if stop_sequence is not None:
                stop_reason = "stop_sequence"
            emitted, truncated = self._emit_words(stream.text, text, budget - used)
            if truncated:
                stop_reason, stop_sequence = "max_tokens", None
            used += emitted
        stream.finish(
            stop_reason, stop_sequence, Usage(input_tokens=input_tokens, output_tokens=max(used, 1))
        )
        return stream.drain()

    @staticmethod
    def _emit_words(sink: Callable[[str], None], text: str, budget: int) -> tuple[int, bool]:
        """Feed ``text`` word by word while the token budget lasts.

        Returns the tokens used and whether the budget cut the text short.
        """
        used = 0
        for word in _WORDS.findall(text):
            cost = estimate_text_tokens(word)
            if used + cost > budget:
                return used, True
            sink(word)
            used += cost
        return used, False

    @staticmethod
    def _apply_stop_sequences(text: str, stop_sequences: list[str]) -> tuple[str, str | None]:
        cut, matched = len(text), None
        for sequence in stop_sequences:
            position = text.find(sequence) if sequence else -1
            if 0 <= position < cut:
                cut, matched = position, sequence
        return text[:cut], matched

    @staticmethod
    def _tool_to_call(request: dict[str, Any], last: dict[str, Any]) -> dict[str, Any] | None:
        tools = [t for t in request.get("tools") or [] if isinstance(t, dict) and "input_schema" in t]
        if not tools or last.get("role") != "user" or _has_tool_results(last):
            return None
        choice = request.get("tool_choice") or {}
        if choice.get("type") == "none":
            return None
        if choice.get("type") == "tool":
            return next((t for t in tools if t.get("name") == choice.get("name")), None)
        if choice.get("type") == "any":
            return tools[0]
        return named_tool(tools, _user_text(last))

    @staticmethod
    def _reply(request: dict[str, Any], last: dict[str, Any]) -> str:
        if _has_tool_results(last):
            return _describe_tool_results(request, last)
        text = _user_text(last).strip()
        if "joke" in text.lower():
            return JOKE
        if not text:
            return "Hello! I am anygate's mock model. How can I help?"
        return f'You said: "{text[:400]}". This is a deterministic answer from anygate\'s mock model.'


MAX_TRIGGER_TEXT: Final = 100_000
"""Characters of the last user message searched for tool names."""
MAX_IRREGULAR_NAMES: Final = 64
"""Tool names with characters other than letters, digits and ``_`` are searched one by one (each a
scan of the text); only this many are, so 20,000 tools cost one pass, not 20,000."""
_WORD_RUN: Final = re.compile(r"\w+")


def _has_tool_results(message: dict[str, Any]) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(
        isinstance(block, dict) and block.get("type") == "tool_result" for block in content
    )


def _describe_tool_results(request: dict[str, Any], last: dict[str, Any]) -> str:
    names: dict[str, str] = {}
    for message in request["messages"]:
        content = message.get("content")
        if message.get("role") == "assistant" and isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    names[str(block.get("id"))] = str(block.get("name"))
    parts = []
    for block in last["content"]:
        if not (isinstance(block, dict) and block.get("type") == "tool_result"):
            continue
        name = names.get(str(block.get("tool_use_id")), "the tool")
        content = block.get("content")
        if isinstance(content, list):
            content = " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
        verb = "failed with" if block.get("is_error") else "returned"
        parts.append(f"{name} {verb}: {str(content or '')[:400]}")
    return "The tool results are in. " + " ".join(parts)
