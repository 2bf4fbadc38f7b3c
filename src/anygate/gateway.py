"""The one orchestration path: validate → admit → route → call upstream → translate → account.

Both faces of anygate, the proxy server and the in-process SDK, call :class:`Gateway`; it returns wire
bytes (a JSON body or an SSE byte stream) that the server sends as they are and the SDK decodes into the
official ``anthropic`` types. Retries and fallbacks (:mod:`anygate.routing.retry`) happen only before the
first byte of an answer reached the client; after that a failure becomes an ``event: error`` frame.

Every request is a :class:`~anygate.hooks.RequestRecord` that passes the lifecycle of
:mod:`anygate.hooks` (authenticate → admit → each attempt → completed); features attach there, never
here. The path in order (docs/architecture.md draws it)::

    create_message → _routed (run_routed: pick, retry, fall back) → _attempt_message
        → provider.prepare → provider.authorize → upstream.fetch | upstream.send → first_bytes → _relay
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from anygate.auth import MasterKey, invalid_key, missing_key, presented_keys
from anygate.config import Config, GeneralSettings, load_config, master_key_from_environment
from anygate.deployment import Deployment
from anygate.hooks import IN_PROCESS, OPEN, AttemptRecord, Hook, Hooks, Principal, RequestRecord, Usage
from anygate.model_catalog import ModelCatalog
from anygate.protocol.accumulate import accumulate, message_events
from anygate.protocol.errors import (
    GatewayError,
    InternalError,
    UpstreamError,
    UpstreamFailure,
    client_fault,
    malformed_upstream,
)
from anygate.protocol.ids import new_request_id
from anygate.protocol.redact import register_config_secrets
from anygate.protocol.validation import validate_count_tokens_request, validate_messages_request
from anygate.providers.base import (
    Answer,
    CallContext,
    LocalProvider,
    Provider,
    ProviderCall,
    StreamTranslator,
)
from anygate.providers.registry import SPECS, load_provider
from anygate.providers.upstream_errors import CredentialsRejected
from anygate.routing.names import ModelNames
from anygate.routing.retry import Attempt, AttemptOutcome, backoff_seconds, run_routed
from anygate.routing.router import Router
from anygate.signing import ThinkingSigner
from anygate.stream_relay import ClientStreams, OpenStream, final_delta, first_bytes, stream_events
from anygate.tools import NATIVE_PROVIDERS, ServerSideEdits, overflow_error, server_side_edits
from anygate.tools.compaction import continued_request, summary_request, summary_text
from anygate.tools.context_editing import Edits, ReportingTranslator, report_in_message
from anygate.tools.loop import Compacted, ServerToolTurn
from anygate.tools.overflow import is_overflow
from anygate.tools.server_tools import RUN_TOOLS, RequestTools, ServerTools, tool_work
from anygate.upstream import Transport, UpstreamClient

log = logging.getLogger("anygate")

DEFAULT_TIMEOUT: Final = 600.0
"""Seconds an upstream may take when nothing is configured (the official SDKs' default)."""
DEFAULT_STREAM_IDLE_TIMEOUT: Final = 300.0
"""Seconds of upstream silence after which a stream is given up."""
CLIENT_GONE_STATUS: Final = 499
"""The status recorded for a request whose client left before its answer was complete."""
LARGE_LOCAL_REQUEST: Final = 256
"""Tools plus messages beyond which a local model answers in a thread: its work grows with the request
(20,000 tools took 125 ms), and a small answer is cheaper inline than a thread hop."""

__all__ = ["Gateway", "GatewayResponse", "new_request_id"]


@dataclass(slots=True)
class GatewayResponse:
    """What the gateway answers: a JSON body, or an SSE byte stream, plus response headers."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    stream: AsyncIterator[bytes] | None = None
    usage: Usage | None = None
    """The answer's usage, when known before it is sent (JSON answers); streams report it at their end."""

    @property
    def streaming(self) -> bool:
        return self.stream is not None

    @property
    def tokens(self) -> int:
        """Input + output tokens of a JSON answer, for ``tpm`` rate limiting."""
        return self.usage.tokens if self.usage is not None else 0


class Gateway:
    """Serves Anthropic Messages requests from the deployments of a :class:`~anygate.config.Config`.

    Args:
        config: the deployments and settings; an empty config serves only explicit deployments
            (the SDK's ``model="openai/…"`` calls).
        transport: how upstreams are reached (tests pass :class:`anygate.testing.MockTransport`).
        hooks: lifecycle hooks, after the master key's.
        clock: the monotonic clock of health, cooldowns and records (tests pass the loop's virtual one).
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        transport: Transport | None = None,
        hooks: Sequence[Hook] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or Config(
            deployments=(), general=GeneralSettings(master_key=master_key_from_environment())
        )
        master_key = self.config.general.master_key
        self.names = ModelNames(self.config.deployments, dict(self.config.router.model_group_alias))
        self.clock = clock
        self.router = Router(self.config.router, clock=clock)
        self.signer = ThinkingSigner(master_key)
        register_config_secrets(self.config)
        self.upstream = UpstreamClient(transport)
        self.server_tools = ServerTools(self.config.general, self.signer)
        general = self.config.general
        self.streams = ClientStreams(
            self._complete,
            ping_interval=general.stream_ping_interval or None,
            idle_timeout=general.stream_idle_timeout or DEFAULT_STREAM_IDLE_TIMEOUT,
        )
        self.hooks = Hooks([MasterKey(master_key)] if master_key else [])
        for hook in hooks:
            self.hooks.add(hook)
        self._warm: set[str] = set()
        """Providers whose :meth:`warm_up` ran (tokenizers loaded, libraries imported)."""
        for name in {deployment.provider for deployment in self.config.deployments}:
            if name in SPECS:
                load_provider(name)  # import the translators the config uses now, not on a request
        self.started_at = datetime.now(UTC).replace(microsecond=0)
        self.catalog = ModelCatalog(self.names, self.started_at)

    def warm_up(self) -> None:
        """Load what the configured providers need before the first request (blocking: the server calls
        it at start-up, before it serves). Providers used later are warmed in a worker thread."""
        for name in {deployment.provider for deployment in self.config.deployments}:
            if name in SPECS:
                _warm_up(load_provider(name))
                self._warm.add(name)

    async def _warm_up_off_loop(self, name: str) -> None:
        """Warm a provider in a worker thread; one without a ``warm_up`` never leaves the loop."""
        warm_up = getattr(load_provider(name), "warm_up", None)
        if warm_up is not None:
            await asyncio.to_thread(warm_up)
        self._warm.add(name)

    @classmethod
    def from_config(cls, path: str | os.PathLike[str]) -> Gateway:
        """A gateway over a LiteLLM-format config file."""
        return cls(load_config(path))

    async def aclose(self) -> None:
        """Flush the hooks and close the upstream connection pool of the running event loop."""
        await self.hooks.aclose()
        await self.server_tools.aclose()
        await self.upstream.aclose()

    # --- entry points ------------------------------------------------------------------------------

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """Who sent these headers (the proxy's first stage); 401 when no authenticator knows the key.

        With no authenticator at all (no master key) the gateway is open, which the CLI only allows on
        loopback.
        """
        hooks = self.hooks
        if not hooks.authenticators:
            return OPEN
        principal = await hooks.authenticate(headers)
        if principal is None:
            raise invalid_key() if presented_keys(headers) else missing_key()
        return principal

    async def create_message(
        self,
        body: object,
        *,
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
        deployments: list[Deployment] | None = None,
        principal: Principal = IN_PROCESS,
    ) -> GatewayResponse:
        """Answer ``POST /v1/messages``. ``deployments`` overrides routing (SDK calls without config)."""
        record = self._record("messages", principal, headers, request_id)
        try:
            request = validate_messages_request(body)
            stream = request.get("stream") is True
            record.model = request["model"]
            record.stream = stream
            record.request = request
            if self.hooks.admitting:
                await self.hooks.admit(record)
            ctx = self._context(request, record)

            async def attempt(deployment: Deployment, done: AttemptOutcome) -> GatewayResponse:
                return await self._attempt_message(deployment, request, ctx, done, record, stream=stream)

            response = await self._routed(request["model"], deployments, attempt, record)
        except BaseException as exc:
            failure = _as_failure(exc, principal, record.request_id)
            self._complete(record, failure)
            if failure is exc:
                raise
            raise failure from None
        if response.stream is None:
            self._complete(record, None, response.usage)
        return response

    async def count_tokens(
        self,
        body: object,
        *,
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
        deployments: list[Deployment] | None = None,
        principal: Principal = IN_PROCESS,
    ) -> GatewayResponse:
        """Answer ``POST /v1/messages/count_tokens`` with ``{"input_tokens": N}``."""
        record = self._record("count_tokens", principal, headers, request_id)
        try:
            request = validate_count_tokens_request(body)
            record.model = request["model"]
            record.request = request
            if self.hooks.admitting:
                await self.hooks.admit(record)
            ctx = self._context(request, record)

            async def attempt(deployment: Deployment, done: AttemptOutcome) -> GatewayResponse:
                record.deployment_id = deployment.deployment_id
                record.provider = deployment.provider
                tokens = await self._count_tokens(deployment, request, ctx, record.upstream_headers)
                return GatewayResponse(body=orjson.dumps({"input_tokens": tokens}))

            response = await self._routed(request["model"], deployments, attempt, record)
        except BaseException as exc:
            failure = _as_failure(exc, principal, record.request_id)
            self._complete(record, failure)
            if failure is exc:
                raise
            raise failure from None
        self._complete(record, None)
        return response

    def models(self, model_id: str | None, query: Mapping[str, str]) -> bytes:
        """``GET /v1/models[/{model_id}]`` with its query parameters (both faces call this)."""
        return self.catalog.answer(model_id, query)

    def model_entry(self, name: str) -> dict[str, Any]:
        """Anthropic's model object for a model name (what ``/v1/models`` lists for it)."""
        return self.catalog.entry(name)

    def deployment_health(self) -> bytes:
        """Each deployment's state, for ``GET /health/deployments``."""
        return orjson.dumps({"deployments": self.router.report(self.config.deployments)})

    # --- plumbing ----------------------------------------------------------------------------------

    def _record(
        self, route: str, principal: Principal, headers: Mapping[str, str] | None, request_id: str | None
    ) -> RequestRecord:
        return RequestRecord(
            request_id or new_request_id(), route, principal, headers or {}, started=self.clock()
        )

    def _context(self, request: dict[str, Any], record: RequestRecord) -> CallContext:
        return CallContext(
            request_id=record.request_id,
            requested_model=request["model"],
            request=request,
            client_headers=record.headers,
            signer=self.signer,
        )

    async def _routed(
        self,
        model: str,
        explicit: list[Deployment] | None,
        attempt: Attempt[GatewayResponse],
        record: RequestRecord,
    ) -> GatewayResponse:
        return await run_routed(
            model, names=self.names, router=self.router, settings=self.config.router, attempt=attempt,
            explicit=explicit, clock=self.clock, on_attempt=lambda ended: self._attempt_ended(record, ended),
        )  # fmt: skip

    def _attempt_ended(self, record: RequestRecord, attempt: AttemptRecord) -> None:
        record.attempts.append(attempt)
        if self.hooks.attempt_listeners:
            self.hooks.attempt_ended(record, attempt)

    def _complete(
        self,
        record: RequestRecord,
        failure: BaseException | None,
        usage: Usage | None = None,
        *,
        client_gone: bool = False,
    ) -> None:
        """Close the record (once) and tell the hooks. A failure that is not a GatewayError is a bug (or
        a cancellation: the client left)."""
        if record.ended is not None:
            return
        record.ended = now = self.clock()
        record.usage = usage
        if client_gone or isinstance(failure, asyncio.CancelledError | GeneratorExit):
            record.status, record.outcome = CLIENT_GONE_STATUS, "client_gone"
        elif failure is None:
            record.status, record.outcome = 200, "ok"
            if record.first_byte is None:
                record.first_byte = now
        elif isinstance(failure, GatewayError):
            record.status, record.outcome, record.error = failure.status, "error", failure
        else:
            record.status, record.outcome, record.error = 500, "error", InternalError()
        if self.hooks.completion_listeners:
            self.hooks.completed(record)

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
        record: RequestRecord,
        *,
        stream: bool,
    ) -> GatewayResponse:
        record.deployment_id = deployment.deployment_id
        record.provider = deployment.provider
        if deployment.provider not in self._warm:
            await self._warm_up_off_loop(deployment.provider)
        provider = load_provider(deployment.provider)
        request = _within_output_limit(request, deployment)
        if isinstance(provider, LocalProvider):
            if len(request.get("tools") or ()) + len(request["messages"]) > LARGE_LOCAL_REQUEST:
                events = await asyncio.to_thread(provider.answer, deployment, request, ctx)
            else:
                events = provider.answer(deployment, request, ctx)
            usage, stop_reason = final_delta(events)
            if not stream:
                record.stop_reason = stop_reason
                return GatewayResponse(body=orjson.dumps(accumulate(events)), usage=usage)
            return GatewayResponse(stream=self.streams.replay(events, done, record, usage))
        native = deployment.provider in NATIVE_PROVIDERS
        work = None if native else tool_work(request)
        toolbox = None if work is None else self.server_tools.toolbox(request)
        edited = ServerSideEdits(request)
        if not native and ("context_management" in request or "max_input_tokens" in deployment.model_info):
            upstream_view = None if toolbox is None else toolbox.upstream_request
            edited = await server_side_edits(provider, deployment, request, ctx.client_headers, upstream_view)
            request = edited.request
        try:
            if work is RUN_TOOLS or (not native and edited.compaction is not None):
                toolbox = toolbox or self.server_tools.toolbox(request)
                return await self._server_tool_turn(
                    provider, deployment, edited, toolbox, ctx, done, record, stream
                )
            if toolbox is not None:  # deferred tools the client searches itself, or server blocks in history
                request = toolbox.upstream_request(request)
            return await self._call_upstream(
                provider, deployment, request, ctx, done, record, stream, edited.edits
            )
        except UpstreamError as exc:
            if native or not is_overflow(exc):
                raise
            raise await overflow_error(exc, provider, deployment, request) from None

    async def _call_upstream(
        self,
        provider: Provider,
        deployment: Deployment,
        request: dict[str, Any],
        ctx: CallContext,
        done: AttemptOutcome,
        record: RequestRecord,
        stream: bool,
        edits: Edits | None,
    ) -> GatewayResponse:
        opened = await self._open_call(provider, deployment, request, ctx, record, stream=stream, edits=edits)
        if isinstance(opened, Answer):
            record.stop_reason = opened.stop_reason
            body = opened.body if edits is None else report_in_message(opened.body, edits)
            return GatewayResponse(body=body, usage=opened.usage)
        return GatewayResponse(stream=self.streams.relay(opened, done, record))

    async def _server_tool_turn(
        self,
        provider: Provider,
        deployment: Deployment,
        edited: ServerSideEdits,
        toolbox: RequestTools,
        ctx: CallContext,
        done: AttemptOutcome,
        record: RequestRecord,
        stream: bool,
    ) -> GatewayResponse:
        """A turn in which the gateway runs server tools or compacts the conversation: several upstream
        calls, one Anthropic message (:mod:`anygate.tools.loop`). The calls before the client's first
        byte (a summary, the first answer) are retried by routing; a later call is retried on the same
        deployment (nothing of it reached the client yet), and its failure then ends a stream with
        ``event: error`` (a JSON answer fails as a whole, and may be retried by routing)."""
        limits = self.streams.limits
        request = edited.request
        compacted: Compacted | None = None
        if edited.compaction is not None:
            asked = toolbox.upstream_request(summary_request(request, edited.compaction))
            asked = _within_output_limit(asked, deployment)
            answer = await self._open_call(provider, deployment, asked, ctx, record, stream=False)
            assert isinstance(answer, Answer)
            summary = orjson.loads(answer.body)
            paused = edited.compaction.pause_after_compaction
            compacted = Compacted(summary_text(summary), summary.get("usage") or {}, paused=paused)
            if not paused:
                request = continued_request(request, compacted.summary)
        turn = ServerToolTurn(
            request,
            toolbox,
            ping_interval=limits["ping_interval"] if stream else None,
            context_management=edited.edits.report if edited.edits is not None else None,
            compacted=compacted,
            message_id=ctx.message_id,
        )
        opened_first: list[OpenStream] = []
        calls: list[dict[str, Any]] = []

        async def open_step(step_request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
            step_request = _within_output_limit(step_request, deployment)
            calls.append(step_request)
            if len(calls) == 1:  # before the client's first byte: routing retries it
                opened = await self._open_call(provider, deployment, step_request, ctx, record, stream=stream)
            else:
                opened = await self._open_later_call(provider, deployment, step_request, ctx, record, stream)
            if isinstance(opened, Answer):
                return _iterate(message_events(orjson.loads(opened.body)))
            if not opened_first:
                opened_first.append(opened)
            return stream_events(opened, **limits)

        first = None if compacted is not None and compacted.paused else await open_step(turn.first_request())
        if not stream:
            message = await turn.answer(first, open_step)
            record.stop_reason = turn.stop_reason
            return GatewayResponse(body=orjson.dumps(message), usage=turn.usage)
        held = opened_first[0].response if opened_first else None
        return GatewayResponse(stream=self.streams.turn(turn, first, open_step, done, record, held))

    async def _open_later_call(
        self,
        provider: Provider,
        deployment: Deployment,
        request: dict[str, Any],
        ctx: CallContext,
        record: RequestRecord,
        stream: bool,
    ) -> Answer | OpenStream:
        """An upstream call after a turn's first: retried on the same deployment like a first call (the
        client has nothing of it yet), and a context overflow answered as Anthropic's too-long prompt
        (a search or a fetch can fill the window in the middle of a turn)."""
        retries = max(self.config.router.num_retries, 0)
        for retry in range(1, retries + 2):
            try:
                return await self._open_call(provider, deployment, request, ctx, record, stream=stream)
            except UpstreamFailure as exc:
                delay = backoff_seconds(retry, exc, minimum=self.config.router.retry_after)
                if retry > retries or delay is None:
                    raise
                log.info("request %s: a later call of the turn failed (%s); retrying", record.request_id, exc)
                await asyncio.sleep(delay)
            except UpstreamError as exc:
                if not is_overflow(exc):
                    raise
                raise await overflow_error(exc, provider, deployment, request) from None
        raise AssertionError("unreachable")

    async def _open_call(
        self,
        provider: Provider,
        deployment: Deployment,
        request: dict[str, Any],
        ctx: CallContext,
        record: RequestRecord,
        *,
        stream: bool,
        edits: Edits | None = None,
    ) -> Answer | OpenStream:
        """One upstream call up to its answer (JSON) or its first translated bytes (a stream): every
        failure until then can still be retried, because the client has received nothing. A stream
        reports applied ``edits`` in its ``message_delta`` (which may come with the first bytes)."""
        call = provider.prepare(deployment, request, ctx, stream=stream)
        total, first_byte = self._timeouts(deployment)
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        amendable = True
        while True:  # at most twice: a call the upstream refused may be amended once (AmendableCall)
            upstream_request = call.request
            if record.upstream_headers:
                upstream_request.headers.update(record.upstream_headers)
            if provider.dynamic_credentials:
                await provider.authorize(deployment, upstream_request)
            if deadline is None:
                deadline = loop.time() + (first_byte if stream else total)
            left = max(deadline - loop.time(), 0.001)
            if not stream:
                status, headers, body = await self.upstream.fetch(upstream_request, timeout=left)
                if status < 300:
                    try:
                        return call.parse_response(body)
                    except ValueError as exc:
                        raise malformed_upstream("response", exc) from None
            else:
                response = await self.upstream.send(upstream_request, timeout=left)
                if response.status < 300:
                    break
                status, headers = response.status, response.headers
                body = await self.upstream.read(response, timeout=max(deadline - loop.time(), 1.0))
            amended = _amended(call, status, body) if amendable else None
            if amended is None:
                raise provider.map_error(status, headers, body)
            log.info("request %s: the upstream refused the call; retrying it amended", record.request_id)
            call, amendable = amended, False
        translator: StreamTranslator = call.stream_translator()
        if edits is not None:
            translator = ReportingTranslator(translator, edits)
        try:
            first = await first_bytes(response, translator, max(deadline - loop.time(), 0.001))
        except BaseException:
            response.close()
            raise
        if record.first_byte is None:
            record.first_byte = self.clock()
        return OpenStream(response, translator, first)

    async def _count_tokens(
        self, deployment: Deployment, request: dict[str, Any], ctx: CallContext, extra_headers: dict[str, str]
    ) -> int:
        if deployment.provider not in self._warm:
            await self._warm_up_off_loop(deployment.provider)
        provider = load_provider(deployment.provider)
        if isinstance(provider, LocalProvider):
            # Counting is CPU work proportional to the request (5 s for 30 MB): off the event loop.
            return await asyncio.to_thread(provider.count_tokens_locally, deployment, request)
        call = provider.prepare_count_tokens(deployment, request, ctx)
        if call is None:
            return await asyncio.to_thread(provider.count_tokens_locally, deployment, request)
        upstream_request = call.request
        if extra_headers:
            upstream_request.headers.update(extra_headers)
        if provider.dynamic_credentials:
            await provider.authorize(deployment, upstream_request)
        total, _ = self._timeouts(deployment)
        status, headers, body = await self.upstream.fetch(upstream_request, timeout=total)
        if status >= 300:
            raise provider.map_error(status, headers, body)
        try:
            return call.parse(body)
        except ValueError as exc:
            raise malformed_upstream("count_tokens answer", exc) from None


async def _iterate(events: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for event in events:
        yield event


def _amended(call: object, status: int, body: bytes) -> ProviderCall | None:
    """The call a provider sends instead when the upstream refused ``call`` in a way it can repair
    (``ProviderCall.amend``, optional), or None."""
    amend = getattr(call, "amend", None)
    return amend(status, body) if amend is not None else None


def _as_failure(exc: BaseException, principal: Principal, request_id: str) -> BaseException:
    """What a request that raised ``exc`` ends with, the same for both faces: a GatewayError as it is
    (a rejected key as its owner should see it), a request that could not be written again its 400, any
    other exception a bug (logged here, answered as a 500 ``api_error``); cancellations pass unchanged.
    Called inside the ``except`` block, so the log keeps the traceback."""
    if isinstance(exc, CredentialsRejected):
        return _for_principal(exc, principal)
    if isinstance(exc, GatewayError) or not isinstance(exc, Exception):
        return exc
    fault = client_fault(exc)
    if fault is not None:
        return fault
    log.exception("request %s failed inside the gateway", request_id)
    return InternalError()


def _for_principal(exc: CredentialsRejected, principal: Principal) -> GatewayError:
    """An upstream's refusal of the key, as the caller should see it: an in-process caller owns the key
    (it passed or configured it), a proxy client does not (see :class:`CredentialsRejected`)."""
    return exc.for_key_owner() if principal.kind == IN_PROCESS.kind else exc


def _warm_up(provider: object) -> None:
    warm_up = getattr(provider, "warm_up", None)
    if warm_up is not None:
        warm_up()


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
