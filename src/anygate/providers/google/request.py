"""Anthropic Messages request → Gemini ``generateContent`` body (the same for the Gemini API and Vertex).

What maps, and how, is listed in the README section "Gemini and Vertex AI". The body is built from what
is known, never filtered from what was sent, so Anthropic-only fields (``context_management``,
``cache_control``, ``container``, …) cannot leak upstream. Thought signatures come back from the
envelopes in thinking blocks (``signatures.py``) onto the part they came on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Final

from anygate.protocol.errors import GatewayError
from anygate.protocol.tools import is_function_tool, request_tool_names
from anygate.providers.google.schema import gemini_schema
from anygate.providers.google.signatures import DUMMY_SIGNATURE, Carried, unseal, validates_signatures
from anygate.providers.google.thinking import thinking_config
from anygate.providers.openai_chat.names import tool_name_map
from anygate.signing import ThinkingSigner

log = logging.getLogger("anygate.gemini")

BILLING_HEADER_PREFIX: Final = "x-anthropic-billing-header:"
"""Claude Code's per-request attribution line; it changes every request and defeats prefix caches."""
MAX_STOP_SEQUENCES: Final = 5
"""Gemini takes at most five stop sequences."""

TOOL_CHOICE_MODES: Final[dict[str, str]] = {"auto": "AUTO", "any": "ANY", "tool": "ANY", "none": "NONE"}
"""Anthropic ``tool_choice.type`` → ``functionCallingConfig.mode`` (``tool`` also names the function)."""

FILE_URI_PREFIXES: Final = ("https://generativelanguage.googleapis.com/", "https://www.youtube.com/")
"""URLs the Gemini API takes as ``fileData`` (Files API uploads, YouTube); Vertex takes any URL."""

_IMAGE_TYPES_BY_SUFFIX: Final[dict[str, str]] = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".heic": "image/heic",
}


@dataclass(slots=True)
class Target:
    """What the body depends on besides the request.

    Attributes:
        backend: ``"gemini"`` (the Gemini API) or ``"vertex"``; signatures are tied to it, and Vertex
            rejects ``functionCall.id`` / ``functionResponse.id``.
        model: the upstream model (picks the thinking settings and whether signatures are validated).
        signer: opens the envelopes in thinking blocks.
    """

    backend: str
    model: str
    signer: ThinkingSigner

    @property
    def sends_ids(self) -> bool:
        return self.backend == "gemini"


@dataclass(slots=True)
class Translated:
    """The body and what reading the answer needs: Gemini's function names → the client's."""

    body: dict[str, Any]
    tool_names: dict[str, str] = field(default_factory=dict)
    single_call: bool = False


def gemini_body(request: dict[str, Any], target: Target) -> Translated:
    """The ``generateContent`` body for an Anthropic request."""
    names = tool_name_map(request_tool_names(request))
    body: dict[str, Any] = {"contents": gemini_contents(request, target, names)}
    system = system_text(request.get("system"))
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    tools = gemini_tools(request.get("tools"), names)
    single_call = False
    if tools:
        body["tools"] = [{"functionDeclarations": tools}]
        tool_config, single_call = _tool_config(request.get("tool_choice"), names)
        if tool_config is not None:
            body["toolConfig"] = tool_config
    body["generationConfig"] = generation_config(request, target.model)
    return Translated(body, {wire: name for name, wire in names.items()}, single_call)


# --- system and contents ---------------------------------------------------------------------------


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


def gemini_contents(request: dict[str, Any], target: Target, names: dict[str, str]) -> list[dict[str, Any]]:
    """The conversation as Gemini ``contents``: roles ``user`` and ``model``, consecutive turns of one
    role joined (a ``system`` message inside ``messages`` joins the user turn where it stands)."""
    turns: list[tuple[str, list[Any]]] = []
    for message in request.get("messages") or []:
        role = "model" if message.get("role") == "assistant" else "user"
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))
    call_names: dict[str, str] = {}
    for role, blocks in turns:
        if role == "model":
            for block in blocks:
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    name = str(block.get("name", ""))
                    call_names[str(block.get("id"))] = names.get(name, name)
    contents: list[dict[str, Any]] = []
    for role, blocks in turns:
        if role == "model":
            parts = _model_parts(blocks, target, names)
        else:
            parts = _user_parts(blocks, target, call_names)
        if not parts:
            continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    if validates_signatures(target.model):
        _sign_current_turn(contents)
    return contents


