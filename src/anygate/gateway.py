"""The one orchestration path: validate → route → call upstream → translate → account.

Both faces of anygate, the proxy server and the in-process SDK, call :class:`Gateway`; it returns wire
bytes (a JSON body or an SSE byte stream) that the server sends as they are and the SDK decodes into the
official ``anthropic`` types. Retries and fallbacks (:mod:`anygate.routing.retry`) happen only before the
first byte of an answer reached the client; after that a failure becomes an ``event: error`` frame.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import aiohttp
import orjson

from anygate.config import Config, load_config
from anygate.deployment import Deployment
from anygate.protocol.accumulate import accumulate
from anygate.protocol.errors import GatewayError
from anygate.protocol.redact import register_config_secrets
from anygate.protocol.sse import PING_FRAME, encode_error, encode_event
from anygate.protocol.validation import validate_count_tokens_request, validate_messages_request
from anygate.providers.base import CallContext, LocalProvider, Provider, StreamTranslator
from anygate.providers.registry import PLANNED_PROVIDERS, PROVIDERS
from anygate.routing.names import ModelNames
from anygate.routing.retry import Attempt, AttemptOutcome, run_routed
from anygate.routing.router import Router
from anygate.signing import ThinkingSigner
from anygate.upstream import UpstreamClient, connection_failed

if TYPE_CHECKING:
    from anygate.anthropic.messages import Messages

log = logging.getLogger("anygate")

DEFAULT_TIMEOUT: Final = 600.0
"""Seconds an upstream may take when nothing is configured (the official SDKs' default)."""
DEFAULT_STREAM_IDLE_TIMEOUT: Final = 300.0
"""Seconds of upstream silence after which a stream is given up."""
LARGE_LOCAL_REQUEST: Final = 256
"""Tools plus messages beyond which a local model answers in a thread: its work grows with the request
(20,000 tools took 125 ms), and a small answer is cheaper inline than a thread hop."""
_PARSE_ERRORS: Final = (ValueError, KeyError, TypeError, AttributeError, IndexError)
"""What translating a malformed upstream answer raises (orjson's decode error is a ValueError)."""


_REQUEST_IDS: Final = random.Random()
"""Request ids need to be unique, not secret: a PRNG seeded from the OS per process, instead of a system
call for fresh random bytes on every request."""


def new_request_id() -> str:
    """A fresh ``req_…`` id (Anthropic's shape), reported in the ``request-id`` header and error bodies."""
    return f"req_{_REQUEST_IDS.getrandbits(96):024x}"


@dataclass(slots=True)
class GatewayResponse:
    """What the gateway answers: a JSON body, or an SSE byte stream, plus response headers."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    stream: AsyncIterator[bytes] | None = None
    tokens: int = 0
    """Tokens the answer used (input + output), when known: rate limiting by ``tpm`` counts them."""

    @property
    def streaming(self) -> bool:
        return self.stream is not None


class Gateway:
    """Serves Anthropic Messages requests from the deployments of a :class:`~anygate.config.Config`.

    Args:
        config: the deployments and settings; an empty config serves only explicit deployments
            (the SDK's ``model="openai/…"`` calls).
        upstream: the HTTP client; one per gateway, shared by all requests.
    """

    def __init__(self, config: Config | None = None, *, upstream: UpstreamClient | None = None) -> None:
        self.config = config or Config(deployments=())
        self.names = ModelNames(self.config.deployments, dict(self.config.router.model_group_alias))
        self.router = Router(self.config.router)
        self.signer = ThinkingSigner(self.config.general.master_key or os.environ.get("ANYGATE_MASTER_KEY"))
        register_config_secrets(self.config)
        self.upstream = upstream or UpstreamClient()
        self.started_at = datetime.now(UTC).replace(microsecond=0)

    @functools.cached_property
    def messages(self) -> Messages:
        """The SDK surface over this gateway: ``messages.acreate / create / count_tokens``."""
        from anygate.anthropic.messages import Messages

        return Messages(self)

    @classmethod
    def from_config(cls, path: str | os.PathLike[str]) -> Gateway:
        """A gateway over a LiteLLM-format config file."""
        return cls(load_config(path))

    async def aclose(self) -> None:
        """Close the upstream connection pool of the running event loop."""
        await self.upstream.close()

    def close(self) -> None:
        """Close the connection pool that the synchronous API (``messages.create``) uses."""
        from anygate.anthropic.messages import run_sync

        run_sync(self.upstream.close())

    # --- entry points ------------------------------------------------------------------------------

    async def create_message(
        self,
        body: object,
        *,
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
        deployments: list[Deployment] | None = None,
    ) -> GatewayResponse:
        """Answer ``POST /v1/messages``. ``deployments`` overrides routing (SDK calls without config)."""
        request = validate_messages_request(body)
        ctx = self._context(request, headers, request_id)
        stream = request.get("stream") is True

        async def attempt(deployment: Deployment, done: AttemptOutcome) -> GatewayResponse:
            return await self._attempt_message(deployment, request, ctx, done, stream=stream)

        return await self._routed(request["model"], deployments, attempt)

    async def count_tokens(
        self,
        body: object,
        *,
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
        deployments: list[Deployment] | None = None,
    ) -> GatewayResponse:
        """Answer ``POST /v1/messages/count_tokens`` with ``{"input_tokens": N}``."""
        request = validate_count_tokens_request(body)
        ctx = self._context(request, headers, request_id)

        async def attempt(deployment: Deployment, done: AttemptOutcome) -> GatewayResponse:
            tokens = await self._count_tokens(deployment, request, ctx)
            return GatewayResponse(body=orjson.dumps({"input_tokens": tokens}))

        return await self._routed(request["model"], deployments, attempt)

    def list_models(self) -> bytes:
        """``GET /v1/models`` in Anthropic's list format, one entry per configured model name.

        ``max_input_tokens`` and ``max_tokens`` come from ``model_info`` (``max_input_tokens``,
        ``max_output_tokens`` or ``max_tokens``) so clients learn a non-Claude model's real limits.
        """
        created = self.started_at.isoformat().replace("+00:00", "Z")
        data = []
        for name in self.names.listed_names():
            deployments = self.names.deployments(name)
            info: Mapping[str, Any] = deployments[0].model_info if deployments else {}
            entry: dict[str, Any] = {
                "type": "model",
                "id": name,
                "display_name": str(info.get("display_name") or name),
                "created_at": str(info.get("created_at") or created),
            }
            max_input = info.get("max_input_tokens")
            max_output = info.get("max_output_tokens") or info.get("max_tokens")
            if isinstance(max_input, int):
                entry["max_input_tokens"] = max_input
            if isinstance(max_output, int):
                entry["max_tokens"] = max_output
            data.append(entry)
        return orjson.dumps(
            {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )

    def deployment_health(self) -> bytes:
        """Each deployment's state, for ``GET /health/deployments``."""
        return orjson.dumps({"deployments": self.router.report(self.config.deployments)})

    # --- plumbing ----------------------------------------------------------------------------------

    def _context(
        self, request: dict[str, Any], headers: Mapping[str, str] | None, request_id: str | None
    ) -> CallContext:
        return CallContext(
            request_id=request_id or new_request_id(),
            requested_model=request["model"],
            request=request,
            client_headers=headers or {},
            signer=self.signer,
        )

    async def _routed(
        self, model: str, explicit: list[Deployment] | None, attempt: Attempt[GatewayResponse]
    ) -> GatewayResponse:
        return await run_routed(
            model, names=self.names, router=self.router, settings=self.config.router, attempt=attempt,
            explicit=explicit,
        )  # fmt: skip

    def _provider(self, deployment: Deployment) -> Provider | LocalProvider:
        provider = PROVIDERS.get(deployment.provider)
        if provider is None:
            if deployment.provider in PLANNED_PROVIDERS:
                raise GatewayError(
                    400, f"provider {deployment.provider!r} is not supported by this anygate version"
                )
            raise GatewayError(500, f"unknown provider {deployment.provider!r}")
        return provider

    def _timeouts(self, deployment: Deployment) -> tuple[float, float]:
        """(total seconds for a JSON answer, seconds to a stream's first byte)."""
        settings = self.config.router
        total = deployment.timeout or settings.timeout or DEFAULT_TIMEOUT
        first_byte = deployment.stream_timeout or settings.stream_timeout or total
        return total, first_byte

    # --- one attempt ---------------------------------------------------------------------------------

    async def _attempt_message(
        self,
        deployment: Deployment,
        request: dict[str, Any],
        ctx: CallContext,
        done: AttemptOutcome,
        *,
        stream: bool,
    ) -> GatewayResponse:
        provider = self._provider(deployment)
        request = _within_output_limit(request, deployment)
        if isinstance(provider, LocalProvider):
            if len(request.get("tools") or ()) + len(request["messages"]) > LARGE_LOCAL_REQUEST:
                events = await asyncio.to_thread(provider.answer, deployment, request, ctx)
            else:
                events = provider.answer(deployment, request, ctx)
            if stream:
                return GatewayResponse(stream=ReleasingStream(_replay(events, done), _abandon(done)))
            return GatewayResponse(body=orjson.dumps(accumulate(events)))
        total, first_byte = self._timeouts(deployment)
        upstream_request = provider.build_request(deployment, request, ctx, stream=stream)
        if not stream:
            status, headers, body = await self.upstream.fetch(upstream_request, timeout=total)
            if status >= 300:
                raise provider.map_error(status, headers, body)
            try:
                answer = GatewayResponse(body=provider.parse_response(body, ctx))
            except _PARSE_ERRORS as exc:
                raise _malformed("response", exc) from None
            if deployment.tpm is not None:
                answer.tokens = _usage_tokens(answer.body)
            return answer
        loop = asyncio.get_running_loop()
        deadline = loop.time() + first_byte
        response = await self.upstream.send(upstream_request, timeout=first_byte)
        if response.status >= 300:
            body = await self.upstream.read(response, timeout=max(deadline - loop.time(), 1.0))
            raise provider.map_error(response.status, response.headers, body)
        translator = provider.stream_translator(ctx)
        try:
            first = await self._first_bytes(response, translator, max(deadline - loop.time(), 0.001))
        except BaseException:
            response.close()
            raise
        relay = self._relay(response, translator, first, ctx.request_id, done)
        return GatewayResponse(stream=ReleasingStream(relay, _abandon(done, response)))

    async def _first_bytes(
        self, response: aiohttp.ClientResponse, translator: StreamTranslator, timeout: float
    ) -> bytes:
        """Read until the translator has something for the client. Failures here can still be retried,
        because the client has received nothing yet."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    chunk = await response.content.readany()
                    if not chunk:
                        return translator.finish()
                    out = translator.feed(chunk)
                    if out:
                        return out
        except TimeoutError:
            raise GatewayError(
                504, f"the upstream sent nothing within {timeout:g}s", retryable=True
            ) from None
        except aiohttp.ClientError as exc:
            raise connection_failed(exc) from None
        except _PARSE_ERRORS as exc:
            raise _malformed("stream", exc) from None

    async def _relay(
        self,
        response: aiohttp.ClientResponse,
        translator: StreamTranslator,
        first: bytes,
        request_id: str,
        done: AttemptOutcome,
    ) -> AsyncGenerator[bytes, None]:
        """Translate the rest of an upstream stream. Pings fill silences; any failure ends the stream with
        an ``event: error`` frame, never with a clean-looking end."""
        general = self.config.general
        ping_interval = general.stream_ping_interval or None
        idle_timeout = general.stream_idle_timeout or DEFAULT_STREAM_IDLE_TIMEOUT
        reader = response.content
        failure: GatewayError | None = None
        completed = False
        try:
            yield first
            silent = 0.0
            while True:
                wait = idle_timeout - silent
                if ping_interval:
                    wait = min(ping_interval, wait)
                try:
                    async with asyncio.timeout(wait):
                        chunk = await reader.readany()
                except TimeoutError:
                    silent += wait
                    if silent >= idle_timeout:
                        raise GatewayError(
                            504, f"the upstream stream was silent for {idle_timeout:g}s", retryable=True
                        ) from None
                    yield PING_FRAME
                    continue
                silent = 0.0
                if not chunk:
                    break
                out = translator.feed(chunk)
                if out:
                    yield out
            tail = translator.finish()
            completed = True
            if tail:
                yield tail
        except GatewayError as exc:
            failure = exc
        except aiohttp.ClientError as exc:
            failure = connection_failed(exc)
        except _PARSE_ERRORS as exc:
            failure = _malformed("stream", exc)
        finally:
            if completed:
                response.release()
                usage = translator.usage
                done(None, tokens=usage.get("input_tokens", 0) + usage.get("output_tokens", 0))
            else:
                response.close()
                done(failure, abandoned=failure is None)
        if failure is not None:
            log.warning("stream %s failed after it started: %s", request_id, failure.message)
            yield encode_error(failure.error_type, failure.message, request_id)

    async def _count_tokens(self, deployment: Deployment, request: dict[str, Any], ctx: CallContext) -> int:
        provider = self._provider(deployment)
        if isinstance(provider, LocalProvider):
            return await asyncio.to_thread(provider.count_tokens_locally, deployment, request)
        upstream_request = provider.build_count_tokens_request(deployment, request, ctx)
        if upstream_request is None:
            # Counting is CPU work proportional to the request (5 s for 30 MB): off the event loop.
            return await asyncio.to_thread(provider.count_tokens_locally, deployment, request)
        total, _ = self._timeouts(deployment)
        status, headers, body = await self.upstream.fetch(upstream_request, timeout=total)
        if status >= 300:
            raise provider.map_error(status, headers, body)
        try:
            return provider.parse_count_tokens(body, ctx)
        except _PARSE_ERRORS as exc:
            raise _malformed("count_tokens answer", exc) from None


def _within_output_limit(request: dict[str, Any], deployment: Deployment) -> dict[str, Any]:
    """The request with ``max_tokens`` lowered to the deployment's ``model_info.max_output_tokens``.

    Clients ask for what their usual model allows (Claude Code asks for 128000); a smaller model behind the
    gateway would reject that, so a configured limit caps the request instead of failing it.
    """
    info = deployment.model_info
    limit = info.get("max_output_tokens") or info.get("max_tokens") if info else None
    if isinstance(limit, int) and limit > 0 and request["max_tokens"] > limit:
        return {**request, "max_tokens": limit}
    return request


def _usage_tokens(body: bytes | None) -> int:
    """Input + output tokens of an Anthropic Message body (parsed only for deployments with a ``tpm``)."""
    usage = orjson.loads(body or b"{}").get("usage") or {}
    return sum(usage.get(key) or 0 for key in ("input_tokens", "output_tokens"))


def _malformed(what: str, exc: BaseException) -> GatewayError:
    return GatewayError(
        502,
        f"the upstream sent a malformed {what} ({type(exc).__name__})",
        error_type="api_error",
        retryable=True,
    )


class ReleasingStream:
    """An answer's byte stream whose ``aclose()`` releases the upstream even if it was never iterated.

    An async generator closed before its first step never runs its ``finally``; a client that leaves
    between the gateway's answer and the first byte sent would otherwise keep the upstream connection
    open and the deployment's in-flight count raised.
    """

    __slots__ = ("_abandon", "_chunks", "_started")

    def __init__(self, chunks: AsyncGenerator[bytes, None], abandon: Callable[[], None]) -> None:
        self._chunks = chunks
        self._abandon = abandon
        self._started = False

    def __aiter__(self) -> ReleasingStream:
        return self

    async def __anext__(self) -> bytes:
        self._started = True
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        if not self._started:
            self._started = True
            self._abandon()
        await self._chunks.aclose()


def _abandon(done: AttemptOutcome, response: aiohttp.ClientResponse | None = None) -> Callable[[], None]:
    def abandon() -> None:
        if response is not None:
            response.close()
        done(None, abandoned=True)

    return abandon


async def _replay(events: list[dict[str, Any]], done: AttemptOutcome) -> AsyncGenerator[bytes, None]:
    """A local answer as an SSE stream: one frame per event, yielding to the loop between frames."""
    try:
        for event in events:
            yield encode_event(event)
            await asyncio.sleep(0)
    finally:
        done(None)
