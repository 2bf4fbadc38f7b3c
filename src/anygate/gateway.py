"""The one orchestration path: validate → route → call upstream → translate → account.

Both faces of anygate, the proxy server and the in-process SDK, call :class:`Gateway`; it returns wire
bytes (a JSON body or an SSE byte stream) that the server sends as they are and the SDK decodes into the
official ``anthropic`` types. Retries and fallbacks happen here, and only before the first byte of an
answer reached the client; after that a failure becomes an ``event: error`` frame.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import aiohttp
import orjson

from anygate.config import Config, load_config
from anygate.deployment import Deployment
from anygate.protocol.accumulate import accumulate
from anygate.protocol.errors import GatewayError
from anygate.protocol.sse import PING_FRAME, encode_error, encode_event
from anygate.protocol.validation import validate_count_tokens_request, validate_messages_request
from anygate.providers.base import CallContext, LocalProvider, Provider, StreamTranslator
from anygate.providers.registry import PLANNED_PROVIDERS, PROVIDERS
from anygate.routing.names import ModelNames
from anygate.routing.router import Router
from anygate.signing import ThinkingSigner
from anygate.upstream import UpstreamClient, UpstreamUnreachable

log = logging.getLogger("anygate")

DEFAULT_TIMEOUT: Final = 600.0
"""Seconds an upstream may take when nothing is configured (the official SDKs' default)."""
DEFAULT_STREAM_IDLE_TIMEOUT: Final = 300.0
"""Seconds of upstream silence after which a stream is given up."""
BACKOFF_BASE: Final = 0.25
BACKOFF_MAX: Final = 8.0
MAX_RETRY_WAIT: Final = 30.0
"""An upstream ``retry-after`` longer than this is passed on to the client instead of waited out."""

_CONTEXT_WINDOW_MARKERS: Final = (
    "context length",
    "context window",
    "context_length",
    "maximum context",
    "prompt is too long",
    "too many tokens",
    "reduce the length",
)
_CONTENT_POLICY_MARKERS: Final = (
    "content policy",
    "content_policy",
    "content management policy",
    "safety system",
)

T = TypeVar("T")


def new_request_id() -> str:
    """A fresh ``req_…`` id (Anthropic's shape), reported in the ``request-id`` header and error bodies."""
    return "req_" + secrets.token_hex(12)


@dataclass(slots=True)
class GatewayResponse:
    """What the gateway answers: a JSON body, or an SSE byte stream, plus response headers."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    stream: AsyncIterator[bytes] | None = None


@dataclass(slots=True)
class _Attempts:
    """Bookkeeping of one client request across retries and fallbacks."""

    count: int = 0
    tried: set[str] = field(default_factory=set)
    last: Deployment | None = None


class Gateway:
    """Serves Anthropic Messages requests from the deployments of a :class:`~anygate.config.Config`.

    Args:
        config: the deployments and settings; an empty config serves only explicit deployments
            (the SDK's ``model="openai/…"`` calls).
        upstream: the HTTP client; one per gateway, shared by all requests.
    """

    def __init__(self, config: Config | None = None, *, upstream: UpstreamClient | None = None) -> None:
        from anygate.anthropic.messages import Messages

        self.config = config or Config(deployments=())
        self.names = ModelNames(self.config.deployments, dict(self.config.router.model_group_alias))
        self.router = Router(self.config.router)
        self.signer = ThinkingSigner(self.config.general.master_key or os.environ.get("ANYGATE_MASTER_KEY"))
        self.upstream = upstream or UpstreamClient()
        self.started_at = datetime.now(UTC).replace(microsecond=0)
        self.messages = Messages(self)

    @classmethod
    def from_config(cls, path: str | os.PathLike[str]) -> Gateway:
        """A gateway over a LiteLLM-format config file."""
        return cls(load_config(path))

    async def aclose(self) -> None:
        """Close the upstream connection pool of the running event loop."""
        await self.upstream.close()

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
        ctx = CallContext(
            request_id=request_id or new_request_id(),
            requested_model=request["model"],
            request=request,
            client_headers=headers or {},
            signer=self.signer,
        )
        stream = request.get("stream") is True

        async def attempt(deployment: Deployment) -> GatewayResponse:
            return await self._attempt_message(deployment, request, ctx, stream=stream)

        return await self._route(request["model"], deployments, attempt)

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
        ctx = CallContext(
            request_id=request_id or new_request_id(),
            requested_model=request["model"],
            request=request,
            client_headers=headers or {},
            signer=self.signer,
        )

        async def attempt(deployment: Deployment) -> GatewayResponse:
            tokens = await self._count_tokens(deployment, request, ctx)
            return GatewayResponse(body=orjson.dumps({"input_tokens": tokens}))

        return await self._route(request["model"], deployments, attempt)

    def list_models(self) -> bytes:
        """``GET /v1/models`` in Anthropic's list format, one entry per configured model name."""
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

    # --- routing: retries, fallbacks, cooldowns ------------------------------------------------------

    async def _route(
        self,
        model: str,
        explicit: list[Deployment] | None,
        attempt: Callable[[Deployment], Awaitable[GatewayResponse]],
    ) -> GatewayResponse:
        group = model if explicit is not None else self.names.group_name(model)
        if group is None:
            raise GatewayError(404, f"model {model!r} is not configured on this gateway")
        attempts = _Attempts()
        groups: list[str] = [group]
        error: GatewayError | None = None
        while groups:
            current = groups.pop(0)
            if current == group:
                deployments = explicit if explicit is not None else self.names.deployments(model)
            else:
                deployments = self.names.deployments(current)
            if not deployments:
                continue
            outcome = await self._attempt_group(
                deployments, attempt, attempts, self.config.router.num_retries
            )
            if isinstance(outcome, GatewayResponse):
                return outcome
            error = outcome
            groups.extend(g for g in self._fallbacks_for(current, error) if g not in groups and g != current)
        assert error is not None
        raise error

    async def _attempt_group(
        self,
        deployments: list[Deployment],
        attempt: Callable[[Deployment], Awaitable[GatewayResponse]],
        attempts: _Attempts,
        num_retries: int,
    ) -> GatewayResponse | GatewayError:
        error: GatewayError | None = None
        for retry in range(num_retries + 1):
            try:
                deployment = self.router.order(deployments, attempts.tried)[0]
            except GatewayError as exc:
                return exc
            if error is not None and deployment.deployment_id in attempts.tried:
                wait = _backoff(retry, error)
                if wait is None:
                    return error
                await asyncio.sleep(wait)
            attempts.count += 1
            attempts.tried.add(deployment.deployment_id)
            attempts.last = deployment
            health = self.router.health
            health.started(deployment.deployment_id)
            started = time.monotonic()
            try:
                response = await attempt(deployment)
            except GatewayError as exc:
                health.ended(deployment.deployment_id)
                error = exc
                if exc.retryable:
                    health.failed(
                        deployment.deployment_id,
                        exc.message,
                        cool_down_now=isinstance(exc, UpstreamUnreachable),
                    )
                log.info(
                    "attempt %d on %s failed: %s %s",
                    attempts.count,
                    deployment.deployment_id,
                    exc.status,
                    exc.message,
                )
                if not exc.retryable:
                    return exc
                continue
            except BaseException:
                health.ended(deployment.deployment_id)
                raise
            response.headers["x-anygate-model-id"] = deployment.deployment_id
            response.headers["x-anygate-attempts"] = str(attempts.count)
            if response.stream is None:
                health.ended(deployment.deployment_id)
                health.succeeded(deployment.deployment_id, time.monotonic() - started)
            else:
                response.stream = self._account_stream(response.stream, deployment, started)
            return response
        assert error is not None
        return error

    def _fallbacks_for(self, group: str, error: GatewayError) -> tuple[str, ...]:
        settings = self.config.router
        message = error.message.lower()
        if error.status == 400 and any(marker in message for marker in _CONTEXT_WINDOW_MARKERS):
            return settings.context_window_fallbacks.get(group, ())
        if error.status == 400 and any(marker in message for marker in _CONTENT_POLICY_MARKERS):
            return settings.content_policy_fallbacks.get(group, ())
        if error.retryable:
            return settings.fallbacks.get(group, ()) or settings.fallbacks.get("*", ())
        return ()

    async def _account_stream(
        self, stream: AsyncIterator[bytes], deployment: Deployment, started: float
    ) -> AsyncIterator[bytes]:
        """Pass a stream through, recording the deployment's in-flight count and its outcome."""
        health = self.router.health
        try:
            async for chunk in stream:
                yield chunk
        finally:
            health.ended(deployment.deployment_id)
            health.succeeded(deployment.deployment_id, time.monotonic() - started)

    # --- one attempt ---------------------------------------------------------------------------------

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
        settings = self.config.router
        total = deployment.timeout or settings.timeout or DEFAULT_TIMEOUT
        first_byte = deployment.stream_timeout or settings.stream_timeout or total
        return total, first_byte

    async def _attempt_message(
        self, deployment: Deployment, request: dict[str, Any], ctx: CallContext, *, stream: bool
    ) -> GatewayResponse:
        provider = self._provider(deployment)
        if isinstance(provider, LocalProvider):
            events = provider.answer(deployment, request, ctx)
            if stream:
                return GatewayResponse(stream=_replay(events))
            return GatewayResponse(body=orjson.dumps(accumulate(events)))
        total, first_byte = self._timeouts(deployment)
        upstream_request = provider.build_request(deployment, request, ctx, stream=stream)
        response = await self.upstream.send(upstream_request, timeout=first_byte if stream else total)
        if response.status >= 300:
            body = await self.upstream.read(response, timeout=total)
            raise provider.map_error(response.status, response.headers, body)
        if not stream:
            body = await self.upstream.read(response, timeout=total)
            try:
                return GatewayResponse(body=provider.parse_response(body, ctx))
            except GatewayError:
                raise
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise GatewayError(
                    502,
                    f"the upstream sent a malformed response ({type(exc).__name__})",
                    error_type="api_error",
                    retryable=True,
                ) from None
        translator = provider.stream_translator(ctx)
        try:
            first = await self._first_bytes(response, translator, first_byte)
        except BaseException:
            response.close()
            raise
        return GatewayResponse(stream=self._relay(response, translator, first, ctx.request_id))

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
            raise GatewayError(
                502,
                f"the upstream connection failed: {type(exc).__name__}",
                error_type="api_error",
                retryable=True,
            ) from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise GatewayError(
                502,
                f"the upstream sent a malformed stream ({type(exc).__name__})",
                error_type="api_error",
                retryable=True,
            ) from None

    async def _relay(
        self, response: aiohttp.ClientResponse, translator: StreamTranslator, first: bytes, request_id: str
    ) -> AsyncIterator[bytes]:
        """Translate the rest of an upstream stream. Pings fill silences; any failure ends the stream with
        an ``event: error`` frame, never with a clean-looking end."""
        general = self.config.general
        ping_interval = general.stream_ping_interval or None
        idle_timeout = general.stream_idle_timeout or DEFAULT_STREAM_IDLE_TIMEOUT
        reader = response.content
        completed = False
        try:
            yield first
            silent = 0.0
            while True:
                wait = min(ping_interval, idle_timeout - silent) if ping_interval else idle_timeout - silent
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
            log.warning("stream %s failed: %s", request_id, exc.message)
            yield encode_error(exc.error_type, exc.message, request_id)
        except (aiohttp.ClientError, ConnectionError) as exc:
            log.warning("stream %s lost its upstream: %s", request_id, type(exc).__name__)
            yield encode_error("api_error", "the upstream connection was lost mid-stream", request_id)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("stream %s: malformed upstream data: %r", request_id, exc)
            yield encode_error("api_error", "the upstream sent a malformed stream", request_id)
        finally:
            if completed:
                response.release()
            else:
                response.close()

    async def _count_tokens(self, deployment: Deployment, request: dict[str, Any], ctx: CallContext) -> int:
        provider = self._provider(deployment)
        if isinstance(provider, LocalProvider):
            return provider.count_tokens_locally(deployment, request)
        upstream_request = provider.build_count_tokens_request(deployment, request, ctx)
        if upstream_request is None:
            return provider.count_tokens_locally(deployment, request)
        total, _ = self._timeouts(deployment)
        response = await self.upstream.send(upstream_request, timeout=total)
        body = await self.upstream.read(response, timeout=total)
        if response.status >= 300:
            raise provider.map_error(response.status, response.headers, body)
        return provider.parse_count_tokens(body, ctx)


def _backoff(retry: int, error: GatewayError) -> float | None:
    """Seconds to wait before retrying the same deployment: exponential with jitter, never sooner than
    the upstream's ``retry-after``; None when that is too long to wait out."""
    hinted = _retry_after_seconds(error.headers)
    if hinted is not None and hinted > MAX_RETRY_WAIT:
        return None
    delay = min(BACKOFF_MAX, BACKOFF_BASE * 2.0 ** (retry - 1)) * random.uniform(0.5, 1.0)
    return max(delay, hinted or 0.0)


def _retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    milliseconds: str | None = headers.get("retry-after-ms")
    try:
        if milliseconds is not None:
            return float(milliseconds) / 1000
        seconds: str | None = headers.get("retry-after")
        if seconds is not None:
            return float(seconds)
    except ValueError:
        return None
    return None


async def _replay(events: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    """A local answer as an SSE stream: one frame per event, yielding to the loop between frames."""
    for event in events:
        yield encode_event(event)
        await asyncio.sleep(0)
