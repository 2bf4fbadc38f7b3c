"""Anthropic passthrough: the request goes upstream as the client sent it, with only ``model`` rewritten.

Responses and streams come back byte for byte; a copy of the stream is decoded only far enough to read
usage and to notice a stream that ends without ``message_stop``. The one change to a request body: thinking
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
from anygate.protocol.sse import SSEDecoder
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
    return (
        isinstance(block, dict)
        and block.get("type") == "thinking"
        and is_gateway_signature(block.get("signature"))
    )


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
        return PassthroughCall(self._request(deployment, request, ctx, "/messages"))

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

    def parse_response(self, body: bytes) -> Answer:
        """The upstream's bytes unchanged, once checked to be a Message (a truncated or non-JSON body
        from a misbehaving proxy in between is a retryable upstream failure, not an answer)."""
        parsed = orjson.loads(body)
        if not isinstance(parsed, dict) or parsed.get("type") != "message":
            raise ValueError("not an Anthropic Message")
        return Answer(body, Usage.from_anthropic(parsed.get("usage")))

    def stream_translator(self) -> PassthroughStream:
        return PassthroughStream()


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


class PassthroughStream:
    """Relays an Anthropic stream unchanged while watching it for usage and a proper end."""

    __slots__ = ("_decoder", "_ended", "_pending", "usage")

    def __init__(self) -> None:
        self._decoder = SSEDecoder()
        self._ended = False
        self._pending = b""
        self.usage = Usage()

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
        return data[:cut] if self._pending else data

    def finish(self) -> bytes:
        for frame in self._decoder.flush():
            self._observe(frame.event, frame.data)
        tail, self._pending = self._pending, b""
        if not self._ended:
            raise UpstreamFailure(
                502, "the upstream stream ended before message_stop", error_type="api_error"
            )
        return tail

    def _observe(self, event: str | None, data: str) -> None:
        if event in ("message_stop", "error"):
            self._ended = True
        elif event == "message_start" or event == "message_delta":
            payload = orjson.loads(data)
            if not isinstance(payload, dict):
                raise ValueError(f"{event} is not a JSON object")
            carrier = payload.get("message") if event == "message_start" else payload
            if isinstance(carrier, dict):
                self.usage.update(carrier.get("usage"))
