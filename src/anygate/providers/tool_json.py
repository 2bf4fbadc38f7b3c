"""Making tool-call arguments from an upstream into the JSON object Anthropic promises.

Upstream models emit tool arguments as free text; a tool_use ``input`` must be a JSON object. Streams
cannot take back what they already sent, so there are two tools: a suffix that completes a truncated
prefix (for a block whose fragments went out live) and a full repair (for arguments emitted whole).
"""

from __future__ import annotations

from typing import Final

import orjson

_CLOSERS: Final = {"{": "}", "[": "]"}


def _is_object(raw: str) -> bool:
    try:
        return isinstance(orjson.loads(raw), dict)
    except orjson.JSONDecodeError:
        return False


def completion_suffix(raw: str) -> str | None:
    """Text that, appended to ``raw``, makes it a JSON object; ``""`` when it already is one (or is
    empty, which means ``{}``), None when no suffix can (for example trailing garbage)."""
    if not raw.strip() or _is_object(raw):
        return ""
    stack: list[str] = []
    in_string = False
    escaped = False
    for char in raw:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in _CLOSERS:
            stack.append(_CLOSERS[char])
        elif char in "}]":
            if not stack or stack.pop() != char:
                return None
    suffix = ""
    if in_string:
        suffix += "\\" if escaped else ""
        suffix += '"'
    tail = (raw + suffix).rstrip()
    if tail.endswith(":"):
        suffix += " null"
    elif tail.endswith(","):
        return None
    suffix += "".join(reversed(stack))
    return suffix if _is_object(raw + suffix) else None


def repair_arguments(raw: str) -> str:
    """Arguments as a JSON object text, repaired where possible; never raises.

    Order of attempts: as is; completed by a suffix; with a trailing comma removed and completed; a
    non-object JSON value wrapped as ``{"value": …}``; otherwise the text kept as ``{"arguments": raw}``
    so that nothing the model produced is lost.
    """
    if not raw.strip():
        return "{}"
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        parsed = None
    else:
        if isinstance(parsed, dict):
            return raw
        return orjson.dumps({"value": parsed}).decode()
    for candidate in (raw, raw.rstrip().rstrip(",")):
        suffix = completion_suffix(candidate)
        if suffix is not None:
            return candidate + suffix if candidate.strip() else "{}"
    return orjson.dumps({"arguments": raw}).decode()
