"""``messages.acreate / create / acount_tokens / count_tokens`` over a :class:`~anygate.gateway.Gateway`.

The gateway produces wire bytes; this module turns them into the official SDK's objects the way the
official client does (``anthropic.types.Message``, ``RawMessageStreamEvent``) and turns failures into the
official SDK's exception classes, so ``except anthropic.RateLimitError`` works the same in-process.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

import anthropic
import httpx2
import orjson
import pydantic
from anthropic._models import construct_type  # the official client's own response constructor
from anthropic.types import Message, MessageTokensCount, RawMessageStreamEvent

from anygate.anthropic.deployments import in_process_deployment
from anygate.anthropic.runner import LoopRunner
from anygate.gateway import Gateway, GatewayResponse
from anygate.protocol.errors import (
    ERROR_TYPE_TO_STATUS,
    GatewayError,
    UpstreamUnreachable,
    client_fault,
    error_body,
)
from anygate.protocol.ids import new_request_id
from anygate.protocol.sse import SSEDecoder

if TYPE_CHECKING:
    from collections.abc import Coroutine

T = TypeVar("T")

_STATUS_TO_EXCEPTION: Final[Mapping[int, type[anthropic.APIStatusError]]] = {
    400: anthropic.BadRequestError,
    401: anthropic.AuthenticationError,
    403: anthropic.PermissionDeniedError,
    404: anthropic.NotFoundError,
    409: anthropic.ConflictError,
    413: anthropic.RequestTooLargeError,
    422: anthropic.UnprocessableEntityError,
    429: anthropic.RateLimitError,
    503: anthropic.ServiceUnavailableError,
    504: anthropic.GatewayTimeoutError,
    529: anthropic.OverloadedError,
}
"""HTTP status → the official SDK's exception class (other 5xx: InternalServerError)."""

_GATEWAY_URL: Final = "anygate://in-process/v1/messages"
_SDK_ONLY_KEYS: Final = frozenset(
    {
        "api_key",
        "api_base",
        "api_version",
        "organization",
        "timeout",
        "extra_headers",
        "extra_body",
        "extra_query",
        "betas",
    }
)
"""Keyword arguments that configure the call rather than form the request body."""


def to_sdk_error(error: GatewayError, request_id: str) -> anthropic.APIError:
    """The official SDK's exception for a gateway error, carrying Anthropic's error body (an
    unreachable upstream is ``APIConnectionError``, as the official client raises for a dead host)."""
    if isinstance(error, UpstreamUnreachable):
        return anthropic.APIConnectionError(
            message=error.message, request=httpx2.Request("POST", _GATEWAY_URL)
        )
    body = orjson.loads(error_body(error.error_type, error.message, request_id))
    response = httpx2.Response(
        error.status,
        headers={"request-id": request_id, **error.headers},
        content=orjson.dumps(body),
        request=httpx2.Request("POST", _GATEWAY_URL),
    )
    cls = _STATUS_TO_EXCEPTION.get(error.status)
    if cls is None:
        cls = anthropic.InternalServerError if error.status >= 500 else anthropic.APIStatusError
    return cls(error.message, response=response, body=body)


