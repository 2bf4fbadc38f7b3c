"""OpenTelemetry traces: a server span per request with a client span per upstream attempt.

Imported only when tracing is on (``pip install 'anygate[otel]'`` and the standard ``OTEL_*`` variables,
see :func:`anygate.observability.tracing_requested`); with tracing off nothing of OpenTelemetry is loaded.

The request span starts at admission, as a child of the client's ``traceparent`` when it sent one (the
propagators of ``OTEL_PROPAGATORS``, W3C trace context by default), and puts its own context into
:attr:`~anygate.hooks.RequestRecord.upstream_headers`, which the gateway adds to every upstream request:
the upstream's spans become children of the request span. Attempt spans are recorded when each attempt
ends, with its real start and end times. Attributes follow the GenAI semantic conventions
(``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``, ``gen_ai.usage.*``,
``gen_ai.response.finish_reasons``, ``error.type``); prompts and keys are never attributes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from anygate.deployment import Deployment
from anygate.hooks import AttemptRecord, Hook, RequestRecord
from anygate.observability.metrics import OPERATION, PROVIDER_NAMES

TRACER_NAME: Final = "anygate"
DEFAULT_SERVICE_NAME: Final = "anygate"
_SPAN: Final = "tracing.span"
FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
"""One answer, one reason: Anthropic's ``stop_reason`` as it is (``end_turn``, ``tool_use``…)."""


def tracer_provider_from_environment(env: Mapping[str, str]) -> tuple[trace.TracerProvider, bool]:
    """The tracer provider to use and whether the gateway owns it (and so flushes it at shutdown).

    The host process's global SDK provider when it set one up (the SDK embedded in an instrumented
    application); else a provider of the gateway's own, configured by ``OTEL_*``: ``OTEL_TRACES_EXPORTER``
    (``otlp``, the default, over HTTP/protobuf; ``console``), the exporter's own ``OTEL_EXPORTER_OTLP_*``
    variables, ``OTEL_SERVICE_NAME`` (default ``anygate``), and the sampler and batch variables the SDK
    reads itself.
    """
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current, False
    attributes = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": DEFAULT_SERVICE_NAME}
    provider = TracerProvider(resource=Resource.create(attributes))
    for exporter in _exporters(env.get("OTEL_TRACES_EXPORTER", "otlp")):
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider, True


def _exporters(names: str) -> Iterable[SpanExporter]:
    for name in (n.strip().lower() for n in names.split(",")):
        if name == "console":
            yield ConsoleSpanExporter()
        elif name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            yield OTLPSpanExporter()
        elif name and name != "none":
            raise ValueError(
                f"OTEL_TRACES_EXPORTER={name!r} is not supported by anygate (otlp, console, none)"
            )