def _model_parts(blocks: list[Any], target: Target, names: dict[str, str]) -> list[dict[str, Any]]:
    """An assistant turn's parts, each signature back on its part (see the package docstring)."""
    parts: list[dict[str, Any]] = []
    pending: Carried | None = None
    for block in blocks:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "thinking":
            carried = unseal(target.signer, target.backend, block.get("signature"))
            pending = None
            if carried is None:
                continue  # another provider's reasoning, or unsigned: Gemini reads nothing from it
            thought = str(block.get("thinking") or "")
            if carried.on == "thought":
                parts.append({"text": thought, "thought": True, "thoughtSignature": carried.signature})
                continue
            if thought:
                parts.append({"text": thought, "thought": True})
            if carried.on == "empty":
                parts.append({"text": "", "thoughtSignature": carried.signature})
            else:
                pending = carried
        elif kind == "text":
            text = str(block.get("text") or "")
            part: dict[str, Any] = {"text": text}
            if pending is not None and pending.on == "text":
                part["thoughtSignature"] = pending.signature
            pending = None
            if text or "thoughtSignature" in part:
                parts.append(part)
        elif kind == "tool_use":
            name = str(block.get("name", ""))
            call: dict[str, Any] = {"name": names.get(name, name), "args": _object(block.get("input"))}
            if target.sends_ids and block.get("id"):
                call["id"] = str(block["id"])
            part = {"functionCall": call}
            if pending is not None and pending.on == "call":
                part["thoughtSignature"] = pending.signature
            pending = None
            parts.append(part)
        else:
            pending = None  # redacted_thinking, server tool blocks: nothing Gemini can take
    return parts


def _sign_current_turn(contents: list[dict[str, Any]]) -> None:
    """Gemini 3 validates the signature of the first function call of every model step since the
    user's last message: where none came back (history from another model, an edited conversation),
    the documented dummy signature stands in."""
    start = 0
    for position, content in enumerate(contents):
        if content["role"] == "user" and any("functionResponse" not in part for part in content["parts"]):
            start = position + 1
    for content in contents[start:]:
        if content["role"] != "model":
            continue
        for part in content["parts"]:
            if "functionCall" in part:
                part.setdefault("thoughtSignature", DUMMY_SIGNATURE)
                break


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _user_parts(blocks: list[Any], target: Target, call_names: dict[str, str]) -> list[dict[str, Any]]:
    """A user turn: its tool results first (one ``functionResponse`` each, in the order of the calls they
    answer), then the rest, led by any images or documents the tool results carried."""
    responses: list[tuple[int, dict[str, Any]]] = []
    carried: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    order = {tool_id: position for position, tool_id in enumerate(call_names)}
    for block in blocks:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "tool_result":
            response, media = _function_response(block, target, call_names)
            responses.append((order.get(str(block.get("tool_use_id")), len(order)), response))
            carried.extend(media)
        else:
            parts.extend(user_block_parts(block, target))
    responses.sort(key=lambda item: item[0])  # in the order of the calls (clients answer as tools finish)
    return [response for _, response in responses] + carried + parts


