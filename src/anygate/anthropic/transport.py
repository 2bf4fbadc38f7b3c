"""The gateway as the official client's HTTP transport: requests go to the gateway in-process, no socket.

The official ``anthropic`` client builds every request (retries, timeouts, headers, betas, helpers) and
decodes every answer (typed models, stream events, exceptions); this transport only stands where the
network would be. It answers the routes the client calls with what the proxy would send for them, from
the same :class:`~anygate.gateway.Gateway` methods, so the two faces cannot drift apart::

    POST /v1/messages                 Gateway.create_message (JSON, or the SSE bytes as they are made)
    POST /v1/messages/count_tokens    Gateway.count_tokens
    GET  /v1/models[/{model_id}]      Gateway.models

Failures become what the client would get from the network: a :class:`~anygate.protocol.errors.
GatewayError` is an HTTP answer in Anthropic's error format (the client raises its exception for the
status), an unreachable upstream is ``httpx2.ConnectError`` (``APIConnectionError``), and the client's
own timeout is ``httpx2.ReadTimeout`` (``APITimeoutError``).

:class:`GatewayTransport` is the async transport; :class:`SyncGatewayTransport` drives it from
synchronous code through a :class:`~anygate.anthropic.runner.LoopRunner`, whose shutdown is the
transport's ``close()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Final

import httpx2
import orjson

from anygate.anthropic.deployments import in_process_deployment
from anygate.anthropic.runner import LoopRunner
from anygate.deployment import Deployment
from anygate.gateway import Gateway, GatewayResponse
from anygate.protocol.errors import GatewayError, UpstreamUnreachable, client_fault
from anygate.protocol.ids import new_request_id
from anygate.providers.registry import SPECS, split_model

IN_PROCESS_URL: Final = "http://anygate.in-process"
"""The base URL the in-process clients send to; nothing listens there, the transport answers."""
MODELS_PATH: Final = "/v1/models"
JSON_CONTENT_TYPE: Final = "application/json"
SSE_CONTENT_TYPE: Final = "text/event-stream; charset=utf-8"


class GatewayTransport(httpx2.AsyncBaseTransport):
    """An ``httpx2`` transport whose answers come from a gateway in the same process.

    Args:
        gateway: the gateway that serves the requests.
        by_config: route model names through the gateway's config; otherwise every request names
            ``<provider>/<model>`` and is served by a one-off deployment with the caller's key
            (the request's ``x-api-key`` / bearer token, else the provider's variable) and ``api_base``.
        api_base: the upstream base URL of those one-off deployments (the provider's default if None).
        owns_gateway: close the gateway with the transport (not when the caller passed its own).
    """

    def __init__(
        self, gateway: Gateway, *, by_config: bool, api_base: str | None = None, owns_gateway: bool = True
    ) -> None:
        self.gateway = gateway
        self.by_config = by_config
        self.api_base = api_base
        self.owns_gateway = owns_gateway

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return await self.serve(request, await request.aread())

    async def aclose(self) -> None:
        if self.owns_gateway:
            await self.gateway.aclose()

    async def serve(self, request: httpx2.Request, body: bytes) -> httpx2.Response:
        """The answer to ``request`` (whose body is ``body``), within the client's read timeout."""
        request_id = new_request_id()
        timeout = _read_timeout(request)
        try:
            async with asyncio.timeout(timeout) as scope:
                answer = await self._answer(request, body, request_id)
        except TimeoutError:
            if not scope.expired():
                raise
            raise httpx2.ReadTimeout(f"no answer within {timeout:g}s", request=request) from None
        except UpstreamUnreachable as exc:
            raise httpx2.ConnectError(exc.message, request=request) from None
        except GatewayError as exc:
            return _error_response(request, exc, request_id)
        except orjson.JSONEncodeError as exc:
            fault = client_fault(exc)
            if fault is None:
                raise
            return _error_response(request, fault, request_id)
        headers = {"request-id": request_id, **answer.headers}
        if answer.stream is not None:
            headers["content-type"] = SSE_CONTENT_TYPE
            stream = AsyncBody(answer.stream, timeout, request)
            return httpx2.Response(200, headers=headers, stream=stream, request=request)
        headers["content-type"] = JSON_CONTENT_TYPE
        return httpx2.Response(answer.status, headers=headers, content=answer.body or b"", request=request)

    async def _answer(self, request: httpx2.Request, body: bytes, request_id: str) -> GatewayResponse:
        method, path = request.method, request.url.path.rstrip("/")
        if method == "GET" and (path == MODELS_PATH or path.startswith(MODELS_PATH + "/")):
            model_id = path[len(MODELS_PATH) + 1 :] or None
            return GatewayResponse(body=self._models(model_id, dict(request.url.params)))
        if method != "POST" or path not in ("/v1/messages", "/v1/messages/count_tokens"):
            raise GatewayError(404, f"no route for {method} {path}")
        try:
            parsed = orjson.loads(body) if body else None
        except orjson.JSONDecodeError as exc:
            raise GatewayError(400, f"the request body is not valid JSON: {exc}") from None
        headers = {name.lower(): value for name, value in request.headers.items()}
        deployments = self._deployments(parsed, headers)
        if path == "/v1/messages":
            return await self.gateway.create_message(
                parsed, headers=headers, request_id=request_id, deployments=deployments
            )
        return await self.gateway.count_tokens(
            parsed, headers=headers, request_id=request_id, deployments=deployments
        )

    def _deployments(self, body: object, headers: Mapping[str, str]) -> list[Deployment] | None:
        """The one-off deployment of a request without config (None: the config routes it, or the
        request has no model, which validation reports)."""
        if self.by_config:
            return None
        model = body.get("model") if isinstance(body, dict) else None
        if not isinstance(model, str) or not model:
            return None
        return [in_process_deployment(model, api_key=caller_key(headers), api_base=self.api_base)]

    def _models(self, model_id: str | None, query: dict[str, str]) -> bytes:
        if model_id is not None and not self.by_config:
            split = split_model(model_id)
            if split is None or split[0] not in SPECS:
                raise GatewayError(404, f"cannot route model {model_id!r}: write it as '<provider>/<model>'")
            return orjson.dumps(self.gateway.model_entry(model_id))
        return self.gateway.models(model_id, query)


def caller_key(headers: Mapping[str, str]) -> str | None:
    """The key the client sent (``x-api-key``, or ``Authorization: Bearer``), if any."""
    key = headers.get("x-api-key")
    if key:
        return key
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _read_timeout(request: httpx2.Request) -> float | None:
    """The client's read timeout for this request (seconds; None: none)."""
    timeouts: Any = request.extensions.get("timeout") or {}
    value = timeouts.get("read") if isinstance(timeouts, dict) else None
    return float(value) if isinstance(value, int | float) else None


def _error_response(request: httpx2.Request, error: GatewayError, request_id: str) -> httpx2.Response:
    headers = {"request-id": request_id, "content-type": JSON_CONTENT_TYPE, **error.headers}
    return httpx2.Response(error.status, headers=headers, content=error.body(request_id), request=request)


class AsyncBody(httpx2.AsyncByteStream):
    """A streamed answer's bytes, as the gateway makes them (never buffered), each within the client's
    read timeout; closing it lets go of the upstream at once."""

    def __init__(self, stream: AsyncIterator[bytes], timeout: float | None, request: httpx2.Request) -> None:
        self._stream = stream
        self._timeout = timeout
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        stream = self._stream
        while True:
            try:
                async with asyncio.timeout(self._timeout) as scope:
                    chunk = await anext(stream)
            except StopAsyncIteration:
                return
            except TimeoutError:
                if not scope.expired():
                    raise
                raise httpx2.ReadTimeout(
                    f"the stream sent nothing for {self._timeout:g}s", request=self._request
                ) from None
            yield chunk

    async def aclose(self) -> None:
        closer = getattr(self._stream, "aclose", None)
        if closer is not None:
            await closer()


class SyncGatewayTransport(httpx2.BaseTransport):
    """The synchronous face of a :class:`GatewayTransport`: each request (and each chunk of a stream)
    runs on the runner's loop thread; ``close()`` shuts that thread down after closing the gateway."""

    def __init__(self, inner: GatewayTransport) -> None:
        self.inner = inner
        self.runner = LoopRunner(closer=inner.aclose)

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = self.runner.run(self.inner.serve(request, request.read()))
        if isinstance(response.stream, AsyncBody):
            stream = SyncBody(response.stream, self.runner)
            return httpx2.Response(
                response.status_code, headers=response.headers, stream=stream, request=request
            )
        return response

    def close(self) -> None:
        self.runner.close()


class SyncBody(httpx2.SyncByteStream):
    """An :class:`AsyncBody` read from synchronous code, one chunk at a time on the runner's loop."""

    def __init__(self, body: AsyncBody, runner: LoopRunner) -> None:
        self._body = body
        self._runner = runner
        self._chunks: AsyncIterator[bytes] | None = None

    def __iter__(self) -> Iterator[bytes]:
        chunks = self._chunks = self._body.__aiter__()
        while (chunk := self._runner.run(_next_chunk(chunks))) is not None:
            yield chunk

    def close(self) -> None:
        chunks, self._chunks = self._chunks, None
        if chunks is not None and self._runner.running:
            closer = getattr(chunks, "aclose", None)
            if closer is not None:
                self._runner.run(closer())
        if self._runner.running:
            self._runner.run(self._body.aclose())


async def _next_chunk(chunks: AsyncIterator[bytes]) -> bytes | None:
    try:
        return await anext(chunks)
    except StopAsyncIteration:
        return None