class TracingHook(Hook):
    """Records each request and its upstream attempts as spans.

    Args:
        provider: the tracer provider (tests pass one with an in-memory exporter).
        deployments: the configured deployments (upstream model names and addresses for attempt spans).
        owns_provider: shut the provider down (flushing its spans) when the gateway closes.
    """

    def __init__(
        self,
        provider: trace.TracerProvider,
        deployments: Iterable[Deployment] = (),
        *,
        owns_provider: bool = False,
    ) -> None:
        self._provider = provider
        self._owns_provider = owns_provider
        self._tracer = provider.get_tracer(TRACER_NAME)
        self._deployments = {d.deployment_id: d for d in deployments}

    async def aclose(self) -> None:
        """Flush the spans still batched (a provider the gateway made; the host's is the host's)."""
        if self._owns_provider and isinstance(self._provider, TracerProvider):
            await asyncio.to_thread(self._provider.shutdown)

    async def admit(self, record: RequestRecord) -> None:
        span = self._start(record)
        record.context[_SPAN] = span
        propagate.inject(record.upstream_headers, context=trace.set_span_in_context(span))

    def _start(self, record: RequestRecord) -> Span:
        operation = OPERATION.get(record.route, record.route)
        return self._tracer.start_span(
            f"{operation} {record.model}".strip(),
            context=propagate.extract(record.headers),
            kind=SpanKind.SERVER,
            start_time=_ns(record.started_at),
            attributes={
                "gen_ai.operation.name": operation,
                "gen_ai.request.model": record.model,
                "anygate.request_id": record.request_id,
                "anygate.stream": record.stream,
            },
        )

    def attempt_ended(self, record: RequestRecord, attempt: AttemptRecord) -> None:
        parent = record.context.get(_SPAN)
        if parent is None:
            return
        deployment = self._deployments.get(attempt.deployment_id)
        operation = OPERATION.get(record.route, record.route)
        model = deployment.upstream_model if deployment is not None else record.model
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": PROVIDER_NAMES.get(attempt.provider, attempt.provider),
            "gen_ai.request.model": model,
            "anygate.deployment_id": attempt.deployment_id,
            "anygate.attempt.abandoned": attempt.abandoned,
        }
        if deployment is not None and deployment.api_base:
            address = urlsplit(deployment.api_base)
            if address.hostname:
                attributes["server.address"] = address.hostname
            if address.port:
                attributes["server.port"] = address.port
        span = self._tracer.start_span(
            f"{operation} {model}",
            context=trace.set_span_in_context(parent),
            kind=SpanKind.CLIENT,
            start_time=_ns(_wall(record, attempt.started)),
            attributes=attributes,
        )
        error = attempt.error
        if error is None and not attempt.abandoned and record.stop_reason is not None:
            # The attempt that answered (the gateway sets the stop reason before that attempt ends).
            span.set_attribute(FINISH_REASONS, (record.stop_reason,))
        if error is not None:
            span.set_attribute("error.type", error.error_type)
            span.set_attribute("http.response.status_code", error.status)
            span.set_status(Status(StatusCode.ERROR, error.message))
        span.end(end_time=_ns(_wall(record, attempt.ended)))

    def completed(self, record: RequestRecord) -> None:
        span = record.context.pop(_SPAN, None)
        if span is None:  # refused before admission (validation, authentication of a hook)
            span = self._start(record)
        if record.provider:
            span.set_attribute("gen_ai.provider.name", PROVIDER_NAMES.get(record.provider, record.provider))
        if record.deployment_id:
            span.set_attribute("anygate.deployment_id", record.deployment_id)
        span.set_attribute("http.response.status_code", record.status)
        span.set_attribute("anygate.attempts", len(record.attempts))
        principal = record.principal
        if principal.team_id:
            span.set_attribute("anygate.team_id", principal.team_id)
        if principal.key_id:
            span.set_attribute("anygate.key_id", principal.key_id)
        usage = record.usage
        if usage is not None:
            span.set_attribute(
                "gen_ai.usage.input_tokens",
                usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens,
            )
            span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
            span.set_attribute("gen_ai.usage.cache_read.input_tokens", usage.cache_read_input_tokens)
            span.set_attribute("gen_ai.usage.cache_creation.input_tokens", usage.cache_creation_input_tokens)
        if record.stop_reason is not None:
            span.set_attribute(FINISH_REASONS, (record.stop_reason,))
        ttft = record.time_to_first_token
        if ttft is not None and record.outcome == "ok":
            span.set_attribute("gen_ai.server.time_to_first_token", ttft)
        if record.outcome == "client_gone":
            span.set_attribute("error.type", "client_gone")
            span.set_status(Status(StatusCode.ERROR, "the client left before the answer was complete"))
        elif record.error is not None:
            span.set_attribute("error.type", record.error.error_type)
            span.set_status(Status(StatusCode.ERROR, record.error.message))
        ended = record.ended if record.ended is not None else record.started
        span.end(end_time=_ns(_wall(record, ended)))


def _wall(record: RequestRecord, monotonic: float) -> float:
    """A time of the gateway's monotonic clock as Unix time (the record knows both at its start)."""
    return record.started_at + (monotonic - record.started)


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)