def _function_response(
    block: dict[str, Any], target: Target, call_names: dict[str, str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    tool_use_id = str(block.get("tool_use_id"))
    name = call_names.get(tool_use_id)
    if name is None:
        raise GatewayError(
            400, f"tool_result block refers to tool_use id {tool_use_id!r}, which no assistant turn holds"
        )
    content = block.get("content")
    texts: list[str] = []
    media: list[dict[str, Any]] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for inner in content:
            if not isinstance(inner, dict):
                continue
            for part in user_block_parts(inner, target):
                if "text" in part:
                    texts.append(part["text"])
                else:
                    media.append(part)
    text = "\n".join(texts)
    key = "error" if block.get("is_error") is True else "output"
    response: dict[str, Any] = {"name": name, "response": {key: text}}
    if target.sends_ids:
        response["id"] = tool_use_id
    return {"functionResponse": response}, media


def user_block_parts(block: dict[str, Any], target: Target) -> list[dict[str, Any]]:
    """Gemini parts for one Anthropic user content block."""
    kind = block.get("type")
    if kind == "text":
        text = str(block.get("text", ""))
        return [{"text": text}] if text else []
    if kind == "image":
        return _media(block.get("source"), target, "image/jpeg")
    if kind == "document":
        return _document_parts(block, target)
    if kind == "search_result":
        texts = [str(b.get("text", "")) for b in block.get("content") or [] if isinstance(b, dict)]
        title = str(block.get("title", ""))
        return [{"text": "\n".join([title, *texts]).strip()}]
    log.debug("dropping a %r content block: no Gemini equivalent", kind)
    return []


def _media(source: object, target: Target, default_type: str) -> list[dict[str, Any]]:
    if not isinstance(source, dict):
        return []
    if source.get("type") == "base64":
        mime = str(source.get("media_type") or default_type)
        return [{"inlineData": {"mimeType": mime, "data": str(source.get("data", ""))}}]
    if source.get("type") == "url":
        url = str(source.get("url", ""))
        if not url:
            return []
        if target.backend == "vertex" or url.startswith(FILE_URI_PREFIXES) or url.startswith("gs://"):
            return [{"fileData": {"mimeType": _url_type(url, default_type), "fileUri": url}}]
        return [{"text": f"[{'Image' if default_type.startswith('image/') else 'Document'}: {url}]"}]
    return []


def _url_type(url: str, default_type: str) -> str:
    path = url.split("?", 1)[0].lower()
    if path.endswith(".pdf"):
        return "application/pdf"
    for suffix, mime in _IMAGE_TYPES_BY_SUFFIX.items():
        if path.endswith(suffix):
            return mime
    return default_type


def _document_parts(block: dict[str, Any], target: Target) -> list[dict[str, Any]]:
    source = block.get("source")
    if not isinstance(source, dict):
        return []
    title = block.get("title")
    kind = source.get("type")
    if kind == "text":
        text = str(source.get("data", ""))
        return [{"text": f"{title}\n\n{text}" if title else text}]
    if kind == "content":
        inner = source.get("content")
        if isinstance(inner, str):
            return [{"text": inner}]
        return [part for b in inner or [] if isinstance(b, dict) for part in user_block_parts(b, target)]
    if kind in ("base64", "url"):
        return _media(source, target, "application/pdf")
    log.debug("dropping a document with source type %r", kind)
    return []


# --- tools -----------------------------------------------------------------------------------------


def gemini_tools(tools: object, names: dict[str, str]) -> list[dict[str, Any]]:
    """Function declarations; Anthropic server tools (``web_search_*``, ``bash_*``, …) are dropped."""
    out: list[dict[str, Any]] = []
    for tool in tools if isinstance(tools, list) else []:
        if not is_function_tool(tool):
            log.info("dropping Anthropic tool %r: Gemini cannot run it", tool.get("type"))
            continue
        name = str(tool["name"])
        declaration: dict[str, Any] = {
            "name": names.get(name, name),
            "parametersJsonSchema": gemini_schema(tool["input_schema"]),
        }
        if tool.get("description"):
            declaration["description"] = str(tool["description"])
        out.append(declaration)
    return out


def _tool_config(choice: object, names: dict[str, str]) -> tuple[dict[str, Any] | None, bool]:
    """``toolConfig`` for ``tool_choice``, and whether only one function call may reach the client
    (``disable_parallel_tool_use``: Gemini has no such switch, so later calls are dropped from answers)."""
    if not isinstance(choice, dict):
        return None, False
    kind = str(choice.get("type"))
    mode = TOOL_CHOICE_MODES.get(kind)
    if mode is None:
        log.warning("unknown tool_choice type %r; leaving Gemini's default", kind)
        return None, False
    config: dict[str, Any] = {"mode": mode}
    if kind == "tool":
        name = str(choice.get("name", ""))
        config["allowedFunctionNames"] = [names.get(name, name)]
    single = choice.get("disable_parallel_tool_use") is True and kind != "none"
    return {"functionCallingConfig": config}, single


# --- generation config -----------------------------------------------------------------------------


def generation_config(request: dict[str, Any], model: str) -> dict[str, Any]:
    """``maxOutputTokens``, sampling, stop sequences, thinking and structured output."""
    config: dict[str, Any] = {}
    if isinstance(request.get("max_tokens"), int):  # count_tokens requests have none
        config["maxOutputTokens"] = request["max_tokens"]
    for key, wire in (("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK")):
        if request.get(key) is not None:
            config[wire] = request[key]
    stop_sequences = [s for s in request.get("stop_sequences") or [] if isinstance(s, str) and s]
    if stop_sequences:
        if len(stop_sequences) > MAX_STOP_SEQUENCES:
            log.warning("Gemini takes %d stop sequences; sending the first of %d", MAX_STOP_SEQUENCES,
                        len(stop_sequences))  # fmt: skip
        config["stopSequences"] = stop_sequences[:MAX_STOP_SEQUENCES]
    thinking = thinking_config(request, model)
    if thinking is not None:
        config["thinkingConfig"] = thinking
    schema = _output_schema(request)
    if schema is not None:
        config["responseMimeType"] = "application/json"
        config["responseJsonSchema"] = gemini_schema(schema)
    return config


def _output_schema(request: dict[str, Any]) -> dict[str, Any] | None:
    """``output_config.format`` (or the beta ``output_format``) of type json_schema."""
    output_config = request.get("output_config")
    fmt = output_config.get("format") if isinstance(output_config, dict) else None
    if fmt is None:
        fmt = request.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        schema: dict[str, Any] = fmt["schema"]
        return schema
    return None
