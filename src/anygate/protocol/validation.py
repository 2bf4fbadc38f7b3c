"""Validation of Messages requests before any upstream is called.

Checks walk the parsed JSON once and build nothing: the body stays the dict the client sent, so fields
the gateway does not know (new Anthropic features, betas) pass through untouched. Errors name the field
path the way Anthropic does (``messages.2.content.0.type``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeGuard

from anygate.protocol.errors import GatewayError, invalid_request

_ROLES: Final = frozenset({"user", "assistant", "system"})
"""Message roles accepted. ``system`` inside ``messages`` is not in the public docs, but Claude Code sends it
to newer models and Anthropic accepts it, so rejecting it would break real clients."""
_TOOL_CHOICE_TYPES: Final = frozenset({"auto", "any", "tool", "none"})
_THINKING_TYPES: Final = frozenset({"enabled", "disabled", "adaptive"})


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_positive_int(value: object) -> bool:
    return _is_int(value) and value >= 1


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_one_of(value: object, choices: frozenset[str]) -> bool:
    """Membership that cannot raise: a client may send a list or an object where a name belongs."""
    return isinstance(value, str) and value in choices


def _expect(condition: bool, path: str, what: str) -> None:
    if not condition:
        raise invalid_request(f"{path}: {what}")


def _check_optional(body: dict[str, Any], key: str, check: Callable[[object], bool], what: str) -> None:
    value = body.get(key)
    if value is not None:
        _expect(check(value), key, what)


def validate_messages_request(body: object) -> dict[str, Any]:
    """Validate a ``POST /v1/messages`` body and return it (as the same dict)."""
    request = _validate_common(body)
    max_tokens = request.get("max_tokens")
    _expect(max_tokens is not None, "max_tokens", "Field required")
    _expect(_is_positive_int(max_tokens), "max_tokens", "must be an integer greater than or equal to 1")
    _check_optional(request, "stream", lambda v: isinstance(v, bool), "must be a boolean")
    _check_optional(request, "temperature", _is_number, "must be a number")
    _check_optional(request, "top_p", _is_number, "must be a number")
    _check_optional(request, "top_k", _is_int, "must be an integer")
    stop_sequences = request.get("stop_sequences")
    if stop_sequences is not None:
        _expect(isinstance(stop_sequences, list), "stop_sequences", "must be a list of strings")
        for i, sequence in enumerate(stop_sequences):
            _expect(isinstance(sequence, str), f"stop_sequences.{i}", "must be a string")
    metadata = request.get("metadata")
    if metadata is not None:
        _expect(isinstance(metadata, dict), "metadata", "must be an object")
        user_id = metadata.get("user_id")
        _expect(user_id is None or isinstance(user_id, str), "metadata.user_id", "must be a string")
    return request


def validate_count_tokens_request(body: object) -> dict[str, Any]:
    """Validate a ``POST /v1/messages/count_tokens`` body (no ``max_tokens``) and return it."""
    return _validate_common(body)


def _validate_common(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid_request("request body must be a JSON object")
    model = body.get("model")
    _expect(model is not None, "model", "Field required")
    _expect(isinstance(model, str) and model != "", "model", "must be a non-empty string")
    _validate_messages(body.get("messages"))
    system = body.get("system")
    if system is not None:
        _validate_system(system)
    tools = body.get("tools")
    if tools is not None:
        _validate_tools(tools)
    tool_choice = body.get("tool_choice")
    if tool_choice is not None:
        _validate_tool_choice(tool_choice)
    thinking = body.get("thinking")
    if thinking is not None:
        _validate_thinking(thinking)
    return body


def _validate_messages(messages: object) -> None:
    _expect(messages is not None, "messages", "Field required")
    _expect(isinstance(messages, list), "messages", "must be a list")
    assert isinstance(messages, list)
    _expect(len(messages) > 0, "messages", "at least one message is required")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _fail(("messages", i), "must be an object")
        if not _is_one_of(message.get("role"), _ROLES):
            raise _fail(("messages", i, "role"), "must be 'user' or 'assistant' (or 'system')")
        content = message.get("content")
        if isinstance(content, str):
            continue
        if content is None:
            raise _fail(("messages", i, "content"), "Field required")
        if not isinstance(content, list):
            raise _fail(("messages", i, "content"), "must be a string or a list of content blocks")
        for j, block in enumerate(content):
            _validate_block(block, ("messages", i, "content", j))


Path = tuple[str | int, ...]
"""A field path, joined with dots only when it goes into an error message: a 90 KB request has
thousands of blocks, and formatting every path up front was a tenth of the validation's cost."""


