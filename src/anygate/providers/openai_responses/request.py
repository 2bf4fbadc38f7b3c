"""Anthropic Messages request → Responses API request body.

The body is built from what is known, never filtered from what was sent, so a new Anthropic field cannot
leak upstream. Content parts, tool results and tools are made by the Chat Completions translator's
functions and reshaped here (the two APIs carry the same things in different envelopes).

Requests are stateless (``store: false``): the whole conversation goes up every turn, and the model's
earlier reasoning travels with it. A reasoning item comes back from the client inside the signature of a
``thinking`` (or the ``data`` of a ``redacted_thinking``) block, sealed by the gateway for
:data:`ENVELOPE_PROVIDER`; it is replayed as a reasoning item right before the function call or message
that followed it. Envelopes of other providers, forged or damaged ones, and genuine Anthropic signatures
are never unsealed, so no other provider's state reaches OpenAI.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, Final

import orjson

from anygate.protocol.tools import request_tool_names
from anygate.providers.openai_chat.names import tool_name_map
from anygate.providers.openai_chat.presets import Preset
from anygate.providers.openai_chat.reasoning import requested_effort
from anygate.providers.openai_chat.request import (
    chat_tools,
    merged_turns,
    response_format,
    system_text,
    tool_result_content,
    user_parts,
)
from anygate.signing import ThinkingSigner

log = logging.getLogger("anygate.openai")

ENVELOPE_PROVIDER: Final = "openai_responses"
"""The provider tag of the envelopes that carry reasoning items across turns."""
ENCRYPTED_REASONING: Final = "reasoning.encrypted_content"
"""The ``include`` value that makes a stateless upstream return reasoning the next turn can replay."""
SUMMARY_MODE: Final = "auto"
"""The reasoning summary asked for when the client wants to see thinking."""
MAX_SAFETY_IDENTIFIER: Final = 64
"""``safety_identifier`` is at most 64 characters; longer user ids are sent as their SHA-256."""

TOOL_CHOICE: Final[dict[str, str]] = {"auto": "auto", "any": "required", "none": "none"}
"""Anthropic ``tool_choice.type`` → Responses ``tool_choice`` (``tool`` names a function)."""

_CHAT_PART_TO_INPUT: Final[dict[str, str]] = {
    "text": "input_text",
    "image_url": "input_image",
    "file": "input_file",
}
"""Chat Completions content part type → Responses input content type."""


def responses_body(
    request: dict[str, Any],
    *,
    model: str,
    preset: Preset,
    signer: ThinkingSigner,
    stream: bool,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The Responses body for an Anthropic request, and the map from the function names sent back to
    the client's tool names."""
    names = tool_name_map(request_tool_names(request))
    reasoning_model = preset.takes_effort(model)
    body: dict[str, Any] = {"model": model}
    instructions = system_text(request.get("system"))
    if instructions:
        body["instructions"] = instructions
    body["input"] = input_items(request, names, signer if reasoning_model else None)
    tools = function_tools(request.get("tools"), names)
    if tools:
        body["tools"] = tools
        _apply_tool_choice(body, request.get("tool_choice"), names)
    body["max_output_tokens"] = request["max_tokens"]
    body["store"] = False
    effort = _apply_reasoning(body, request, preset, model)
    if reasoning_model:
        body["include"] = [ENCRYPTED_REASONING]
    if not reasoning_model or effort == "none":  # reasoning models reject sampling parameters
        for key in ("temperature", "top_p"):
            if request.get(key) is not None:
                body[key] = request[key]
    json_format = response_format(request)
    if json_format is not None:
        inner = json_format["json_schema"]
        body["text"] = {"format": {"type": "json_schema", "name": inner["name"], "schema": inner["schema"]}}
    _apply_identity(body, request, instructions)
    if stream:
        body["stream"] = True
    return body, {wire: name for name, wire in names.items()}


def without_reasoning(body: dict[str, Any]) -> dict[str, Any] | None:
    """The body with its replayed reasoning items removed, or None when it had none."""
    items = body.get("input") or []
    kept = [item for item in items if item.get("type") != "reasoning"]
    if len(kept) == len(items):
        return None
    return {**body, "input": kept}


# --- input items -------------------------------------------------------------------------------------


def input_items(
    request: dict[str, Any], names: dict[str, str], signer: ThinkingSigner | None
) -> list[dict[str, Any]]:
    """The conversation as input items; earlier reasoning is replayed only when ``signer`` is given (the
    model reasons) and only where a call or a message follows it."""
    items: list[dict[str, Any]] = []
    for role, blocks in merged_turns(request.get("messages") or []):
        if role == "assistant":
            items.extend(_assistant_items(blocks, names, signer))
        else:
            items.extend(_user_items(blocks))
    return _paired_reasoning(items)


