"""A minimal MCP server on stdio with many tools, for Claude Code's tool search end to end.

It speaks just enough of the Model Context Protocol (JSON-RPC 2.0, one message per line) for Claude Code
to list and call its tools: ``initialize``, ``tools/list`` and ``tools/call``; notifications are read
and ignored. Hand-written rather than built on the ``mcp`` SDK, which would add a dependency tree to the
test extra for three methods.

It offers :data:`FILLER_TOOLS` look-alike tools plus ``weather_lookup``, the one a test makes the model
find. Calling ``weather_lookup`` appends the arguments to the file named by ``$MCP_CALLS_FILE`` (so a
test sees that the tool really ran, with which input) and answers with :data:`FORECAST`. Run it as
``python tests/e2e/mcp_stdio_server.py``; it exits when stdin closes.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Final

FILLER_TOOLS: Final = 50
SERVER_NAME: Final = "catalog"
"""The name the MCP config gives this server; Claude Code names its tools ``mcp__catalog__<tool>``."""
FOUND_TOOL: Final = "weather_lookup"
FORECAST: Final = "Forecast for {city}: sunny, 24 C (catalog-forecast-7f3a)"

_TOPICS: Final = (
    "invoice",
    "calendar",
    "ticket",
    "repository",
    "dashboard",
    "contact",
    "shipment",
    "playlist",
    "recipe",
    "budget",
)
_ACTIONS: Final = ("create", "archive", "export", "summarise", "rename")


def _filler(index: int) -> dict[str, Any]:
    topic = _TOPICS[index % len(_TOPICS)]
    action = _ACTIONS[index // len(_TOPICS) % len(_ACTIONS)]
    return {
        "name": f"{action}_{topic}_{index:02d}",
        "description": f"{action.capitalize()} a {topic} in the team workspace (variant {index}).",
        "inputSchema": {
            "type": "object",
            "properties": {"id": {"type": "string", "description": f"The {topic}'s id"}},
            "required": ["id"],
        },
    }


TOOLS: Final = [
    *(_filler(i) for i in range(FILLER_TOOLS)),
    {
        "name": FOUND_TOOL,
        "description": "Look up the weather forecast for a city: temperature and sky for the next day.",
        "inputSchema": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city's name"}},
            "required": ["city"],
        },
    },
]


def _answer(message: dict[str, Any]) -> dict[str, Any]:
    method = message.get("method")
    params = message.get("params") or {}
    if method == "initialize":
        result: dict[str, Any] = {
            "protocolVersion": params.get("protocolVersion", "2025-06-18"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": SERVER_NAME, "version": "1.0.0"},
        }
    elif method == "tools/list":
        result = {"tools": TOOLS}
    elif method == "tools/call" and params.get("name") == FOUND_TOOL:
        arguments = params.get("arguments") or {}
        calls_file = os.environ.get("MCP_CALLS_FILE")
        if calls_file:
            with open(calls_file, "a", encoding="utf-8") as file:
                file.write(json.dumps(arguments) + "\n")
        text = FORECAST.format(city=arguments.get("city", "?"))
        result = {"content": [{"type": "text", "text": text}], "isError": False}
    elif method == "tools/call":
        result = {"content": [{"type": "text", "text": "done"}], "isError": False}
    elif method == "ping":
        result = {}
    else:
        return {"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32601, "message": "no such method"}}
    return {"jsonrpc": "2.0", "id": message["id"], "result": result}


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        if "id" not in message or "method" not in message:
            continue  # a notification, or an answer to a request this server never makes
        sys.stdout.write(json.dumps(_answer(message)) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