def _fail(path: Path, what: str) -> GatewayError:
    return invalid_request(f"{'.'.join(str(part) for part in path)}: {what}")


def _validate_block(block: object, path: Path) -> None:
    if not isinstance(block, dict):
        raise _fail(path, "must be an object")
    block_type = block.get("type")
    if not isinstance(block_type, str):
        raise _fail((*path, "type"), "Field required (a string)")
    check = _BLOCK_CHECKS.get(block_type)
    if check is not None:
        check(block, path)


def _text_block(block: dict[str, Any], path: Path) -> None:
    if not isinstance(block.get("text"), str):
        raise _fail((*path, "text"), "must be a string")


def _source_block(block: dict[str, Any], path: Path) -> None:
    source = block.get("source")
    if not isinstance(source, dict):
        raise _fail((*path, "source"), "must be an object")
    if not isinstance(source.get("type"), str):
        raise _fail((*path, "source", "type"), "Field required (a string)")


_DOCUMENT_CONTENT_TYPES: Final = frozenset({"text", "image"})
"""What a document's ``content`` source holds (Anthropic's rule); never another document, which also
keeps every later walk over the content from recursing without bound."""


def _document_block(block: dict[str, Any], path: Path) -> None:
    _source_block(block, path)
    source = block["source"]
    if source["type"] != "content":
        return
    content = source.get("content")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _fail((*path, "source", "content"), "must be a string or a list of content blocks")
    for k, inner in enumerate(content):
        inner_path = (*path, "source", "content", k)
        if not (isinstance(inner, dict) and _is_one_of(inner.get("type"), _DOCUMENT_CONTENT_TYPES)):
            raise _fail((*inner_path, "type"), "a document's content holds only text and image blocks")
        _validate_block(inner, inner_path)


def _search_result_block(block: dict[str, Any], path: Path) -> None:
    content = block.get("content")
    if not isinstance(content, list):
        raise _fail((*path, "content"), "must be a list of text blocks")
    for k, inner in enumerate(content):
        if not (isinstance(inner, dict) and inner.get("type") == "text"):
            raise _fail((*path, "content", k, "type"), "must be 'text'")
        _text_block(inner, (*path, "content", k))
    for key in ("title", "source"):
        if not isinstance(block.get(key, ""), str):
            raise _fail((*path, key), "must be a string")


def _tool_use_block(block: dict[str, Any], path: Path) -> None:
    if not isinstance(block.get("id"), str):
        raise _fail((*path, "id"), "must be a string")
    if not isinstance(block.get("name"), str):
        raise _fail((*path, "name"), "must be a string")
    if not isinstance(block.get("input"), dict):
        raise _fail((*path, "input"), "must be an object")


def _tool_result_block(block: dict[str, Any], path: Path) -> None:
    if not isinstance(block.get("tool_use_id"), str):
        raise _fail((*path, "tool_use_id"), "must be a string")
    is_error = block.get("is_error")
    if not (is_error is None or isinstance(is_error, bool)):
        raise _fail((*path, "is_error"), "must be a boolean")
    content = block.get("content")
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _fail((*path, "content"), "must be a string or a list of content blocks")
    for k, inner in enumerate(content):
        # A tool_result holds text, images and documents, never another tool_result; refusing nesting
        # here also keeps every later walk over the content from recursing without bound.
        if isinstance(inner, dict) and inner.get("type") == "tool_result":
            raise _fail((*path, "content", k, "type"), "a tool_result cannot contain a tool_result")
        _validate_block(inner, (*path, "content", k))


