"""Prometheus metrics: a lifecycle hook that counts what requests and upstream attempts did, and the text
exposition of ``GET /metrics``.

Names and labels follow the OpenTelemetry GenAI semantic conventions (v1.37 and later) as the
OpenTelemetry-to-Prometheus translation spells them: dots become underscores and the unit becomes a
suffix (``gen_ai.server.time_to_first_token`` in seconds is ``gen_ai_server_time_to_first_token_seconds``).
The gateway is a GenAI *server* to its clients (``gen_ai_server_*``, one observation per request) and a
GenAI *client* of its upstreams (``gen_ai_client_*``, one per upstream attempt). What the conventions do
not cover (spend, retries, fallbacks, cooldowns, in-flight requests) is named ``anygate_*``.

Label values are bounded (:class:`BoundedLabel`): models, deployments and teams outside the config get
one ``other`` value once a cap is reached, so a client sending random model names cannot grow the
series without bound; no request id, key or user id is ever a label.

With ``--workers N`` every worker writes its values to memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR``
(the CLI makes a temporary one) and ``/metrics`` adds them up, whichever worker answers.

Cost: the hook caches the labelled children of each label combination, so a request costs a few
dictionary look-ups and lock-protected additions (measured in bench/, see docs/observability.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from anygate.costs import usage_cost
from anygate.deployment import Deployment
from anygate.hooks import AttemptRecord, Hook, RequestRecord
from anygate.routing.health import HealthBook

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST

DURATION_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
"""The conventions' advised boundaries for ``gen_ai.client.operation.duration`` (and request duration)."""
TTFT_BUCKETS: Final = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
"""The conventions' advised boundaries for ``gen_ai.server.time_to_first_token``."""
TOKEN_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
"""The conventions' advised boundaries for ``gen_ai.client.token.usage``."""

OPERATION: Final = {"messages": "chat", "count_tokens": "count_tokens"}
"""Route → ``gen_ai.operation.name``: Messages is the conventions' ``chat``; counting has no name there."""
PROVIDER_NAMES: Final = {"anthropic": "anthropic", "openai": "openai", "bedrock": "aws.bedrock",
                         "gemini": "gcp.gemini", "vertex_ai": "gcp.vertex_ai", "azure": "azure.ai.openai",
                         "groq": "groq", "deepseek": "deepseek", "mistral": "mistral_ai", "xai": "x_ai",
                         "perplexity": "perplexity", "cohere": "cohere"}  # fmt: skip
"""anygate provider keys → the conventions' well-known ``gen_ai.provider.name`` values; others as they are."""
TOKEN_TYPES: Final = ("input", "output", "cache_read", "cache_creation")
"""``anygate_tokens_total`` types: Anthropic's four disjoint counts. The conventions' histogram uses only
``input`` (all input tokens, cached ones included, as the conventions ask) and ``output``."""
NO_ERROR: Final = ""
OTHER: Final = "other"
UNKNOWN: Final = "none"
LABEL_CAP: Final = 50
"""Distinct values a label keeps per process beyond the configured ones before it says ``other``."""


class BoundedLabel:
    """Label values from a known set, plus the first :data:`LABEL_CAP` others seen; the rest are ``other``."""

    __slots__ = ("_cap", "_seen")

    def __init__(self, known: Iterable[str] = (), cap: int = LABEL_CAP) -> None:
        self._seen: set[str] = set(known)
        self._cap = len(self._seen) + cap

    def __call__(self, value: str | None) -> str:
        if not value:
            return UNKNOWN
        seen = self._seen
        if value in seen:
            return value
        if len(seen) < self._cap:
            seen.add(value)
            return value
        return OTHER


def multiprocess_dir() -> str | None:
    """The directory of multi-process mode, when the server runs several workers."""
    return os.environ.get(MULTIPROC_ENV) or None


