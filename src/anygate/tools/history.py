"""A conversation holding server-tool blocks, rewritten as ordinary tool calls a non-Anthropic model reads.

On Anthropic's API a server tool's call and its result both sit in the assistant's message::

    assistant: [text, server_tool_use(id), web_search_tool_result(id), text]

Every other API knows only the client-tool shape, where a result comes back in the next user turn. So
each ``server_tool_use`` becomes a ``tool_use``, and each result block a ``tool_result`` in a user
message inserted right after it; the assistant's message goes on in a new assistant message::

    assistant: [text, tool_use(id)]   user: [tool_result(id)]   assistant: [text]

The text of a ``tool_result`` is the result block as the model should read it (``render``, from the
leaf module of each tool); the gateway keeps no memory between requests, so the block the client sends
back is all there is. ``tool_reference`` blocks inside a client's own ``tool_result`` (client-side tool
search) become text, since only Anthropic's API resolves them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

SERVER_RESULT_TYPES: Final = frozenset(
    {"web_search_tool_result", "web_fetch_tool_result", "tool_search_tool_result"}
)
"""Result blocks of the server tools the gateway runs."""
NO_RESULT: Final = "The tool did not run."

Render = Callable[[dict[str, Any]], tuple[str, bool]]
"""A result block → (the text the model reads, whether it reports an error)."""


def upstream_messages(messages: list[dict[str, Any]], render: Render) -> list[dict[str, Any]]:
    """``messages`` with server-tool calls and results as client-tool calls and results (see the
    module's docstring); messages without server blocks are kept as they are (the same objects).

    Every request that defers tools passes here (Claude Code's with MCP servers), so the walk is plain
    loops over validated dicts: no generator or ABC check per block.
    """
    out: list[dict[str, Any]] = []
    for message in messages:
        content = message.get("content")
        if content.__class__ is list:
            if message.get("role") == "assistant":
                for block in content:
                    if block.get("type") in _SPLIT_TYPES:
                        for part in _split(message, content, render):
                            _append(out, part)
                        break
                else:
                    _append(out, message)
                continue
            for block in content:
                if block.get("type") == "tool_result" and _holds_reference(block):
                    message = {**message, "content": [_without_references(b) for b in content]}
                    break
        _append(out, message)
    return out


_SPLIT_TYPES: Final = SERVER_RESULT_TYPES | {"server_tool_use"}


def _split(message: dict[str, Any], content: list[Any], render: Render) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    said: list[Any] = []
    results: list[dict[str, Any]] = []
    open_calls: list[str] = []

    def flush() -> None:
        nonlocal said, results, open_calls
        results.extend(_tool_result(call, NO_RESULT, True) for call in open_calls)
        if said:
            parts.append({**message, "content": said})
        if results:
            parts.append({"role": "user", "content": results})
        said, results, open_calls = [], [], []

    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "server_tool_use":
            if results:
                flush()
            call_id = str(block.get("id", ""))
            said.append(
                {
                    "type": "tool_use",
                    "id": call_id,
                    "name": block.get("name"),
                    "input": block.get("input") or {},
                }
            )
            open_calls.append(call_id)
        elif kind in SERVER_RESULT_TYPES:
            call_id = str(block.get("tool_use_id", ""))
            if call_id not in open_calls:
                continue  # a result without its call: nothing the model could match it to
            open_calls.remove(call_id)
            text, is_error = render(block)
            results.append(_tool_result(call_id, text, is_error))
        elif kind == "tool_use":  # a client tool called in the same turn: its result comes from the client
            if results:
                flush()
            said.append(block)
        else:
            if results or open_calls:
                flush()
            said.append(block)
    flush()
    return parts


def _tool_result(call_id: str, text: str, is_error: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id, "content": text}
    if is_error:
        result["is_error"] = True
    return result


def _append(out: list[dict[str, Any]], message: dict[str, Any]) -> None:
    """Add ``message``, merging it into the previous one when both are user turns (results inserted
    before a user's own message go first in one turn, as tool results must)."""
    if out and message.get("role") == "user" and out[-1].get("role") == "user":
        out[-1] = {**out[-1], "content": _blocks(out[-1]) + _blocks(message)}
    else:
        out.append(message)


def _blocks(message: dict[str, Any]) -> list[Any]:
    content = message.get("content")
    return list(content) if isinstance(content, list) else [{"type": "text", "text": str(content or "")}]


def _holds_reference(block: object) -> bool:
    if not isinstance(block, dict) or block.get("type") != "tool_result":
        return False
    content = block.get("content")
    return isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_reference" for b in content
    )


def _without_references(block: Any) -> Any:
    if not _holds_reference(block):
        return block
    content = [
        {"type": "text", "text": f"Tool loaded: {b.get('tool_name')}"}
        if isinstance(b, dict) and b.get("type") == "tool_reference"
        else b
        for b in block["content"]
    ]
    return {**block, "content": content}