def _paired_reasoning(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop reasoning items not immediately followed by a function call or an assistant message: the
    upstream rejects a reasoning item without the item it produced."""
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        if item.get("type") == "reasoning":
            following = items[i + 1] if i + 1 < len(items) else None
            if following is None or not (
                following.get("type") == "function_call" or following.get("role") == "assistant"
            ):
                continue
        out.append(item)
    return out


def _assistant_items(
    blocks: list[Any], names: dict[str, str], signer: ThinkingSigner | None
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    texts: list[str] = []

    def flush() -> None:
        if texts:
            items.append({"role": "assistant", "content": "\n\n".join(texts)})
            texts.clear()

    for block in blocks:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            texts.append(str(block["text"]))
        elif kind == "tool_use":
            flush()
            name = str(block.get("name", ""))
            items.append(
                {
                    "type": "function_call",
                    "call_id": str(block.get("id", "")),
                    "name": names.get(name, name),
                    "arguments": orjson.dumps(block.get("input") or {}).decode(),
                }
            )
        elif kind in ("thinking", "redacted_thinking") and signer is not None:
            item = _reasoning_item(block, signer)
            if item is not None:
                flush()
                items.append(item)
    flush()
    return items


def _reasoning_item(block: dict[str, Any], signer: ThinkingSigner) -> dict[str, Any] | None:
    """The reasoning item sealed in a thinking block, or None when it holds none of ours."""
    sealed = block.get("signature") if block.get("type") == "thinking" else block.get("data")
    payload = signer.unseal(ENVELOPE_PROVIDER, sealed)
    if payload is None:
        return None
    item_id, encrypted = payload.get("id"), payload.get("encrypted_content")
    if not isinstance(item_id, str) or not isinstance(encrypted, str):
        return None
    text = block.get("thinking") if block.get("type") == "thinking" else None
    summary = [{"type": "summary_text", "text": text}] if isinstance(text, str) and text else []
    return {"type": "reasoning", "id": item_id, "encrypted_content": encrypted, "summary": summary}


def reasoning_envelope(signer: ThinkingSigner, item: dict[str, Any]) -> str | None:
    """The signature that carries a finished reasoning item to the next turn (None without its
    encrypted content: a stored-state upstream, which needs nothing back)."""
    item_id, encrypted = item.get("id"), item.get("encrypted_content")
    if not isinstance(item_id, str) or not isinstance(encrypted, str) or not encrypted:
        return None
    return signer.seal(ENVELOPE_PROVIDER, {"id": item_id, "encrypted_content": encrypted})


def _user_items(blocks: list[Any]) -> list[dict[str, Any]]:
    """A user turn: its tool results first (one ``function_call_output`` each, in order), then one user
    message with the rest."""
    outputs: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "tool_result":
            text, media = tool_result_content(block)  # is_error shows as an "Error: " prefix
            output: str | list[dict[str, Any]] = text
            if media:
                output = [{"type": "input_text", "text": text}] if text else []
                output += [_input_part(part) for part in media]
            outputs.append(
                {
                    "type": "function_call_output",
                    "call_id": str(block.get("tool_use_id", "")),
                    "output": output,
                }
            )
        else:
            parts.extend(_input_part(part) for part in user_parts(block))
    if parts or not outputs:
        outputs.append({"role": "user", "content": parts or [{"type": "input_text", "text": ""}]})
    return outputs


def _input_part(part: dict[str, Any]) -> dict[str, Any]:
    """A Chat Completions content part as a Responses input part."""
    kind = _CHAT_PART_TO_INPUT.get(part["type"])
    if kind == "input_text":
        return {"type": kind, "text": part["text"]}
    if kind == "input_image":
        return {"type": kind, "image_url": part["image_url"]["url"], "detail": "auto"}
    if kind == "input_file":
        return {"type": kind, **part["file"]}
    raise ValueError(f"no Responses input part for {part['type']!r}")  # a translator bug, not input


# --- tools, reasoning, identity ----------------------------------------------------------------------


def function_tools(tools: object, names: dict[str, str]) -> list[dict[str, Any]]:
    """Function tools; ``strict`` is sent as the client set it, else false (Responses defaults to
    strict, which most JSON Schemas that clients send would fail)."""
    out = []
    for chat_tool in chat_tools(tools, names):
        function = chat_tool["function"]
        out.append({"type": "function", "strict": False, **function})
    return out


def _apply_tool_choice(body: dict[str, Any], choice: object, names: dict[str, str]) -> None:
    if not isinstance(choice, dict):
        return
    kind = str(choice.get("type"))
    if kind == "tool":
        name = str(choice.get("name", ""))
        body["tool_choice"] = {"type": "function", "name": names.get(name, name)}
    elif kind in TOOL_CHOICE:
        body["tool_choice"] = TOOL_CHOICE[kind]
    else:
        log.debug("ignoring tool_choice of type %r", kind)
    if choice.get("disable_parallel_tool_use") is True:
        body["parallel_tool_calls"] = False


def _apply_reasoning(body: dict[str, Any], request: dict[str, Any], preset: Preset, model: str) -> str | None:
    """``reasoning.effort`` (and a summary when the client shows thinking); the effort sent, if any."""
    effort = requested_effort(request)
    if effort is None or not preset.takes_effort(model):
        return None
    if effort == "none" and not preset.takes_effort_none(model):
        return None
    reasoning: dict[str, Any] = {"effort": effort}
    thinking = request.get("thinking")
    shown = isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
    if shown and isinstance(thinking, dict) and thinking.get("display") != "omitted":
        reasoning["summary"] = SUMMARY_MODE
    body["reasoning"] = reasoning
    return effort


def _apply_identity(body: dict[str, Any], request: dict[str, Any], instructions: str) -> None:
    """``safety_identifier`` from ``metadata.user_id`` (OpenAI's replacement for ``user``), and a
    ``prompt_cache_key`` derived from how the conversation starts, so every turn of a conversation (and
    every conversation with the same start) lands on the same upstream prefix cache."""
    metadata = request.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(user_id, str) and user_id:
        if len(user_id) > MAX_SAFETY_IDENTIFIER:
            user_id = hashlib.sha256(user_id.encode()).hexdigest()
        body["safety_identifier"] = user_id
    first = body["input"][0] if body["input"] else None
    seed = orjson.dumps([body["model"], instructions, [t["name"] for t in body.get("tools", ())], first])
    body["prompt_cache_key"] = hashlib.sha256(seed).hexdigest()[:32]
