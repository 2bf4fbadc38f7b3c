"""Anthropic Messages request → Bedrock Converse request body.

The body is built from what maps, never filtered from what was sent, so an Anthropic field Converse
does not know can never reach it. What maps is listed in the README's Bedrock section; in short:
``system`` → ``system`` text blocks, text / images / documents / ``tool_use`` / ``tool_result`` →
Converse content blocks, ``tools`` → ``toolConfig``, sampling → ``inferenceConfig``, ``top_k`` and
Claude's ``thinking`` → ``additionalModelRequestFields``, ``cache_control`` → ``cachePoint`` blocks
on models that cache. Thinking blocks go back as ``reasoningContent`` only when they carry a Bedrock
envelope (``signing.py``): reasoning that came from another provider never reaches Bedrock.
"""

from __future__ import annotations

import base64
import re
from typing import Any, Final

from anygate.protocol.errors import invalid_request
from anygate.signing import ThinkingSigner

BILLING_HEADER_PREFIX: Final = "x-anthropic-billing-header:"
"""Claude Code's per-request attribution line: it changes every request and defeats prompt caches."""
ENVELOPE_PROVIDER: Final = "bedrock"
EMPTY_TOOL_RESULT: Final = "(empty)"
"""Converse rejects a tool result without content or with blank text."""
CACHE_POINT: Final = {"cachePoint": {"type": "default"}}

IMAGE_FORMATS: Final[dict[str, str]] = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
DOCUMENT_FORMATS: Final[dict[str, str]] = {
    "application/pdf": "pdf",
    "text/plain": "txt",
    "text/markdown": "md",
    "text/html": "html",
    "text/csv": "csv",
}
TOOL_CHOICE: Final[dict[str, dict[str, Any]]] = {"auto": {"auto": {}}, "any": {"any": {}}}
"""Anthropic ``tool_choice.type`` → Converse ``toolChoice`` (``tool`` names one; ``none`` sends none)."""

CACHE_POINT_MODELS: Final = ("anthropic.", "amazon.nova")
"""Model id fragments of the families whose Converse API takes ``cachePoint`` blocks."""
TOP_K_FIELDS: Final[tuple[tuple[str, str], ...]] = (("anthropic.", "top_k"), ("amazon.nova", "topK"))
"""Model families that take ``top_k`` through ``additionalModelRequestFields``, and the field's name
(Nova nests it in ``inferenceConfig``); other models have no top_k and it is dropped."""
_DOCUMENT_NAME_BAD: Final = re.compile(r"[^A-Za-z0-9\s\-()\[\]]+")


def model_family(model: str, prefix: str) -> bool:
    """Whether a model id (or inference profile, ``us.anthropic.…``) belongs to a family."""
    return prefix in model


def converse_body(request: dict[str, Any], model: str, signer: ThinkingSigner) -> dict[str, Any]:
    """The Converse (or ConverseStream) body for an Anthropic request; the model goes in the URL."""
    caching = any(model_family(model, family) for family in CACHE_POINT_MODELS)
    tool_names: list[str] = []
    body: dict[str, Any] = {"messages": _messages(request["messages"], signer, caching, tool_names)}
    system = _system(request.get("system"), caching)
    if system:
        body["system"] = system
    inference: dict[str, Any] = {"maxTokens": request["max_tokens"]}
    for source, target in (("temperature", "temperature"), ("top_p", "topP")):
        if request.get(source) is not None:
            inference[target] = request[source]
    stops = [s for s in request.get("stop_sequences") or () if isinstance(s, str) and s]
    if stops:
        inference["stopSequences"] = stops
    body["inferenceConfig"] = inference
    additional = _additional_fields(request, model)
    if additional:
        body["additionalModelRequestFields"] = additional
    tool_config = _tool_config(request, caching, tool_names)
    if tool_config is not None:
        body["toolConfig"] = tool_config
    return body


