"""Shared test tools for the Chat Completions provider: spec validators, recordings, translator drivers."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

import jsonschema
import orjson

from anygate.deployment import Deployment
from anygate.protocol.accumulate import accumulate
from anygate.protocol.sse import SSEDecoder
from anygate.providers.base import Answer, CallContext, StreamTranslator, UpstreamRequest
from anygate.providers.openai_chat.call import ChatCall
from anygate.providers.openai_chat.provider import OpenAIChatProvider, provider_for_preset
from anygate.signing import ThinkingSigner
from tests.conftest import RECORDINGS, SPECS

OPENAI_RECORDINGS = sorted((RECORDINGS / "openai-chat").glob("*.sse"))
RECORDING_IDS = [path.stem for path in OPENAI_RECORDINGS]
SIGNER = ThinkingSigner("test-master-key")


# --- spec validators ---------------------------------------------------------------------------------


def _nullable_to_type(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable: true`` as JSON Schema: ``type: [T, "null"]`` (or an anyOf with null)."""
    if isinstance(node, list):
        return [_nullable_to_type(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable_to_type(value) for key, value in node.items()}
    if node.pop("nullable", False) is True:
        kind = node.get("type")
        if isinstance(kind, str):
            node["type"] = [kind, "null"]
            if "enum" in node:
                node["enum"] = [*node["enum"], None]
        elif isinstance(kind, list):
            node["type"] = [*kind, "null"]
        else:
            node = {"anyOf": [node, {"type": "null"}]}
    return node


def _defaults_not_required(node: Any) -> Any:
    """Anthropic's spec marks fields required that real responses omit (``stop_details``, ``citations``,
    ``caller``, usage details…); each of those has a ``default``, which is what makes it omittable."""
    if isinstance(node, list):
        return [_defaults_not_required(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _defaults_not_required(value) for key, value in node.items()}
    properties = node.get("properties")
    if isinstance(properties, dict) and isinstance(node.get("required"), list):
        node["required"] = [
            name
            for name in node["required"]
            if not (isinstance(properties.get(name), dict) and "default" in properties[name])
        ]
    return node


def _validator(spec_file: str, schema_name: str, adapt: Any) -> jsonschema.protocols.Validator:
    spec = orjson.loads((SPECS / spec_file).read_bytes())
    components = adapt(spec["components"])
    root = {"$ref": f"#/components/schemas/{schema_name}", "components": components}
    cls = jsonschema.validators.validator_for(root, default=jsonschema.Draft202012Validator)
    return cls(root)


@functools.cache
def openai_request_validator() -> jsonschema.protocols.Validator:
    return _validator("openai-openapi.json", "CreateChatCompletionRequest", _nullable_to_type)


@functools.cache
def anthropic_validator(schema_name: str) -> jsonschema.protocols.Validator:
    return _validator("anthropic-openapi.json", schema_name, _defaults_not_required)


OPENAI_FUNCTION_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
"""OpenAI's documented rule for function names."""


def assert_valid_chat_request(body: dict[str, Any]) -> None:
    """The body satisfies CreateChatCompletionRequest, and function names satisfy OpenAI's rule."""
    openai_request_validator().validate(body)
    for tool in body.get("tools") or []:
        name = tool["function"]["name"]
        assert OPENAI_FUNCTION_NAME.fullmatch(name), name


def assert_valid_events(events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Every event satisfies MessageStreamEvent, and the accumulated Message satisfies Message."""
    events = list(events)
    event_validator = anthropic_validator("MessageStreamEvent")
    for event in events:
        event_validator.validate(event)
    message = accumulate(events)
    anthropic_validator("Message").validate(message)
    return message


# --- driving the translator ---------------------------------------------------------------------------


def deployment(provider: str = "openai", model: str = "gpt-4o", **kwargs: Any) -> Deployment:
    return Deployment(
        model_name="client-model", provider=provider, upstream_model=model, deployment_id="d1", **kwargs
    )


def context(request: dict[str, Any] | None = None, request_id: str = "req_0123abcd") -> CallContext:
    request = request or {
        "model": "client-model",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    }
    return CallContext(request_id, "client-model", request, {}, SIGNER)


def provider(name: str = "openai") -> OpenAIChatProvider:
    return provider_for_preset(name)


def build(
    request: dict[str, Any],
    *,
    provider: str = "openai",
    model: str = "gpt-4o",
    stream: bool = False,
    **kwargs: Any,
) -> tuple[dict[str, Any], UpstreamRequest, ChatCall]:
    """The upstream body (parsed), request and prepared call for an Anthropic request."""
    call = provider_for_preset(provider).prepare(
        deployment(provider, model, **kwargs), request, context(request), stream=stream
    )
    return orjson.loads(call.request.body), call.request, call


def prepared(target: CallContext | ChatCall | None = None) -> ChatCall:
    """A call prepared as the gateway prepares it (for a context, or the default request)."""
    if isinstance(target, ChatCall):
        return target
    ctx = target or context()
    return provider_for_preset("openai").prepare(deployment(), ctx.request, ctx, stream=True)


def decode_events(data: bytes) -> list[dict[str, Any]]:
    decoder = SSEDecoder()
    frames = decoder.feed(data) + decoder.flush()
    events = []
    for frame in frames:
        event = orjson.loads(frame.data)
        assert frame.event == event["type"]
        events.append(event)
    return events


def reported(translator: StreamTranslator, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``events`` (a whole translated stream), once checked that the translator reports the stop reason
    its ``message_delta`` carried, as the gateway reads it for hooks."""
    deltas = [e["delta"].get("stop_reason") for e in events if e["type"] == "message_delta"]
    assert translator.stop_reason == (deltas[-1] if deltas else None)
    return events


def answered(answer: Answer) -> dict[str, Any]:
    """The Message of a translated answer, once checked that the answer reports its stop reason."""
    message: dict[str, Any] = orjson.loads(answer.body)
    assert answer.stop_reason == message.get("stop_reason")
    return message


def translate(chunks: Iterable[bytes], target: CallContext | ChatCall | None = None) -> list[dict[str, Any]]:
    """Feed upstream chunks through a fresh translator; the Anthropic events it produced."""
    translator = prepared(target).stream_translator()
    out = b"".join(translator.feed(chunk) for chunk in chunks)
    out += translator.finish()
    return reported(translator, decode_events(out))


def parse(completion: dict[str, Any], target: CallContext | ChatCall | None = None) -> dict[str, Any]:
    """The Anthropic Message for a non-streaming completion."""
    return answered(prepared(target).parse_response(orjson.dumps(completion)))


def chunk(
    delta: dict[str, Any] | None = None, finish_reason: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A chat.completion.chunk with one choice."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason, **extra}],
    }


def frames(*payloads: dict[str, Any], done: bool = True) -> list[bytes]:
    out = [b"data: " + orjson.dumps(p) + b"\n\n" for p in payloads]
    if done:
        out.append(b"data: [DONE]\n\n")
    return out


def recording_to_completion(data: bytes) -> dict[str, Any]:
    """The non-streaming completion an upstream would have sent for a recorded stream (choice 0)."""
    decoder = SSEDecoder()
    message: dict[str, Any] = {"role": "assistant", "content": None}
    calls: dict[int, dict[str, Any]] = {}
    completion: dict[str, Any] = {"object": "chat.completion", "choices": []}
    finish_reason = None
    for frame in decoder.feed(data) + decoder.flush():
        if frame.data == "[DONE]":
            continue
        payload = orjson.loads(frame.data)
        completion["id"] = payload.get("id")
        if payload.get("usage"):
            completion["usage"] = payload["usage"]
        for choice in payload.get("choices") or []:
            if choice["index"] != 0:
                continue
            delta = choice.get("delta") or {}
            for key in ("content", "refusal", "reasoning_content", "reasoning"):
                if delta.get(key):
                    message[key] = (message.get(key) or "") + delta[key]
            for call in delta.get("tool_calls") or []:
                entry = calls.setdefault(
                    call["index"], {"type": "function", "function": {"name": "", "arguments": ""}}
                )
                if call.get("id"):
                    entry["id"] = call["id"]
                function = call.get("function") or {}
                entry["function"]["name"] += function.get("name") or ""
                entry["function"]["arguments"] += function.get("arguments") or ""
            finish_reason = choice.get("finish_reason") or finish_reason
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    completion["choices"] = [{"index": 0, "message": message, "finish_reason": finish_reason}]
    return completion
