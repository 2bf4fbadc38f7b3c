"""Shared test tools for the Responses provider: the request validator, recordings, translator drivers."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import orjson

from anygate.protocol.sse import SSEDecoder
from anygate.providers.base import CallContext
from anygate.providers.openai_responses.call import ResponsesCall
from anygate.providers.openai_responses.provider import OpenAIResponsesProvider, provider_for_preset
from tests.conftest import RECORDINGS
from tests.providers.openai_support import (
    SIGNER,
    _nullable_to_type,
    _validator,
    answered,
    decode_events,
    deployment,
    reported,
)

RESPONSES_DIR = RECORDINGS / "openai-responses"


def _overlapping_input_items(components: Any) -> Any:
    """The spec as JSON Schema, with ``InputItem``'s ``oneOf`` read as ``anyOf``: its branches overlap (a
    user message with content parts is both an ``EasyInputMessage`` and an ``Item``), so under ``oneOf``
    the shape OpenAI's own SDKs send would be invalid."""
    components = _nullable_to_type(components)
    item = components["schemas"]["InputItem"]
    item["anyOf"] = item.pop("oneOf")
    return components


@functools.cache
def responses_request_validator() -> jsonschema.protocols.Validator:
    return _validator("openai-openapi.json", "CreateResponse", _overlapping_input_items)


@functools.cache
def input_tokens_validator() -> jsonschema.protocols.Validator:
    return _validator("openai-openapi.json", "TokenCountsBody", _overlapping_input_items)


def assert_valid_responses_request(body: dict[str, Any]) -> None:
    """The body satisfies CreateResponse, and is stateless with its reasoning kept."""
    responses_request_validator().validate(body)
    assert body["store"] is False


# --- recordings --------------------------------------------------------------------------------------


def _frame(line: str) -> bytes:
    payload = orjson.loads(line)
    return b"event: " + payload["type"].encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def _split_responses(frames: list[bytes]) -> list[bytes]:
    """A file holding several answers one after another → one stream per answer."""
    streams: list[list[bytes]] = []
    for frame in frames:
        if frame.startswith(b"event: response.created\n") or not streams:
            streams.append([])
        streams[-1].append(frame)
    return [b"".join(stream) for stream in streams]


def load_recordings() -> dict[str, bytes]:
    """Every recorded answer as the SSE bytes the upstream sent, by name. The AI SDK's fixtures are JSON
    lines (one event each, as that SDK records them); they are framed as the SSE the API sends."""
    out: dict[str, bytes] = {}
    for path in sorted(RESPONSES_DIR.iterdir()):
        if path.name.endswith(".sse"):
            out[path.stem] = path.read_bytes()
        elif path.name.endswith(".chunks.txt"):
            lines = [line for line in path.read_text().splitlines() if line.strip()]
            streams = _split_responses([_frame(line) for line in lines])
            stem = path.name.removesuffix(".chunks.txt")
            for i, stream in enumerate(streams):
                out[stem if len(streams) == 1 else f"{stem}-{i}"] = stream
    return out


RECORDED: dict[str, bytes] = load_recordings()


def events_of(data: bytes) -> list[dict[str, Any]]:
    decoder = SSEDecoder()
    return [orjson.loads(frame.data) for frame in decoder.feed(data) + decoder.flush() if frame.data]


def final_response(data: bytes) -> dict[str, Any] | None:
    """The response object of a recording's terminal event: what a non-streaming call would answer."""
    for event in reversed(events_of(data)):
        if event["type"] in ("response.completed", "response.incomplete", "response.failed"):
            response: dict[str, Any] = event["response"]
            return response
    return None


# --- driving the translator ---------------------------------------------------------------------------


def provider(name: str = "openai") -> OpenAIResponsesProvider:
    return provider_for_preset(name)


def context(request: dict[str, Any] | None = None) -> CallContext:
    request = request or {
        "model": "client-model",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    }
    return CallContext("req_0123abcd", "client-model", request, {}, SIGNER)


def build(
    request: dict[str, Any],
    *,
    preset: str = "openai",
    model: str = "gpt-5",
    stream: bool = False,
    **kwargs: Any,
) -> tuple[dict[str, Any], ResponsesCall]:
    """The upstream body (parsed) and the prepared call for an Anthropic request."""
    call = provider(preset).prepare(
        deployment(preset, model, **kwargs), request, context(request), stream=stream
    )
    return orjson.loads(call.request.body), call


def prepared(request: dict[str, Any] | None = None, model: str = "gpt-5") -> ResponsesCall:
    ctx = context(request)
    return provider("openai").prepare(deployment("openai", model), ctx.request, ctx, stream=True)


def translate(chunks: Iterable[bytes], call: ResponsesCall | None = None) -> list[dict[str, Any]]:
    translator = (call or prepared()).stream_translator()
    out = b"".join(translator.feed(chunk) for chunk in chunks)
    out += translator.finish()
    return reported(translator, decode_events(out))


def parse(response: dict[str, Any], call: ResponsesCall | None = None) -> dict[str, Any]:
    return answered((call or prepared()).parse_response(orjson.dumps(response)))


def sse(*events: dict[str, Any]) -> list[bytes]:
    return [b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events]


def recording_path(name: str) -> Path:
    return RESPONSES_DIR / name
