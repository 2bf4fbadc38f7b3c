"""Claude on Bedrock: InvokeModel / InvokeModelWithResponseStream with the native Anthropic body.

The request is the client's Anthropic request with ``model`` and ``stream`` removed (they go in the URL),
``anthropic_version: bedrock-2023-05-31``, the client's ``anthropic-beta`` values that Bedrock accepts in
``anthropic_beta``, and the fields Bedrock rejects left out (:data:`INVOKE_FIELDS` is what is kept).

The answer is Anthropic's own: a Message, or Anthropic stream events, each inside an event-stream
``chunk`` message as base64 ``bytes`` in a JSON payload. They are relayed as SSE as they come, watched
by the passthrough's :class:`~anygate.providers.anthropic.StreamWatch` for usage and the end. Some
regions report cache usage only in ``message_start``; the ``message_delta`` that closes the stream gets
the figures it lacks from what ``message_start`` said, so the final usage always has them.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Final

import orjson

from anygate.hooks import Usage
from anygate.protocol.errors import UpstreamFailure
from anygate.providers.anthropic import StreamWatch, strip_gateway_thinking
from anygate.providers.base import Answer
from anygate.providers.bedrock.errors import stream_exception
from anygate.providers.bedrock.eventstream import Event, EventStreamDecoder

BEDROCK_ANTHROPIC_VERSION: Final = "bedrock-2023-05-31"

BEDROCK_BETAS: Final = frozenset(
    {
        "computer-use-2024-10-22",
        "computer-use-2025-01-24",
        "token-efficient-tools-2025-02-19",
        "interleaved-thinking-2025-05-14",
        "output-128k-2025-02-19",
        "dev-full-thinking-2025-05-14",
        "context-1m-2025-08-07",
        "context-management-2025-06-27",
        "effort-2025-11-24",
        "tool-search-tool-2025-10-19",
        "tool-examples-2025-10-29",
    }
)
"""The ``anthropic_beta`` values Bedrock's Claude models accept (AWS's documented list); Bedrock answers
400 "invalid beta flag" to any other, and Claude Code sends several others, so the rest are dropped."""

INVOKE_FIELDS: Final[Mapping[str, str | None]] = {
    "messages": None,
    "system": None,
    "max_tokens": None,
    "metadata": None,
    "stop_sequences": None,
    "temperature": None,
    "top_p": None,
    "top_k": None,
    "tools": None,
    "tool_choice": None,
    "thinking": None,
    "context_management": "context-management-2025-06-27",
    "output_config": "effort-2025-11-24",
}
"""Request fields sent to Bedrock → the beta they need there (None: always). Everything else
(``service_tier``, ``container``, ``mcp_servers``, structured-output formats…) Bedrock rejects."""

TOOL_KEYS_REJECTED: Final = frozenset({"defer_loading", "allowed_callers", "eager_input_streaming", "strict"})
"""Tool fields of newer Anthropic betas that Bedrock rejects ("Extra inputs are not permitted")."""
THINKING_KEYS_REJECTED: Final = frozenset({"display"})
OUTPUT_CONFIG_KEYS: Final = frozenset({"effort"})

MESSAGE_STOP_FRAME: Final = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
"""``message_stop`` without Bedrock's ``amazon-bedrock-invocationMetrics``."""
_USAGE_FIELDS: Final = (
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
)


def client_betas(headers: Mapping[str, str]) -> list[str]:
    """The client's ``anthropic-beta`` values that Bedrock accepts, in order."""
    raw = headers.get("anthropic-beta") or ""
    return [beta for beta in (b.strip() for b in raw.split(",")) if beta in BEDROCK_BETAS]


