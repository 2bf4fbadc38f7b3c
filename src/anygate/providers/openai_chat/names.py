"""Tool names and tool ids that both sides accept, made deterministically so they survive round trips.

Chat Completions wants function names matching ``^[a-zA-Z0-9_-]{1,64}$``; Anthropic allows longer names
(MCP tools easily pass 64 characters). Anthropic wants tool_use ids matching ``^[a-zA-Z0-9_-]+$``;
upstreams send all sorts. Mistral wants tool call ids of exactly nine letters and digits. Every rewrite
here is a pure function of its input, so the same conversation always maps the same way, and a name
that needed no change is never touched.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

MAX_FUNCTION_NAME: Final = 64
_VALID_NAME: Final = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_INVALID_NAME_CHARS: Final = re.compile(r"[^a-zA-Z0-9_-]")
_VALID_TOOL_ID: Final = re.compile(r"^[a-zA-Z0-9_-]+$")
_INVALID_ID_CHARS: Final = re.compile(r"[^a-zA-Z0-9_-]")
_ALNUM: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def wire_tool_name(name: str) -> str:
    """The function name sent upstream for an Anthropic tool name (unchanged when already valid)."""
    if _VALID_NAME.match(name):
        return name
    cleaned = _INVALID_NAME_CHARS.sub("_", name) or "tool"
    suffix = "_" + _digest(name)[:8]
    return cleaned[: MAX_FUNCTION_NAME - len(suffix)] + suffix


def tool_name_map(names: list[str]) -> dict[str, str]:
    """Anthropic name → wire name for every name in ``names`` (distinct names stay distinct)."""
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for name in dict.fromkeys(names):
        wire = wire_tool_name(name)
        if wire in taken:  # a rewritten name collides with a name that was already valid
            wire = wire[: MAX_FUNCTION_NAME - 9] + "_" + _digest("collision:" + name)[:8]
        mapping[name] = wire
        taken.add(wire)
    return mapping


def anthropic_tool_id(tool_id: str | None) -> str | None:
    """A tool_use id matching ``^[a-zA-Z0-9_-]+$`` for an upstream tool call id (None stays None, so the
    block state machine assigns one)."""
    if not tool_id:
        return None
    if _VALID_TOOL_ID.match(tool_id):
        return tool_id
    return _INVALID_ID_CHARS.sub("_", tool_id) + "_" + _digest(tool_id)[:8]


def alnum9_tool_id(tool_id: str) -> str:
    """A nine-character letters-and-digits id (Mistral's rule) derived from any id."""
    if len(tool_id) == 9 and tool_id.isascii() and tool_id.isalnum():
        return tool_id
    number = int(_digest(tool_id), 16)
    chars = []
    for _ in range(9):
        number, rest = divmod(number, len(_ALNUM))
        chars.append(_ALNUM[rest])
    return "".join(chars)
