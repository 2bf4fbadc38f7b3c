"""Shared test tools for the Gemini and Vertex providers: request validation against the official
google-genai types, recordings, translator drivers."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from google.genai import types as genai

from anygate.deployment import Deployment
from anygate.providers.base import CallContext
from anygate.providers.google.call import GeminiCall
from anygate.providers.google.provider import GeminiProvider, VertexProvider
from tests.conftest import RECORDINGS
from tests.providers.openai_support import SIGNER, answered, decode_events, reported

GEMINI = RECORDINGS / "gemini"
STREAM_RECORDINGS = sorted([*GEMINI.glob("*.sse"), *GEMINI.glob("*.chunks.txt")])
STREAM_IDS = [path.name.split(".")[0] for path in STREAM_RECORDINGS]
ANSWER_RECORDINGS = sorted(p for p in GEMINI.glob("*.json") if "429" not in p.name)
ANSWER_IDS = [path.stem for path in ANSWER_RECORDINGS]

REQUEST_FIELDS = {
    "contents": genai.Content,
    "systemInstruction": genai.Content,
    "toolConfig": genai.ToolConfig,
    "generationConfig": genai.GenerationConfig,
}


def assert_valid_gemini_request(body: dict[str, Any]) -> None:
    """Every field of a ``generateContent`` body validates against google-genai's (strict) types."""
    assert set(body) <= {*REQUEST_FIELDS, "tools"}, sorted(body)
    for content in body["contents"]:
        genai.Content.model_validate(content)
        assert content["role"] in ("user", "model")
        assert content["parts"], "Gemini rejects a content without parts"
    if "systemInstruction" in body:
        genai.Content.model_validate(body["systemInstruction"])
    for tool in body.get("tools") or []:
        genai.Tool.model_validate(tool)
    for key in ("toolConfig", "generationConfig"):
        if key in body:
            REQUEST_FIELDS[key].model_validate(body[key])


def stream_bytes(path: Path) -> bytes:
    """A recording as the SSE bytes Google sends (``.chunks.txt`` holds one JSON chunk per line)."""
    data = path.read_bytes()
    if path.name.endswith(".chunks.txt"):
        return b"".join(b"data: " + line + b"\r\n\r\n" for line in data.splitlines() if line.strip())
    return data


def stream_payloads(data: bytes) -> list[dict[str, Any]]:
    from anygate.protocol.sse import SSEDecoder

    decoder = SSEDecoder()
    return [orjson.loads(frame.data) for frame in decoder.feed(data) + decoder.flush() if frame.data]


def stream_to_answer(data: bytes) -> dict[str, Any]:
    """The non-streaming answer Gemini would have sent for a stream: every chunk's parts in order, the
    last usage and finish reason."""
    parts: list[dict[str, Any]] = []
    answer: dict[str, Any] = {}
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    for payload in stream_payloads(data):
        for key in ("usageMetadata", "modelVersion", "responseId", "promptFeedback"):
            if key in payload:
                answer[key] = payload[key]
        for streamed in payload.get("candidates") or []:
            parts.extend((streamed.get("content") or {}).get("parts") or [])
            if streamed.get("finishReason"):
                candidate["finishReason"] = streamed["finishReason"]
    answer["candidates"] = [candidate]
    return answer


def deployment(provider: str = "gemini", model: str = "gemini-3-pro-preview", **kwargs: Any) -> Deployment:
    return Deployment(
        model_name="client-model", provider=provider, upstream_model=model, deployment_id="g1", **kwargs
    )


def context(request: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> CallContext:
    request = request or {
        "model": "client-model",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    }
    return CallContext("req_0123abcd", "client-model", request, headers or {}, SIGNER)


def vertex_deployment(model: str = "gemini-2.5-pro", **params: Any) -> Deployment:
    return deployment(
        "vertex_ai", model, params={"vertex_project": "proj", "vertex_location": "us-central1", **params}
    )


def prepare(
    request: dict[str, Any],
    *,
    backend: str = "gemini",
    model: str = "gemini-3-pro-preview",
    stream: bool = True,
) -> GeminiCall:
    ctx = context(request)
    if backend == "gemini":
        return GeminiProvider().prepare(
            deployment("gemini", model, api_key="AIza-test"), request, ctx, stream=stream
        )
    call = VertexProvider().prepare(vertex_deployment(model), request, ctx, stream=stream)
    assert isinstance(call, GeminiCall)
    return call


def body_of(request: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(prepare(request, **kwargs).request.body)
    assert_valid_gemini_request(body)
    return body


def translate(chunks: Iterable[bytes], call: GeminiCall | None = None) -> list[dict[str, Any]]:
    translator = (call or prepare(context().request)).stream_translator()
    out = b"".join(translator.feed(chunk) for chunk in chunks)
    out += translator.finish()
    return reported(translator, decode_events(out))


def parse(answer: dict[str, Any], call: GeminiCall | None = None) -> dict[str, Any]:
    return answered((call or prepare(context().request)).parse_response(orjson.dumps(answer)))
