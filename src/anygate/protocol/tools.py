"""Facts about an Anthropic request's tools that every translator needs."""

from __future__ import annotations

from typing import Any, Final

DIRECT_CALLER: Final = {"type": "direct"}
"""The ``caller`` of a server tool the model called itself (the only kind the gateway runs)."""


def is_function_tool(tool: object) -> bool:
    """A client-defined tool (name + ``input_schema``), as opposed to an Anthropic server tool
    (``web_search_*``, ``bash_*``…) that only Anthropic runs."""
    return isinstance(tool, dict) and tool.get("type") in (None, "custom") and "input_schema" in tool


def request_tool_names(request: dict[str, Any]) -> list[str]:
    """Every tool name a request uses: its function tools, earlier ``tool_use`` blocks and a forced
    ``tool_choice`` (translators that rename tools need the whole set to keep names consistent)."""
    names = [str(t["name"]) for t in request.get("tools") or [] if is_function_tool(t)]
    for message in request.get("messages") or []:
        content = message.get("content")
        if isinstance(content, list):
            names.extend(
                str(b.get("name", "")) for b in content if isinstance(b, dict) and b.get("type") == "tool_use"
            )
    choice = request.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "tool":
        names.append(str(choice.get("name", "")))
    return names