_SYNC = LoopRunner("anygate-messages")
"""The loop thread of the module-level synchronous API (``messages.create``); it ends at exit."""


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on the loop that serves the synchronous API, and wait for its result."""
    return _SYNC.run(coroutine)


class AsyncEventStream:
    """The events of a streamed answer as ``RawMessageStreamEvent`` objects (``async for``)."""

    def __init__(self, chunks: AsyncIterator[bytes], request_id: str) -> None:
        self._chunks = chunks
        self._request_id = request_id
        self._decoder = SSEDecoder()
        self._pending: list[RawMessageStreamEvent] = []
        self._done = False

    def __aiter__(self) -> AsyncEventStream:
        return self

    async def __anext__(self) -> RawMessageStreamEvent:
        while not self._pending:
            if self._done:
                raise StopAsyncIteration
            try:
                chunk = await anext(self._chunks)
            except StopAsyncIteration:
                self._done = True
                frames = self._decoder.flush()
            else:
                frames = self._decoder.feed(chunk)
            for frame in frames:
                data = orjson.loads(frame.data)
                if frame.event == "error" or data.get("type") == "error":
                    await self.aclose()
                    error = data.get("error") or {}
                    error_type = str(error.get("type", "api_error"))
                    raise to_sdk_error(
                        GatewayError(
                            ERROR_TYPE_TO_STATUS.get(error_type, 500),
                            str(error.get("message", "")),
                            error_type=error_type,
                        ),
                        str(data.get("request_id") or self._request_id),
                    )
                if data.get("type") == "ping":
                    continue
                self._pending.append(construct_type(type_=RawMessageStreamEvent, value=data))  # type: ignore[arg-type]
        return self._pending.pop(0)

    async def aclose(self) -> None:
        """Stop the stream and release its upstream connection."""
        self._done = True
        closer = getattr(self._chunks, "aclose", None)
        if closer is not None:
            await closer()

    async def __aenter__(self) -> AsyncEventStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class EventStream:
    """The synchronous twin of :class:`AsyncEventStream` (``for event in stream``)."""

    def __init__(self, inner: AsyncEventStream) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[RawMessageStreamEvent]:
        return self

    def __next__(self) -> RawMessageStreamEvent:
        try:
            return _SYNC.run(self._inner.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        _SYNC.run(self._inner.aclose())

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _jsonable(value: object) -> object:
    """orjson's hook for what it cannot serialize itself: the official SDK's models, as the official
    client sends them (so an answer's ``content`` can go straight back into the next request)."""
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_unset=True)
    if isinstance(value, Iterable) and not isinstance(value, str | bytes | Mapping):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def as_json_body(body: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of a call as the JSON the proxy would receive for them.

    SDK callers pass Python objects (models, tuples, integers wider than 64 bits); one round trip makes
    the in-process path see exactly what the proxy sees after parsing a request, where such integers
    become floats. Anything that is not JSON is a 400, as it would be over HTTP.
    """
    try:
        try:
            parsed = orjson.loads(orjson.dumps(body, default=_jsonable))
        except TypeError as exc:
            if "64-bit" not in str(exc):
                raise
            parsed = orjson.loads(json.dumps(body, default=_jsonable))
    except (TypeError, ValueError) as exc:
        raise client_fault(exc) or GatewayError(400, f"the request is not valid JSON: {exc}") from None
    assert isinstance(parsed, dict)
    return parsed


class Messages:
    """``messages.*`` bound to one gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    def _call(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str], list[Any] | None]:
        """The request body, the client headers and the explicit deployment (if any) of a call."""
        body = {k: v for k, v in kwargs.items() if k not in _SDK_ONLY_KEYS and v is not None}
        extra_body = kwargs.get("extra_body")
        if extra_body:
            body.update(extra_body)
        body = as_json_body(body)
        headers = {str(k).lower(): str(v) for k, v in (kwargs.get("extra_headers") or {}).items()}
        betas = kwargs.get("betas")
        if betas:
            headers["anthropic-beta"] = ",".join(betas)
        explicit = None
        has_endpoint = kwargs.get("api_key") is not None or kwargs.get("api_base") is not None
        if has_endpoint or not self._gateway.config.deployments:
            model = body.get("model")
            if not isinstance(model, str) or not model:
                raise to_sdk_error(GatewayError(400, "model: Field required"), "req_local")
            explicit = [
                in_process_deployment(
                    model,
                    api_key=kwargs.get("api_key"),
                    api_base=kwargs.get("api_base"),
                    timeout=kwargs.get("timeout"),
                    extra_headers=kwargs.get("extra_headers"),
                    api_version=kwargs.get("api_version"),
                    organization=kwargs.get("organization"),
                )
            ]
        return body, headers, explicit

    async def acreate(self, **kwargs: Any) -> Any:
        """Create a message: a ``Message``, or an :class:`AsyncEventStream` when ``stream=True``."""
        request_id = new_request_id()
        try:
            body, headers, explicit = self._call(kwargs)
            response = await self._gateway.create_message(
                body, headers=headers, request_id=request_id, deployments=explicit
            )
        except GatewayError as exc:
            raise to_sdk_error(exc, request_id) from None
        except orjson.JSONEncodeError as exc:
            raise to_sdk_error(client_fault(exc) or _internal(exc), request_id) from None
        return _message_or_stream(response, request_id)

    def create(self, **kwargs: Any) -> Any:
        """The synchronous twin of :meth:`acreate` (an :class:`EventStream` when ``stream=True``)."""
        result = _SYNC.run(self.acreate(**kwargs))
        return EventStream(result) if isinstance(result, AsyncEventStream) else result

    async def acount_tokens(self, **kwargs: Any) -> MessageTokensCount:
        """Count a request's input tokens (``{"input_tokens": N}``), as the upstream would see them."""
        request_id = new_request_id()
        try:
            body, headers, explicit = self._call(kwargs)
            body.pop("max_tokens", None)
            body.pop("stream", None)
            response = await self._gateway.count_tokens(
                body, headers=headers, request_id=request_id, deployments=explicit
            )
        except GatewayError as exc:
            raise to_sdk_error(exc, request_id) from None
        except orjson.JSONEncodeError as exc:
            raise to_sdk_error(client_fault(exc) or _internal(exc), request_id) from None
        assert response.body is not None
        return MessageTokensCount.model_validate_json(response.body)

    def count_tokens(self, **kwargs: Any) -> MessageTokensCount:
        """The synchronous twin of :meth:`acount_tokens`."""
        return _SYNC.run(self.acount_tokens(**kwargs))


def _internal(exc: Exception) -> GatewayError:
    return GatewayError(500, f"internal error in the gateway: {type(exc).__name__}")


def _message_or_stream(response: GatewayResponse, request_id: str) -> Message | AsyncEventStream:
    if response.stream is not None:
        return AsyncEventStream(response.stream, request_id)
    assert response.body is not None
    return construct_type(type_=Message, value=orjson.loads(response.body))  # type: ignore[return-value]


def default_messages() -> Messages:
    """``messages`` over a gateway with no config: models are ``<provider>/<model>`` names."""
    return Messages(Gateway())
