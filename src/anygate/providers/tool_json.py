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


_TRUNCATED_MEMBER: Final = '"_truncated": true'
"""What completes an object cut off right after a comma: the comma is already sent, so a member must
follow; this one says honestly why it is there."""
_LITERALS: Final = ("true", "false", "null")
_SCALAR_CHARS: Final = frozenset("0123456789+-.eEtrufalsn")


def _close_scalar(scalar: str) -> str:
    """What completes a cut-off number or literal (``tr`` → ``ue``, ``1.`` → ``0``); None if nothing can."""
    for literal in _LITERALS:
        if literal.startswith(scalar):
            return literal[len(scalar) :]
    if scalar[-1] in ".eE+-":
        return "0"
    return ""


_STARTS_VALUE: Final = {("{", "value"), ("[", "first"), ("[", "value")}
"""(container, expectation) pairs in which a value may begin."""
_MISSING: Final = {"key": _TRUNCATED_MEMBER, "colon": ": null", "value": " null"}
"""What a container still needs at the end, by what it expected next."""


def completion_suffix(raw: str) -> str | None:
    """Text that, appended to ``raw``, makes it a JSON object; ``""`` when it already is one (or is
    empty, which means ``{}``), None when no suffix can (not an object, or trailing garbage).

    It follows the structure of the prefix (inside a key or a value, after a colon or a comma, in a
    number or a literal) so that any prefix of an object that a model cut off, for example at
    ``max_tokens``, is completed rather than lost.
    """
    if not raw.strip() or _is_object(raw):
        return ""
    if not raw.lstrip().startswith("{"):
        return None
    # Each open container: [its opening char, what it expects next]. Expectations: "first" (a key or
    # the end in an object, a value or the end in an array), "key", "colon", "value", "next" (a comma
    # or the end), "scalar" (inside a number or literal), "child" (inside a nested container).
    stack: list[list[str]] = []
    in_string = escaped = string_is_key = finished = False
    unicode_left = 0
    scalar = ""
    for char in raw:
        if in_string:
            if unicode_left:
                unicode_left -= 1
            elif escaped:
                escaped = False
                unicode_left = 4 if char == "u" else 0
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
                stack[-1][1] = "colon" if string_is_key else "next"
            continue
        frame = stack[-1] if stack else None
        if frame is not None and frame[1] == "scalar":
            if char in _SCALAR_CHARS:
                scalar += char
                continue
            frame[1], scalar = "next", ""
        if char.isspace():
            continue
        if finished:
            return None
        state = (frame[0], frame[1]) if frame is not None else None
        if char == '"':
            if state in (("{", "first"), ("{", "key")):
                string_is_key = True
            elif state in _STARTS_VALUE:
                string_is_key = False
            else:
                return None
            in_string = True
        elif char in "{[":
            if frame is not None:
                if state not in _STARTS_VALUE:
                    return None
                frame[1] = "child"
            stack.append([char, "first"])
        elif char in "}]":
            if frame is None or _CLOSERS[frame[0]] != char or frame[1] not in ("first", "next"):
                return None
            stack.pop()
            if stack:
                stack[-1][1] = "next"
            else:
                finished = True
        elif char == ":" and state == ("{", "colon"):
            frame[1] = "value"  # type: ignore[index]
        elif char == "," and frame is not None and frame[1] == "next":
            frame[1] = "key" if frame[0] == "{" else "value"
        elif char in _SCALAR_CHARS and state in _STARTS_VALUE:
            frame[1], scalar = "scalar", char  # type: ignore[index]
        else:
            return None
    suffix = ""
    if in_string:
        suffix += "0" * unicode_left + ("\\" if escaped else "") + '"'
        stack[-1][1] = "colon" if string_is_key else "next"
    if scalar:
        suffix += _close_scalar(scalar)
        stack[-1][1] = "next"
    for container, expectation in reversed(stack):
        missing = _MISSING.get(expectation, "")
        suffix += (missing.strip() if container == "[" else missing) + _CLOSERS[container]
    return suffix if _is_object(raw + suffix) else None


def repair_arguments(raw: str) -> str:
    """Arguments as a JSON object text, repaired where possible; never raises.

    Order of attempts: as is; with a trailing comma removed and completed by a suffix; completed; a
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
    for candidate in (raw.rstrip().rstrip(","), raw):
        suffix = completion_suffix(candidate)
        if suffix is not None:
            return candidate + suffix if candidate.strip() else "{}"
    return orjson.dumps({"arguments": raw}).decode()
