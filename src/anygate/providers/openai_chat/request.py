"""Anthropic Messages request → Chat Completions request body.

What maps, and how, is listed in the README section "OpenAI and OpenAI-compatible providers". Fields
with no Chat Completions equivalent (``context_management``, ``container``, ``service_tier``, top-level
``cache_control``, …) are simply never copied: the body is built from what is known, not filtered from
what was sent, so a new Anthropic field can never leak upstream.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import orjson

from anygate.protocol.tools import is_function_tool, request_tool_names
from anygate.providers.openai_chat.names import alnum9_tool_id, tool_name_map
from anygate.providers.openai_chat.presets import Preset
from anygate.providers.openai_chat.reasoning import requested_effort

log = logging.getLogger("anygate.openai")

BILLING_HEADER_PREFIX: Final = "x-anthropic-billing-header:"
"""Claude Code's per-request attribution line; it changes every request and defeats prefix caches."""
MAX_STOP_SEQUENCES: Final = 4
"""Chat Completions takes at most four stop sequences."""
RESPONSE_FORMAT_NAME: Final = "response"

_TOOL_CHOICE: Final[dict[str, str]] = {"auto": "auto", "any": "required", "none": "none"}
"""Anthropic ``tool_choice.type`` → Chat Completions ``tool_choice`` (``tool`` names a function)."""


def chat_body(
    request: dict[str, Any], *, model: str, preset: Preset, stream: bool
) -> tuple[dict[str, Any], dict[str, str]]:
    """The Chat Completions body for an Anthropic request, and the map from the tool names sent (which
    the upstream answers with) back to the client's names."""
    names = tool_name_map(request_tool_names(request))
    body: dict[str, Any] = {"model": model, "messages": chat_messages(request, preset, names)}
    tools = chat_tools(request.get("tools"), names)
    if tools:
        body["tools"] = tools
        _apply_tool_choice(body, request.get("tool_choice"), names)
    body[preset.max_tokens_field] = request["max_tokens"]
    _apply_sampling(body, request, preset)
    _apply_reasoning(body, request, preset, model)
    json_format = response_format(request)
    if json_format is not None:
        body["response_format"] = json_format
    if stream:
        body["stream"] = True
        if preset.stream_usage:
            body["stream_options"] = {"include_usage": True}
    return body, {wire: name for name, wire in names.items()}


# --- messages --------------------------------------------------------------------------------------


def system_text(system: object) -> str:
    """The system prompt as one string, without Claude Code's attribution line."""
    if isinstance(system, str):
        return system
    if not isinstance(system, list):
        return ""
    texts = [
        str(block.get("text", ""))
        for block in system
        if isinstance(block, dict) and not str(block.get("text", "")).startswith(BILLING_HEADER_PREFIX)
    ]
    return "\n\n".join(text for text in texts if text)


def merged_turns(messages: list[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    """Messages as (role, blocks), consecutive messages of one role joined into one turn, as Anthropic
    itself treats them; Chat Completions upstreams with strict role alternation then stay valid.

    A ``system`` entry inside ``messages`` (Claude Code sends its environment notes that way) joins the
    user turn where it stands: many open-model chat templates reject a system message after the first.
    """
    turns: list[tuple[str, list[Any]]] = []
    for message in messages:
        role = str(message.get("role"))
        if role == "system":
            role = "user"
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))
    return turns


def chat_messages(request: dict[str, Any], preset: Preset, names: dict[str, str]) -> list[dict[str, Any]]:
    """The ``messages`` list: a leading system message, then the conversation."""
    out: list[dict[str, Any]] = []
    system = system_text(request.get("system"))
    if system:
        out.append({"role": "system", "content": system})
    for role, blocks in merged_turns(request.get("messages") or []):
        if role == "assistant":
            out.append(_assistant_message(blocks, preset, names))
        else:
            out.extend(_user_messages(blocks, preset))
    return out


def _wire_id(tool_id: object, preset: Preset) -> str:
    text = str(tool_id)
    return alnum9_tool_id(text) if preset.tool_id_style == "alnum9" else text


