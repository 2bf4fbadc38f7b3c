"""Anthropic passthrough: the request goes upstream as the client sent it, with only ``model`` rewritten.

Responses and streams come back as they came, except ``model``, which names what the client asked for (as
every translated answer does): a JSON answer is parsed once anyway and re-serialized only when its model
differs; in a stream only the ``message_start`` frame is rewritten, every other byte is relayed as it
arrived. A copy of the stream is decoded only far enough to read usage and to notice a stream that ends
without ``message_stop``. The one change to a request body: thinking
blocks that anygate itself made from another provider's reasoning are dropped, because Anthropic rejects
signatures it did not issue (genuine Anthropic signatures are never touched).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from anygate.deployment import Deployment
from anygate.hooks import Usage
from anygate.protocol.errors import GatewayError, UpstreamFailure, upstream_error
from anygate.protocol.redact import mask_secrets_bytes
from anygate.protocol.sse import SSEDecoder, encode_event
from anygate.providers.base import Answer, CallContext, StaticCredentials, UpstreamRequest
from anygate.providers.upstream_errors import credentials_rejected, retry_headers
from anygate.signing import is_gateway_signature
from anygate.tokens import estimate_request_tokens

DEFAULT_API_BASE: Final = "https://api.anthropic.com"
DEFAULT_ANTHROPIC_VERSION: Final = "2023-06-01"
FORWARDED_CLIENT_HEADERS: Final = ("anthropic-version", "anthropic-beta")
"""The only client headers sent upstream; everything else (the client's key included) stays behind."""


def _endpoint(api_base: str | None, path: str) -> str:
    base = (api_base or DEFAULT_API_BASE).rstrip("/")
    if base.endswith("/v1/messages"):
        base = base[: -len("/messages")]
    if not base.endswith("/v1"):
        base += "/v1"
    return base + path


def strip_gateway_thinking(request: dict[str, Any]) -> dict[str, Any]:
    """The request without thinking blocks signed by a gateway (copies only what changes).

    An assistant message left with no content is dropped: Anthropic rejects empty content, and it joins
    the consecutive user turns that result, as it always does.
    """
    messages = request["messages"]
    changed: list[Any] | None = None
    for i, message in enumerate(messages):
        content = message.get("content")
        if message.get("role") != "assistant" or not isinstance(content, list):
            continue
        kept = [block for block in content if not _is_gateway_thinking(block)]
        if len(kept) != len(content):
            if changed is None:
                changed = list(messages)
            changed[i] = {**message, "content": kept} if kept else None
    if changed is None:
        return request
    return {**request, "messages": [message for message in changed if message is not None]}


def _is_gateway_thinking(block: object) -> bool:
    """A thinking block signed by the gateway, or a redacted one carrying a gateway envelope."""
    if not isinstance(block, dict):
        return False
    kind = block.get("type")
    if kind == "thinking":
        return is_gateway_signature(block.get("signature"))
    return kind == "redacted_thinking" and is_gateway_signature(block.get("data"))


class AnthropicProvider(StaticCredentials):
    """The Anthropic Messages API itself."""

    name = "anthropic"
    api_key_env: Final = ("ANTHROPIC_API_KEY",)

    def _headers(self, deployment: Deployment, ctx: CallContext) -> dict[str, str]:
        headers = {"content-type": "application/json", "anthropic-version": DEFAULT_ANTHROPIC_VERSION}
        for name in FORWARDED_CLIENT_HEADERS:
            value = ctx.client_headers.get(name)
            if value:
                headers[name] = value
        if deployment.api_key:
            headers["x-api-key"] = deployment.api_key
        headers.update(deployment.extra_headers)
        return headers

    def _request(
        self, deployment: Deployment, request: dict[str, Any], ctx: CallContext, path: str
    ) -> UpstreamRequest:
        body = orjson.dumps({**strip_gateway_thinking(request), "model": deployment.upstream_model})
        return UpstreamRequest(
            "POST", _endpoint(deployment.api_base, path), self._headers(deployment, ctx), body
        )

    def prepare(
        self, deployment: Deployment, request: dict[str, Any], ctx: CallContext, *, stream: bool
    ) -> PassthroughCall:
        return PassthroughCall(self._request(deployment, request, ctx, "/messages"), ctx.requested_model)

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
        if status in (401, 403):
            return credentials_rejected(status)
        error_type: str | None = None
        message = f"upstream returned HTTP {status}"
        try:
            parsed = orjson.loads(body)
            error = parsed.get("error") if isinstance(parsed, dict) else None
            if isinstance(error, dict):
                error_type = error.get("type") if isinstance(error.get("type"), str) else None
                message = str(error.get("message") or message)
        except orjson.JSONDecodeError:
            pass
        return upstream_error(status, message, error_type=error_type, headers=retry_headers(headers))

    def prepare_count_tokens(
        self, deployment: Deployment, request: dict[str, Any], ctx: CallContext
    ) -> CountTokensCall:
        return CountTokensCall(self._request(deployment, request, ctx, "/messages/count_tokens"))

    def count_tokens_locally(self, deployment: Deployment, request: dict[str, Any]) -> int:
        return estimate_request_tokens(request)


@dataclass(slots=True)
class PassthroughCall:
    """A Messages request sent as it came; the answer is relayed as it comes."""

    request: UpstreamRequest
    model: str
    """The model name the client asked for, which the answer reports."""

    def parse_response(self, body: bytes) -> Answer:
        """The upstream's bytes, once checked to be a Message (a truncated or non-JSON body from a
        misbehaving proxy in between is a retryable upstream failure, not an answer), with ``model``
        set to the name the client asked for (re-serialized only when it differs)."""
        parsed = orjson.loads(body)
        if not isinstance(parsed, dict) or parsed.get("type") != "message":
            raise ValueError("not an Anthropic Message")
        if parsed.get("model") != self.model:
            parsed["model"] = self.model
            body = orjson.dumps(parsed)
        return Answer.of(parsed, body=body)

    def stream_translator(self) -> PassthroughStream:
        return PassthroughStream(self.model)


@dataclass(slots=True)
class CountTokensCall:
    """``POST /v1/messages/count_tokens`` upstream."""

    request: UpstreamRequest

    def parse(self, body: bytes) -> int:
        parsed = orjson.loads(body)
        tokens = parsed.get("input_tokens") if isinstance(parsed, dict) else None
        if not isinstance(tokens, int):
            raise ValueError("the upstream count_tokens answer has no input_tokens")
        return tokens


class StreamWatch:
    """Usage, stop reason and the end of an Anthropic event stream, observed as the events pass (the
    passthrough and Claude on Bedrock relay Anthropic events and watch them the same way)."""

    __slots__ = ("ended", "failed", "stop_reason", "usage")

    WATCHED: Final = frozenset({"message_start", "message_delta"})
    """Events whose payload the watch reads; others need not be parsed."""

    def __init__(self) -> None:
        self.ended = False
        self.failed = False
        """The upstream sent an ``error`` event (its text may echo a key: relayed bytes are masked)."""
        self.usage = Usage()
        self.stop_reason: str | None = None
        """The ``message_delta``'s stop reason (read from the payload parsed for its usage anyway)."""

    def observe(self, event: str | None, payload: object) -> None:
        """One event: its type and (for :data:`WATCHED` events) its parsed JSON payload."""
        if event in ("message_stop", "error"):
            self.ended = True
            self.failed = event == "error"
        elif event in self.WATCHED:
            if not isinstance(payload, dict):
                raise ValueError(f"{event} is not a JSON object")
            carrier = payload.get("message") if event == "message_start" else payload
            if isinstance(carrier, dict):
                self.usage.update(carrier.get("usage"))
            if event == "message_delta":
                delta = payload.get("delta")
                stop_reason = delta.get("stop_reason") if isinstance(delta, dict) else None
                if isinstance(stop_reason, str):
                    self.stop_reason = stop_reason


class PassthroughStream:
    """Relays an Anthropic stream unchanged while watching it for usage and a proper end; only the
    ``model`` of its ``message_start`` frame is set to the name the client asked for."""

    __slots__ = ("_decoder", "_model", "_pending", "_start_frame", "_watch")

    def __init__(self, model: str | None = None) -> None:
        self._decoder = SSEDecoder()
        self._watch = StreamWatch()
        self._model = model
        """The name to report; None once the ``message_start`` frame went out (or needs no change)."""
        self._pending = b""
        self._start_frame: bytes | None = None
        """The rewritten ``message_start`` frame, between reading it and relaying it."""

    @property
    def usage(self) -> Usage:
        return self._watch.usage

    @property
    def stop_reason(self) -> str | None:
        return self._watch.stop_reason

    def feed(self, chunk: bytes) -> bytes:
        """Relay everything up to the last complete frame; hold back only a trailing partial frame, so
        that a ping or error frame can never land inside one."""
        for frame in self._decoder.feed(chunk):
            self._observe(frame.event, frame.data)
        data = self._pending + chunk if self._pending else chunk
        lf, crlf = data.rfind(b"\n\n"), data.rfind(b"\r\n\r\n")
        cut = max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)
        if cut == 0:
            self._pending = data
            return b""
        self._pending = data[cut:]
        out = data[:cut] if self._pending else data
        if self._start_frame is not None:
            out = self._rewrite_start(out)
        return mask_secrets_bytes(out) if self._watch.failed else out  # an error frame may echo a key

    def _rewrite_start(self, out: bytes) -> bytes:
        """``out`` with its ``message_start`` frame replaced by :attr:`_start_frame` (the frame is whole
        in ``out``: only complete frames are relayed)."""
        begin = out.find(b"event: message_start")
        if begin < 0:
            begin = out.find(b"event:message_start")
        if begin < 0:  # a frame without an event line: leave it
            self._start_frame = None
            return out
        ends = [i for i in (out.find(b"\n\n", begin), out.find(b"\r\n\r\n", begin)) if i >= 0]
        end = min(ends)
        end += 4 if out.startswith(b"\r\n\r\n", end) else 2
        frame, self._start_frame = self._start_frame or b"", None
        return out[:begin] + frame + out[end:]

    def finish(self) -> bytes:
        for frame in self._decoder.flush():
            self._observe(frame.event, frame.data)
        tail, self._pending = self._pending, b""
        if self._watch.failed:
            tail = mask_secrets_bytes(tail)
        if not self._watch.ended:
            raise UpstreamFailure(
                502, "the upstream stream ended before message_stop", error_type="api_error"
            )
        return tail

    def _observe(self, event: str | None, data: str) -> None:
        payload = orjson.loads(data) if event in StreamWatch.WATCHED else None
        self._watch.observe(event, payload)
        if event == "message_start" and self._model is not None and isinstance(payload, dict):
            carrier = payload.get("message")
            if isinstance(carrier, dict) and carrier.get("model") != self._model:
                carrier["model"] = self._model
                self._start_frame = encode_event(payload)
            self._model = None