def _server_tool_result_block(block: dict[str, Any], path: Path) -> None:
    if not isinstance(block.get("tool_use_id"), str):
        raise _fail((*path, "tool_use_id"), "must be a string")


def _thinking_block(block: dict[str, Any], path: Path) -> None:
    if not isinstance(block.get("thinking"), str):
        raise _fail((*path, "thinking"), "must be a string")


_BLOCK_CHECKS: Final[dict[str, Callable[[dict[str, Any], Path], None]]] = {
    "text": _text_block,
    "image": _source_block,
    "document": _document_block,
    "search_result": _search_result_block,
    "tool_use": _tool_use_block,
    "tool_result": _tool_result_block,
    "thinking": _thinking_block,
    "server_tool_use": _tool_use_block,
    "web_search_tool_result": _server_tool_result_block,
    "web_fetch_tool_result": _server_tool_result_block,
    "tool_search_tool_result": _server_tool_result_block,
}
"""Checks of the fields the gateway reads; other block types pass as they are."""


def _validate_system(system: object) -> None:
    if isinstance(system, str):
        return
    _expect(isinstance(system, list), "system", "must be a string or a list of text blocks")
    assert isinstance(system, list)
    for i, block in enumerate(system):
        if not isinstance(block, dict):
            raise _fail(("system", i), "must be an object")
        if block.get("type") != "text":
            raise _fail(("system", i, "type"), "must be 'text'")
        _text_block(block, ("system", i))


def _validate_tools(tools: object) -> None:
    _expect(isinstance(tools, list), "tools", "must be a list")
    assert isinstance(tools, list)
    names: set[str] = set()
    for i, tool in enumerate(tools):
        path = f"tools.{i}"
        _expect(isinstance(tool, dict), path, "must be an object")
        tool_type = tool.get("type")
        name = tool.get("name")
        _expect(isinstance(name, str), f"{path}.name", "Field required (a string)")
        _expect(name not in names, "tools", "Tool names must be unique.")
        names.add(name)
        if tool_type is None or tool_type == "custom":
            _expect(isinstance(tool.get("input_schema"), dict), f"{path}.input_schema", "must be an object")
            description = tool.get("description")
            _expect(
                description is None or isinstance(description, str), f"{path}.description", "must be a string"
            )
        else:
            _expect(isinstance(tool_type, str), f"{path}.type", "must be a string")


def _validate_tool_choice(tool_choice: object) -> None:
    _expect(isinstance(tool_choice, dict), "tool_choice", "must be an object")
    assert isinstance(tool_choice, dict)
    choice_type = tool_choice.get("type")
    _expect(
        _is_one_of(choice_type, _TOOL_CHOICE_TYPES),
        "tool_choice.type",
        "must be one of 'auto', 'any', 'tool', 'none'",
    )
    if choice_type == "tool":
        _expect(isinstance(tool_choice.get("name"), str), "tool_choice.name", "Field required (a string)")
    disable = tool_choice.get("disable_parallel_tool_use")
    _expect(
        disable is None or isinstance(disable, bool),
        "tool_choice.disable_parallel_tool_use",
        "must be a boolean",
    )


def _validate_thinking(thinking: object) -> None:
    _expect(isinstance(thinking, dict), "thinking", "must be an object")
    assert isinstance(thinking, dict)
    thinking_type = thinking.get("type")
    _expect(
        _is_one_of(thinking_type, _THINKING_TYPES),
        "thinking.type",
        "must be one of 'enabled', 'disabled', 'adaptive'",
    )
    if thinking_type == "enabled":
        budget = thinking.get("budget_tokens")
        _expect(_is_positive_int(budget), "thinking.budget_tokens", "must be a positive integer")