class GatewayMetrics:
    """The metric families of one gateway, on a registry of their own (tests run many gateways)."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        model, deployment, provider = "gen_ai_request_model", "deployment", "gen_ai_provider_name"
        operation, error = "gen_ai_operation_name", "error_type"
        self.requests = Counter(
            "anygate_requests", "Requests answered, by model group, deployment, HTTP status and error type.",
            [operation, model, deployment, "status", error], registry=registry,
        )  # fmt: skip
        self.request_duration = Histogram(
            "gen_ai_server_request_duration_seconds",
            "Time from a request's arrival to the end of its answer (streams: the last byte).",
            [operation, model, provider, error], buckets=DURATION_BUCKETS, registry=registry,
        )  # fmt: skip
        self.ttft = Histogram(
            "gen_ai_server_time_to_first_token_seconds",
            "Time from a request's arrival to the first byte of its answer, for successful requests.",
            [operation, model, provider], buckets=TTFT_BUCKETS, registry=registry,
        )  # fmt: skip
        self.attempt_duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "Duration of each upstream attempt (retries and fallbacks included).",
            [operation, model, provider, deployment, error], buckets=DURATION_BUCKETS, registry=registry,
        )  # fmt: skip
        self.token_usage = Histogram(
            "gen_ai_client_token_usage", "Tokens per answer, by gen_ai_token_type (input includes cached).",
            [operation, model, provider, "gen_ai_token_type"], buckets=TOKEN_BUCKETS, registry=registry,
        )  # fmt: skip
        self.tokens = Counter(
            "anygate_tokens",
            "Tokens by type: input, output, cache_read, cache_creation (disjoint, as Anthropic counts).",
            [model, deployment, "gen_ai_token_type"], registry=registry,
        )  # fmt: skip
        self.spend = Counter(
            "anygate_spend_usd", "Dollars spent, at the prices in model_info (deployments with prices only).",
            [model, deployment, "team"], registry=registry,
        )  # fmt: skip
        self.retries = Counter(
            "anygate_retries", "Upstream attempts beyond a request's first one.", [model], registry=registry
        )
        self.fallbacks = Counter(
            "anygate_fallbacks", "Moves to a fallback model group.", [model, "fallback_model"],
            registry=registry,
        )  # fmt: skip
        self.cooldowns = Counter(
            "anygate_deployment_cooldowns", "Times a deployment was put in cooldown.", [deployment],
            registry=registry,
        )  # fmt: skip
        self.failures = Counter(
            "anygate_deployment_failures", "Upstream failures that count against a deployment's health.",
            [deployment, error], registry=registry,
        )  # fmt: skip
        self.cooldown_until = Gauge(
            "anygate_deployment_cooldown_until_timestamp_seconds",
            "Unix time at which a deployment's latest cooldown ends (cooling down while > time()).",
            [deployment], multiprocess_mode="max", registry=registry,
        )  # fmt: skip
        self.last_failure = Gauge(
            "anygate_deployment_last_failure_timestamp_seconds", "Unix time of a deployment's last failure.",
            [deployment], multiprocess_mode="max", registry=registry,
        )  # fmt: skip
        self.in_flight = Gauge(
            "anygate_requests_in_flight", "Requests admitted and not yet answered.", [operation],
            multiprocess_mode="livesum", registry=registry,
        )  # fmt: skip
        self.open_streams = Gauge(
            "anygate_streams_open", "Streaming requests admitted whose stream has not ended.",
            multiprocess_mode="livesum", registry=registry,
        )  # fmt: skip

    def exposition(self) -> bytes:
        """The text format of every metric: this process's, or all workers' in multi-process mode."""
        directory = multiprocess_dir()
        if directory is None:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(registry)


_IN_FLIGHT: Final = "metrics.in_flight"


class MetricsHook(Hook):
    """Counts every request and attempt into :class:`GatewayMetrics`.

    Args:
        metrics: the families to count into.
        deployments: the configured deployments (their model groups, prices and ids bound the labels).
        health: the router's health book, read after a failure to see whether it started a cooldown.
        wall_clock: Unix time, for the cooldown timestamps.
    """

    def __init__(
        self,
        metrics: GatewayMetrics,
        deployments: Iterable[Deployment],
        health: HealthBook,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self._deployments: dict[str, Deployment] = {d.deployment_id: d for d in deployments}
        self._model = BoundedLabel({d.model_name for d in self._deployments.values()})
        self._deployment = BoundedLabel(self._deployments)
        self._team = BoundedLabel()
        self._health = health
        self._wall_clock = wall_clock
        self._cooldown_seen: dict[str, float] = {}
        self._in_flight = {route: metrics.in_flight.labels(op) for route, op in OPERATION.items()}
        self._series: dict[tuple[str, ...], _Series] = {}

    async def admit(self, record: RequestRecord) -> None:
        gauge = self._in_flight.get(record.route)
        if gauge is None:
            return
        gauge.inc()
        if record.stream:
            self.metrics.open_streams.inc()
        record.context[_IN_FLIGHT] = True

    def attempt_ended(self, record: RequestRecord, attempt: AttemptRecord) -> None:
        metrics = self.metrics
        error = attempt.error
        deployment = self._deployment(attempt.deployment_id)
        error_type = NO_ERROR if error is None else error.error_type
        configured = self._deployments.get(attempt.deployment_id)
        model = self._model(configured.model_name if configured is not None else record.model)
        metrics.attempt_duration.labels(
            OPERATION.get(record.route, record.route),
            model,
            _provider(attempt.provider),
            deployment,
            error_type,
        ).observe(max(attempt.latency, 0.0))
        if error is None or not error.counts_as_failure:
            return
        metrics.failures.labels(deployment, error_type).inc()
        now = self._wall_clock()
        metrics.last_failure.labels(deployment).set(now)
        health = self._health.get(attempt.deployment_id)
        until = health.cooldown_until
        if until > self._cooldown_seen.get(attempt.deployment_id, 0.0):
            self._cooldown_seen[attempt.deployment_id] = until
            metrics.cooldowns.labels(deployment).inc()
            metrics.cooldown_until.labels(deployment).set(now + (until - self._health.clock()))

    def completed(self, record: RequestRecord) -> None:
        if record.context.pop(_IN_FLIGHT, False):
            self._in_flight[record.route].dec()
            if record.stream:
                self.metrics.open_streams.dec()
        configured = self._deployments.get(record.deployment_id or "")
        model = self._model(configured.model_name if configured is not None else record.model)
        error = record.error
        error_type = NO_ERROR if error is None else error.error_type
        if record.outcome == "client_gone":
            error_type = "client_gone"
        deployment = self._deployment(record.deployment_id)
        key = (record.route, model, deployment, record.provider or UNKNOWN, str(record.status), error_type)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(self.metrics, key)
        series.requests.inc()
        latency = record.latency
        if latency is not None:
            series.duration.observe(latency)
        if record.outcome == "ok" and record.first_byte is not None:
            series.ttft.observe(record.first_byte - record.started)
        usage = record.usage
        if usage is not None and record.route == "messages":
            if record.outcome == "ok":  # an answer's usage; a partial one is still counted below
                cached = usage.cache_read_input_tokens + usage.cache_creation_input_tokens
                series.usage_input.observe(usage.input_tokens + cached)
                series.usage_output.observe(usage.output_tokens)
            series.input.inc(usage.input_tokens)
            series.output.inc(usage.output_tokens)
            if usage.cache_read_input_tokens:
                series.cache_read.inc(usage.cache_read_input_tokens)
            if usage.cache_creation_input_tokens:
                series.cache_creation.inc(usage.cache_creation_input_tokens)
            if configured is not None and configured.model_info:
                cost = usage_cost(configured.model_info, usage)
                if cost:
                    self.metrics.spend.labels(model, deployment, self._team(record.principal.team_id)).inc(
                        cost
                    )
        attempts = record.attempts
        if len(attempts) > 1:
            self._count_retries(model, attempts)

    def _count_retries(self, model: str, attempts: list[AttemptRecord]) -> None:
        metrics = self.metrics
        metrics.retries.labels(model).inc(len(attempts) - 1)
        group = self._group(attempts[0].deployment_id)
        for attempt in attempts[1:]:
            current = self._group(attempt.deployment_id)
            if current != group:
                metrics.fallbacks.labels(self._model(group), self._model(current)).inc()
                group = current

    def _group(self, deployment_id: str) -> str:
        configured = self._deployments.get(deployment_id)
        return configured.model_name if configured is not None else UNKNOWN

    async def aclose(self) -> None:
        if multiprocess_dir() is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class _Series:
    """The labelled children one label combination of a request touches, resolved once."""

    __slots__ = (
        "cache_creation", "cache_read", "duration", "input", "output", "requests", "ttft", "usage_input",
        "usage_output",
    )  # fmt: skip

    def __init__(self, metrics: GatewayMetrics, key: tuple[str, ...]) -> None:
        route, model, deployment, provider_key, status, error_type = key
        operation = OPERATION.get(route, route)
        provider = _provider(provider_key)
        self.requests = metrics.requests.labels(operation, model, deployment, status, error_type)
        self.duration = metrics.request_duration.labels(operation, model, provider, error_type)
        self.ttft = metrics.ttft.labels(operation, model, provider)
        self.usage_input = metrics.token_usage.labels(operation, model, provider, "input")
        self.usage_output = metrics.token_usage.labels(operation, model, provider, "output")
        self.input = metrics.tokens.labels(model, deployment, "input")
        self.output = metrics.tokens.labels(model, deployment, "output")
        self.cache_read = metrics.tokens.labels(model, deployment, "cache_read")
        self.cache_creation = metrics.tokens.labels(model, deployment, "cache_creation")


def _provider(key: str) -> str:
    return PROVIDER_NAMES.get(key, key) if key else UNKNOWN