def invoke_body(request: dict[str, Any], betas: list[str]) -> dict[str, Any]:
    """The InvokeModel body for an Anthropic request."""
    request = strip_gateway_thinking(request)
    body: dict[str, Any] = {"anthropic_version": BEDROCK_ANTHROPIC_VERSION}
    for field, beta in INVOKE_FIELDS.items():
        value = request.get(field)
        if value is None or (beta is not None and beta not in betas):
            continue
        if field == "tools" and isinstance(value, list):
            value = [_tool(tool) for tool in value]
        elif field == "thinking" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in THINKING_KEYS_REJECTED}
        elif field == "output_config" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k in OUTPUT_CONFIG_KEYS}
            if not value:
                continue
        body[field] = value
    if betas:
        body["anthropic_beta"] = betas
    return body


def _tool(tool: object) -> object:
    if isinstance(tool, dict) and not TOOL_KEYS_REJECTED.isdisjoint(tool):
        return {k: v for k, v in tool.items() if k not in TOOL_KEYS_REJECTED}
    return tool


def parse_invoke_response(body: bytes) -> Answer:
    """InvokeModel's answer is an Anthropic Message: relayed as it is, once checked to be one."""
    parsed = orjson.loads(body)
    if not isinstance(parsed, dict) or parsed.get("type") != "message":
        raise ValueError("the Bedrock answer is not an Anthropic Message")
    return Answer.of(parsed, body=body)


class InvokeStreamTranslator:
    """InvokeModelWithResponseStream's ``chunk`` messages → the Anthropic SSE frames inside them."""

    __slots__ = ("_decoder", "_watch")

    def __init__(self) -> None:
        self._decoder = EventStreamDecoder()
        self._watch = StreamWatch()

    @property
    def usage(self) -> Usage:
        return self._watch.usage

    @property
    def stop_reason(self) -> str | None:
        return self._watch.stop_reason

    def feed(self, chunk: bytes) -> bytes:
        frames = self._decoder.feed(chunk)
        if not frames:
            return b""
        return b"".join(self._frame(frame) for frame in frames)

    def finish(self) -> bytes:
        out = b"".join(self._frame(frame) for frame in self._decoder.flush())
        if not self._watch.ended:
            raise UpstreamFailure(502, "the Bedrock stream ended before message_stop", error_type="api_error")
        return out

    def _frame(self, frame: Event) -> bytes:
        if frame.message_type != "event":
            raise stream_exception(frame.exception_type, frame.payload)
        if frame.event_type != "chunk":
            return b""
        wrapper = orjson.loads(frame.payload)
        encoded = wrapper.get("bytes") if isinstance(wrapper, dict) else None
        if not isinstance(encoded, str):
            raise ValueError("a Bedrock chunk has no bytes")
        try:
            data = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise ValueError("a Bedrock chunk's bytes are not base64") from exc
        event = orjson.loads(data)
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise ValueError("a Bedrock chunk is not an Anthropic event")
        kind: str = event["type"]
        if kind == "message_stop":
            self._watch.observe(kind, event)
            return MESSAGE_STOP_FRAME
        if kind == "message_delta":
            event, data = self._complete_usage(event, data)
        self._watch.observe(kind, event)
        if b"\n" in data:  # a pretty-printed event would break SSE framing
            data = orjson.dumps(event)
        return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"

    def _complete_usage(self, event: dict[str, Any], data: bytes) -> tuple[dict[str, Any], bytes]:
        """The ``message_delta`` with the usage figures it lacks taken from ``message_start``."""
        usage = event.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        known = self._watch.usage
        missing = {
            name: getattr(known, name)
            for name in _USAGE_FIELDS
            if not usage.get(name) and getattr(known, name)
        }
        if not missing:
            return event, data
        event = {**event, "usage": {**usage, **missing}}
        return event, orjson.dumps(event)


def count_tokens_body(request: dict[str, Any], betas: list[str]) -> bytes:
    """The CountTokens body: the InvokeModel body (with a ``max_tokens``, which it requires) as base64."""
    body = invoke_body({**request, "max_tokens": request.get("max_tokens") or 1}, betas)
    encoded = base64.b64encode(orjson.dumps(body)).decode()
    return orjson.dumps({"input": {"invokeModel": {"body": encoded}}})