def _additional_fields(request: dict[str, Any], model: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    top_k = request.get("top_k")
    if isinstance(top_k, int):
        for family, name in TOP_K_FIELDS:
            if model_family(model, family):
                fields.update({name: top_k} if name == "top_k" else {"inferenceConfig": {name: top_k}})
    thinking = request.get("thinking")
    if model_family(model, "anthropic.") and isinstance(thinking, dict):
        kind = thinking.get("type")
        if kind == "enabled" and isinstance(thinking.get("budget_tokens"), int):
            fields["thinking"] = {"type": "enabled", "budget_tokens": thinking["budget_tokens"]}
        elif kind == "adaptive":
            fields["thinking"] = {"type": "adaptive"}
    return fields


# --- system and messages -----------------------------------------------------------------------------


def _system(system: object, caching: bool) -> list[dict[str, Any]]:
    if isinstance(system, str):
        return [{"text": system}] if system else []
    blocks: list[dict[str, Any]] = []
    for block in system if isinstance(system, list) else ():
        if not isinstance(block, dict):
            continue
        text = block.get("text")
        if isinstance(text, str) and text and not text.startswith(BILLING_HEADER_PREFIX):
            blocks.append({"text": text})
            if caching and block.get("cache_control"):
                blocks.append(CACHE_POINT)
    return blocks


def _messages(
    messages: list[dict[str, Any]], signer: ThinkingSigner, caching: bool, tool_names: list[str]
) -> list[dict[str, Any]]:
    """Converse messages: roles alternate (consecutive turns of one role joined, ``system`` entries
    joining the user turn, as Anthropic treats them), empty turns left out."""
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = "assistant" if message.get("role") == "assistant" else "user"
        content = message.get("content")
        blocks: list[Any] = (
            [{"type": "text", "text": content}] if isinstance(content, str) else list(content or ())
        )
        converted: list[dict[str, Any]] = []
        for block in blocks:
            if isinstance(block, dict):
                _block(block, role, converted, signer, caching, tool_names)
        if not converted:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(converted)
        else:
            turns.append({"role": role, "content": converted})
    return turns


def _block(
    block: dict[str, Any],
    role: str,
    out: list[dict[str, Any]],
    signer: ThinkingSigner,
    caching: bool,
    tool_names: list[str],
) -> None:
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        if isinstance(text, str) and text.strip():
            out.append({"text": text})
    elif kind == "image":
        out.append(_image(block))
    elif kind == "document":
        out.append(_document(block, len(out)))
    elif kind == "tool_use" and role == "assistant":
        name = str(block.get("name", ""))
        tool_names.append(name)
        tool_input = block.get("input")
        out.append(
            {
                "toolUse": {
                    "toolUseId": str(block.get("id", "")),
                    "name": name,
                    "input": tool_input if isinstance(tool_input, dict) else {},
                }
            }
        )
    elif kind == "tool_result":
        out.append(_tool_result(block))
    elif kind in ("thinking", "redacted_thinking") and role == "assistant":
        sealed = block.get("signature") if kind == "thinking" else block.get("data")
        reasoning = _reasoning(sealed, str(block.get("thinking", "")), signer)
        if reasoning is not None:
            out.append(reasoning)
        return  # a cache point never follows reasoning
    else:
        return  # server tool blocks, search results…: nothing Converse can take
    if caching and block.get("cache_control"):
        out.append(CACHE_POINT)


def _reasoning(sealed: object, thinking: str, signer: ThinkingSigner) -> dict[str, Any] | None:
    """A (redacted) thinking block that Bedrock produced, exactly as Bedrock sent it; None for any other
    (``sealed``: its signature, or a redacted block's data)."""
    state = signer.unseal(ENVELOPE_PROVIDER, sealed)
    if state is None:
        return None
    redacted = state.get("r")
    if isinstance(redacted, str):
        return {"reasoningContent": {"redactedContent": redacted}}
    text: dict[str, Any] = {"text": thinking}
    signature = state.get("s")
    if isinstance(signature, str):
        text["signature"] = signature
    return {"reasoningContent": {"reasoningText": text}}


def _image(block: dict[str, Any]) -> dict[str, Any]:
    source = block.get("source") or {}
    if source.get("type") != "base64":
        raise invalid_request("Bedrock takes images as base64 data; image URLs cannot be sent to it")
    media = str(source.get("media_type", "")).lower()
    image_format = IMAGE_FORMATS.get(media)
    if image_format is None:
        raise invalid_request(f"Bedrock does not take images of type {media!r}")
    return {"image": {"format": image_format, "source": {"bytes": source.get("data", "")}}}


def _document(block: dict[str, Any], position: int) -> dict[str, Any]:
    source = block.get("source") or {}
    kind = source.get("type")
    title = block.get("title")
    name = _DOCUMENT_NAME_BAD.sub(" ", title).strip()[:200] if isinstance(title, str) else ""
    name = name or f"document {position + 1}"
    if kind == "text":
        data = base64.b64encode(str(source.get("data", "")).encode()).decode()
        return {"document": {"format": "txt", "name": name, "source": {"bytes": data}}}
    if kind == "base64":
        media = str(source.get("media_type", "")).lower()
        document_format = DOCUMENT_FORMATS.get(media)
        if document_format is None:
            raise invalid_request(f"Bedrock does not take documents of type {media!r}")
        return {
            "document": {"format": document_format, "name": name, "source": {"bytes": source.get("data", "")}}
        }
    if kind == "content":
        texts = [
            str(part.get("text", ""))
            for part in source.get("content") or ()
            if isinstance(part, dict) and part.get("type") == "text"
        ]
        data = base64.b64encode("\n\n".join(texts).encode()).decode()
        return {"document": {"format": "txt", "name": name, "source": {"bytes": data}}}
    raise invalid_request("Bedrock takes documents as base64 or text; document URLs cannot be sent to it")


def _tool_result(block: dict[str, Any]) -> dict[str, Any]:
    content = block.get("content")
    parts: list[dict[str, Any]] = []
    if isinstance(content, str):
        if content.strip():
            parts.append({"text": content})
    elif isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == "text" and str(part.get("text", "")).strip():
                parts.append({"text": part["text"]})
            elif kind == "image":
                parts.append(_image(part))
            elif kind == "document":
                parts.append(_document(part, len(parts)))
    result: dict[str, Any] = {
        "toolUseId": str(block.get("tool_use_id", "")),
        "content": parts or [{"text": EMPTY_TOOL_RESULT}],
    }
    if block.get("is_error") is True:
        result["status"] = "error"
    return {"toolResult": result}


# --- tools -------------------------------------------------------------------------------------------


def _tool_config(request: dict[str, Any], caching: bool, used_names: list[str]) -> dict[str, Any] | None:
    """``toolConfig``; also when the request has no tools but its history has tool calls, which
    Converse refuses without a ``toolConfig`` naming them."""
    tools: list[dict[str, Any]] = []
    names: set[str] = set()
    for tool in request.get("tools") or ():
        if not isinstance(tool, dict) or tool.get("type") not in (None, "custom"):
            continue  # Anthropic server tools (web search, bash, …) have no Converse equivalent
        name = str(tool.get("name", ""))
        schema = tool.get("input_schema")
        spec: dict[str, Any] = {
            "name": name,
            "inputSchema": {"json": schema if isinstance(schema, dict) else {"type": "object"}},
        }
        description = tool.get("description")
        if isinstance(description, str) and description:
            spec["description"] = description
        tools.append({"toolSpec": spec})
        names.add(name)
        if caching and tool.get("cache_control"):
            tools.append(CACHE_POINT)
    for name in used_names:
        if name not in names:
            names.add(name)
            tools.append({"toolSpec": {"name": name, "inputSchema": {"json": {"type": "object"}}}})
    if not tools:
        return None
    config: dict[str, Any] = {"tools": tools}
    choice = request.get("tool_choice")
    if isinstance(choice, dict) and request.get("tools"):
        kind = choice.get("type")
        if kind == "tool" and isinstance(choice.get("name"), str):
            config["toolChoice"] = {"tool": {"name": choice["name"]}}
        elif isinstance(kind, str) and kind in TOOL_CHOICE:
            config["toolChoice"] = TOOL_CHOICE[kind]
    return config
