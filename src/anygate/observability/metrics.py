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

Values live in :mod:`anygate.observability.store` (plain attributes, rendered at scrape time); with
``--workers N`` each worker shares a snapshot of them once a second and ``/metrics`` adds them up,
whichever worker answers. The hook caches the values of each label combination, so a request costs a
few dictionary look-ups and additions (bench/observability_cost.py measures it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from anygate.costs import usage_cost
from anygate.deployment import Deployment
from anygate.hooks import AttemptRecord, Hook, RequestRecord
from anygate.observability.store import (
    Family,
    Histogram,
    Store,
    Value,
    merged,
    metrics_dir,
    other_snapshots,
    render,
    write_snapshot,
)
from anygate.routing.health import HealthBook

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
log = logging.getLogger("anygate.observability")
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


SHARE_SECONDS: Final = 1.0
"""How soon after a change a worker shares its values with the others (--workers N)."""

_OP, _MODEL, _DEPLOYMENT, _PROVIDER, _ERROR = (
    "gen_ai_operation_name", "gen_ai_request_model", "deployment", "gen_ai_provider_name", "error_type",
)  # fmt: skip
REQUESTS = Family(
    "anygate_requests", "counter", "Requests answered, by model group, deployment, status and error type.",
    (_OP, _MODEL, _DEPLOYMENT, "status", _ERROR),
)  # fmt: skip
REQUEST_DURATION = Family(
    "gen_ai_server_request_duration_seconds", "histogram",
    "Time from a request's arrival to the end of its answer (streams: the last byte).",
    (_OP, _MODEL, _PROVIDER, _ERROR), DURATION_BUCKETS,
)  # fmt: skip
TTFT = Family(
    "gen_ai_server_time_to_first_token_seconds", "histogram",
    "Time from a request's arrival to the first byte of its answer, for successful requests.",
    (_OP, _MODEL, _PROVIDER), TTFT_BUCKETS,
)  # fmt: skip
ATTEMPT_DURATION = Family(
    "gen_ai_client_operation_duration_seconds", "histogram",
    "Duration of each upstream attempt (retries and fallbacks included).",
    (_OP, _MODEL, _PROVIDER, _DEPLOYMENT, _ERROR), DURATION_BUCKETS,
)  # fmt: skip
TOKEN_USAGE = Family(
    "gen_ai_client_token_usage", "histogram",
    "Tokens per complete answer, by gen_ai_token_type (input includes cached input).",
    (_OP, _MODEL, _PROVIDER, "gen_ai_token_type"), TOKEN_BUCKETS,
)  # fmt: skip
TOKENS = Family(
    "anygate_tokens", "counter",
    "Tokens by type: input, output, cache_read, cache_creation (disjoint, as Anthropic counts).",
    (_MODEL, _DEPLOYMENT, "gen_ai_token_type"),
)  # fmt: skip
SPEND = Family(
    "anygate_spend_usd", "counter", "Dollars spent at the prices in model_info (deployments with prices).",
    (_MODEL, _DEPLOYMENT, "team"),
)  # fmt: skip
RETRIES = Family("anygate_retries", "counter", "Upstream attempts beyond a request's first one.", (_MODEL,))
FALLBACKS = Family(
    "anygate_fallbacks", "counter", "Moves to a fallback model group.", (_MODEL, "fallback_model")
)
COOLDOWNS = Family(
    "anygate_deployment_cooldowns", "counter", "Times a deployment was put in cooldown.", (_DEPLOYMENT,)
)
FAILURES = Family(
    "anygate_deployment_failures", "counter", "Upstream failures that count against a deployment's health.",
    (_DEPLOYMENT, _ERROR),
)  # fmt: skip
COOLDOWN_UNTIL = Family(
    "anygate_deployment_cooldown_until_timestamp_seconds", "gauge",
    "Unix time at which a deployment's latest cooldown ends (cooling down while > time()).",
    (_DEPLOYMENT,), merge="max",
)  # fmt: skip
LAST_FAILURE = Family(
    "anygate_deployment_last_failure_timestamp_seconds", "gauge", "Unix time of a deployment's last failure.",
    (_DEPLOYMENT,), merge="max",
)  # fmt: skip
IN_FLIGHT = Family(
    "anygate_requests_in_flight", "gauge", "Requests admitted and not yet answered.", (_OP,), merge="live"
)
OPEN_STREAMS = Family(
    "anygate_streams_open",
    "gauge",
    "Streaming requests admitted whose stream has not ended.",
    (),
    merge="live",
)
FAMILIES: Final = (
    REQUESTS, REQUEST_DURATION, TTFT, ATTEMPT_DURATION, TOKEN_USAGE, TOKENS, SPEND, RETRIES, FALLBACKS,
    COOLDOWNS, FAILURES, COOLDOWN_UNTIL, LAST_FAILURE, IN_FLIGHT, OPEN_STREAMS,
)  # fmt: skip


class GatewayMetrics:
    """The metric values of one gateway (tests run many gateways in one process, each with its own)."""

    def __init__(self) -> None:
        self.store = Store(FAMILIES)
        self.directory = metrics_dir()
        self.pid = os.getpid()

    def snapshot(self) -> dict[str, list[Any]]:
        """This process's values, taken on the event loop's thread (where they change)."""
        return self.store.snapshot()

    def render(self, snapshot: dict[str, list[Any]]) -> bytes:
        """The text format of ``snapshot`` plus, with several workers, the other workers' (blocking: the
        server calls it in a thread)."""
        snapshots = [(snapshot, True)]
        if self.directory is not None:
            snapshots.extend(other_snapshots(self.directory, self.pid))
        return render(merged(self.store.families, snapshots))

    def exposition(self) -> bytes:
        return self.render(self.snapshot())

    def share(self) -> None:
        """Write this worker's snapshot for the others (several workers only)."""
        if self.directory is not None:
            write_snapshot(self.directory, self.pid, self.snapshot())


_IN_FLIGHT: Final = "metrics.in_flight"


class MetricsHook(Hook):
    """Counts every request and attempt into :class:`GatewayMetrics`.

    Args:
        metrics: the values to count into.
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
        self._store = metrics.store
        self._deployments: dict[str, Deployment] = {d.deployment_id: d for d in deployments}
        self._model = BoundedLabel({d.model_name for d in self._deployments.values()})
        self._deployment = BoundedLabel(self._deployments)
        self._team = BoundedLabel()
        self._health = health
        self._wall_clock = wall_clock
        self._cooldown_seen: dict[str, float] = {}
        self._in_flight = {route: self._store.value(IN_FLIGHT.name, (op,)) for route, op in OPERATION.items()}
        self._open_streams = self._store.value(OPEN_STREAMS.name, ())
        self._series: dict[tuple[str, ...], _Series] = {}
        self._attempts: dict[tuple[str, ...], Histogram] = {}
        self._sharing = metrics.directory is not None
        self._share_pending = False

    async def admit(self, record: RequestRecord) -> None:
        gauge = self._in_flight.get(record.route)
        if gauge is None:
            return
        gauge.value += 1
        if record.stream:
            self._open_streams.value += 1
        record.context[_IN_FLIGHT] = True
        if self._sharing:
            self._share_soon()

    def attempt_ended(self, record: RequestRecord, attempt: AttemptRecord) -> None:
        error = attempt.error
        error_type = NO_ERROR if error is None else error.error_type
        key = (record.route, record.model, attempt.deployment_id, attempt.provider, error_type)
        histogram = self._attempts.get(key)
        if histogram is None:
            configured = self._deployments.get(attempt.deployment_id)
            model = self._model(configured.model_name if configured is not None else record.model)
            labels = (
                OPERATION.get(record.route, record.route), model, _provider(attempt.provider),
                self._deployment(attempt.deployment_id), error_type,
            )  # fmt: skip
            histogram = self._store.histogram(ATTEMPT_DURATION.name, labels)
            if len(self._attempts) < SERIES_CACHE:
                self._attempts[key] = histogram
        histogram.observe(max(attempt.latency, 0.0))
        if error is not None and error.counts_as_failure:
            self._failed(attempt.deployment_id, error_type)

    def _failed(self, deployment_id: str, error_type: str) -> None:
        store = self._store
        deployment = self._deployment(deployment_id)
        store.value(FAILURES.name, (deployment, error_type)).value += 1
        now = self._wall_clock()
        store.value(LAST_FAILURE.name, (deployment,)).value = now
        until = self._health.get(deployment_id).cooldown_until
        if until > self._cooldown_seen.get(deployment_id, 0.0):
            self._cooldown_seen[deployment_id] = until
            store.value(COOLDOWNS.name, (deployment,)).value += 1
            store.value(COOLDOWN_UNTIL.name, (deployment,)).value = now + (until - self._health.clock())

    def completed(self, record: RequestRecord) -> None:
        if record.context.pop(_IN_FLIGHT, False):
            self._in_flight[record.route].value -= 1
            if record.stream:
                self._open_streams.value -= 1
        error = record.error
        outcome = record.outcome
        error_type = (
            "client_gone" if outcome == "client_gone" else NO_ERROR if error is None else error.error_type
        )
        deployment_id = record.deployment_id or ""
        key = (
            record.route,
            record.model,
            deployment_id,
            record.provider or "",
            str(record.status),
            error_type,
        )
        series = self._series.get(key)
        if series is None:
            series = self._new_series(key)
        series.requests.value += 1
        latency = record.latency
        if latency is not None:
            series.duration.observe(latency)
        if outcome == "ok" and record.first_byte is not None:
            series.ttft.observe(record.first_byte - record.started)
        usage = record.usage
        if usage is not None and record.route == "messages":
            if outcome == "ok":  # an answer's usage; a partial one is still counted below
                cached = usage.cache_read_input_tokens + usage.cache_creation_input_tokens
                series.usage_input.observe(usage.input_tokens + cached)
                series.usage_output.observe(usage.output_tokens)
            series.input.value += usage.input_tokens
            series.output.value += usage.output_tokens
            series.cache_read.value += usage.cache_read_input_tokens
            series.cache_creation.value += usage.cache_creation_input_tokens
            if series.model_info:
                cost = usage_cost(series.model_info, usage)
                if cost:
                    team = self._team(record.principal.team_id)
                    self._store.value(SPEND.name, (series.model, series.deployment, team)).value += cost
        if len(record.attempts) > 1:
            self._count_retries(series.model, record.attempts)
        if self._sharing and not self._share_pending:
            self._share_soon()

    def _new_series(self, key: tuple[str, ...]) -> _Series:
        route, requested, deployment_id, provider, status, error_type = key
        configured = self._deployments.get(deployment_id)
        model = self._model(configured.model_name if configured is not None else requested)
        series = _Series(
            self._store, route, model, self._deployment(deployment_id or None), _provider(provider), status,
            error_type, configured.model_info if configured is not None else {},
        )  # fmt: skip
        if len(self._series) < SERIES_CACHE:  # client-made model names must not grow the cache forever
            self._series[key] = series
        return series

    def _count_retries(self, model: str, attempts: list[AttemptRecord]) -> None:
        store = self._store
        store.value(RETRIES.name, (model,)).value += len(attempts) - 1
        group = self._group(attempts[0].deployment_id)
        for attempt in attempts[1:]:
            current = self._group(attempt.deployment_id)
            if current != group:
                store.value(FALLBACKS.name, (self._model(group), self._model(current))).value += 1
                group = current

    def _group(self, deployment_id: str) -> str:
        configured = self._deployments.get(deployment_id)
        return configured.model_name if configured is not None else UNKNOWN

    def _share_soon(self) -> None:
        if self._share_pending:
            return
        self._share_pending = True
        asyncio.get_running_loop().call_later(SHARE_SECONDS, self._share)

    def _share(self) -> None:
        self._share_pending = False
        try:
            self.metrics.share()
        except OSError as exc:
            log.warning("cannot share metrics with the other workers: %s", exc)

    async def aclose(self) -> None:
        """Share the final values (counters outlive the worker; its in-flight gauges no longer count)."""
        if self._sharing:
            self._share()


SERIES_CACHE: Final = 10_000
"""Label combinations whose values the hook keeps resolved (far more than bounded labels produce)."""


class _Series:
    """The values one label combination of a request touches, resolved once."""

    __slots__ = (
        "cache_creation", "cache_read", "deployment", "duration", "input", "model", "model_info", "output",
        "requests", "ttft", "usage_input", "usage_output",
    )  # fmt: skip

    def __init__(
        self,
        store: Store,
        route: str,
        model: str,
        deployment: str,
        provider: str,
        status: str,
        error_type: str,
        model_info: Mapping[str, Any],
    ) -> None:
        operation = OPERATION.get(route, route)
        self.model, self.deployment, self.model_info = model, deployment, model_info
        self.requests: Value = store.value(REQUESTS.name, (operation, model, deployment, status, error_type))
        self.duration = store.histogram(REQUEST_DURATION.name, (operation, model, provider, error_type))
        self.ttft = store.histogram(TTFT.name, (operation, model, provider))
        self.usage_input = store.histogram(TOKEN_USAGE.name, (operation, model, provider, "input"))
        self.usage_output = store.histogram(TOKEN_USAGE.name, (operation, model, provider, "output"))
        self.input = store.value(TOKENS.name, (model, deployment, "input"))
        self.output = store.value(TOKENS.name, (model, deployment, "output"))
        self.cache_read = store.value(TOKENS.name, (model, deployment, "cache_read"))
        self.cache_creation = store.value(TOKENS.name, (model, deployment, "cache_creation"))


def _provider(key: str) -> str:
    return PROVIDER_NAMES.get(key, key) if key else UNKNOWN