def _assistant_message(blocks: list[Any], preset: Preset, names: dict[str, str]) -> dict[str, Any]:
    texts: list[str] = []
    reasoning: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            texts.append(str(block["text"]))
        elif kind == "thinking" and block.get("thinking"):
            reasoning.append(str(block["thinking"]))
        elif kind == "tool_use":
            name = str(block.get("name", ""))
            tool_calls.append(
                {
                    "id": _wire_id(block.get("id"), preset),
                    "type": "function",
                    "function": {
                        "name": names.get(name, name),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
    message: dict[str, Any] = {"role": "assistant", "content": "\n\n".join(texts) if texts else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    elif message["content"] is None:
        message["content"] = ""
    if reasoning and preset.reasoning_back_field:
        message[preset.reasoning_back_field] = "\n\n".join(reasoning)
    return message


def _user_messages(blocks: list[Any], preset: Preset) -> list[dict[str, Any]]:
    """A user turn: its tool results first (one ``tool`` message each, in order), then one user
    message with the rest, led by any images the tool results carried (tool messages take text only)."""
    tool_messages: list[dict[str, Any]] = []
    carried: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "tool_result":
            text, media = tool_result_content(block)
            tool_messages.append(
                {"role": "tool", "tool_call_id": _wire_id(block.get("tool_use_id"), preset), "content": text}
            )
            carried.extend(media)
        else:
            parts.extend(user_parts(block))
    messages = tool_messages
    combined = carried + parts
    if combined or not tool_messages:
        messages.append({"role": "user", "content": _compact(combined)})
    return messages


def _compact(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A lone text part as a plain string (what every server accepts); nothing as an empty string."""
    if not parts:
        return ""
    if len(parts) == 1 and parts[0]["type"] == "text":
        text: str = parts[0]["text"]
        return text
    return parts


def tool_result_content(block: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    content = block.get("content")
    texts: list[str] = []
    media: list[dict[str, Any]] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for inner in content:
            if not isinstance(inner, dict):
                continue
            for part in user_parts(inner):
                if part["type"] == "text":
                    texts.append(part["text"])
                else:
                    media.append(part)
    text = "\n".join(texts)
    if block.get("is_error") is True:
        text = f"Error: {text}" if text else "Error"
    return text, media


def user_parts(block: dict[str, Any]) -> list[dict[str, Any]]:
    """Chat Completions content parts for one Anthropic user content block."""
    kind = block.get("type")
    if kind == "text":
        return [{"type": "text", "text": str(block.get("text", ""))}]
    if kind == "image":
        url = _source_url(block.get("source"))
        return [{"type": "image_url", "image_url": {"url": url}}] if url else []
    if kind == "document":
        return _document_parts(block)
    if kind == "search_result":
        texts = [str(b.get("text", "")) for b in block.get("content") or [] if isinstance(b, dict)]
        title = str(block.get("title", ""))
        return [{"type": "text", "text": "\n".join([title, *texts]).strip()}]
    log.debug("dropping a %r content block: no Chat Completions equivalent", kind)
    return []


def _source_url(source: object) -> str | None:
    if not isinstance(source, dict):
        return None
    if source.get("type") == "base64":
        return f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    if source.get("type") == "url":
        return str(source.get("url", "")) or None
    return None


def _document_parts(block: dict[str, Any]) -> list[dict[str, Any]]:
    source = block.get("source")
    if not isinstance(source, dict):
        return []
    title = block.get("title")
    kind = source.get("type")
    if kind == "text":
        text = str(source.get("data", ""))
        return [{"type": "text", "text": f"{title}\n\n{text}" if title else text}]
    if kind == "content":
        inner = source.get("content")
        if isinstance(inner, str):
            return [{"type": "text", "text": inner}]
        return [part for b in inner or [] if isinstance(b, dict) for part in user_parts(b)]
    if kind == "base64":
        media_type = str(source.get("media_type", "application/pdf"))
        filename = str(title or ("document.pdf" if media_type == "application/pdf" else "document"))
        data_url = f"data:{media_type};base64,{source.get('data', '')}"
        return [{"type": "file", "file": {"filename": filename, "file_data": data_url}}]
    if kind == "url":
        return [{"type": "text", "text": f"Document: {source.get('url', '')}"}]
    log.debug("dropping a document with source type %r", kind)
    return []


# --- tools -----------------------------------------------------------------------------------------


def chat_tools(tools: object, names: dict[str, str]) -> list[dict[str, Any]]:
    """Function tools; Anthropic server tools (``web_search_*``, ``bash_*``, …) are dropped and logged."""
    out: list[dict[str, Any]] = []
    for tool in tools if isinstance(tools, list) else []:
        if not is_function_tool(tool):
            log.info("dropping Anthropic tool %r: Chat Completions upstreams cannot run it", tool.get("type"))
            continue
        name = str(tool["name"])
        function: dict[str, Any] = {"name": names.get(name, name), "parameters": tool["input_schema"]}
        if tool.get("description"):
            function["description"] = str(tool["description"])
        if isinstance(tool.get("strict"), bool):
            function["strict"] = tool["strict"]
        out.append({"type": "function", "function": function})
    return out


def _apply_tool_choice(body: dict[str, Any], choice: object, names: dict[str, str]) -> None:
    if not isinstance(choice, dict):
        return
    kind = str(choice.get("type"))
    if kind == "tool":
        name = str(choice.get("name", ""))
        body["tool_choice"] = {"type": "function", "function": {"name": names.get(name, name)}}
    elif kind in _TOOL_CHOICE:
        body["tool_choice"] = _TOOL_CHOICE[kind]
    if choice.get("disable_parallel_tool_use") is True and kind != "none":
        body["parallel_tool_calls"] = False


# --- parameters ------------------------------------------------------------------------------------


def _apply_sampling(body: dict[str, Any], request: dict[str, Any], preset: Preset) -> None:
    stop_sequences = [s for s in request.get("stop_sequences") or [] if isinstance(s, str) and s]
    if stop_sequences:
        if len(stop_sequences) > MAX_STOP_SEQUENCES:
            log.warning(
                "Chat Completions takes %d stop sequences; sending the first %d of %d",
                MAX_STOP_SEQUENCES,
                MAX_STOP_SEQUENCES,
                len(stop_sequences),
            )
        body["stop"] = stop_sequences[:MAX_STOP_SEQUENCES]
    for key in ("temperature", "top_p"):
        if request.get(key) is not None:
            body[key] = request[key]
    if preset.accepts_top_k and request.get("top_k") is not None:
        body["top_k"] = request["top_k"]
    metadata = request.get("metadata")
    if preset.accepts_user and isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        body["user"] = metadata["user_id"]


def _apply_reasoning(body: dict[str, Any], request: dict[str, Any], preset: Preset, model: str) -> None:
    effort = requested_effort(request)
    if effort is None:
        return
    if preset.thinking_toggle:
        body["thinking"] = {"type": "disabled" if effort == "none" else "enabled"}
        if effort == "none":
            return
    if effort == "none" and not preset.takes_effort_none(model):
        return
    if not preset.takes_effort(model):
        return
    if preset.reasoning_param == "reasoning_object":
        body["reasoning"] = {"effort": effort}
    else:
        body["reasoning_effort"] = effort


def response_format(request: dict[str, Any]) -> dict[str, Any] | None:
    """``output_config.format`` (or the beta ``output_format``) of type json_schema → response_format."""
    output_config = request.get("output_config")
    fmt = output_config.get("format") if isinstance(output_config, dict) else None
    if fmt is None:
        fmt = request.get("output_format")
    if (
        not isinstance(fmt, dict)
        or fmt.get("type") != "json_schema"
        or not isinstance(fmt.get("schema"), dict)
    ):
        return None
    return {"type": "json_schema", "json_schema": {"name": RESPONSE_FORMAT_NAME, "schema": fmt["schema"]}}
