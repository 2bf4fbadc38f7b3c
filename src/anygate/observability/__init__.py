"""Seeing what the gateway does: Prometheus metrics, JSON request logs, OpenTelemetry traces (an optional
extra) and the in-memory records the dashboard reads.

Everything here is a lifecycle hook (:mod:`anygate.hooks`); :func:`install` registers the ones the config
and the environment ask for on a gateway. With none of them on, the request path costs what it cost
before: the hooks are simply not registered.

::

    general_settings.metrics      (default true)   GET /metrics, MetricsHook
    general_settings.metrics_public (default false) /metrics without a key
    general_settings.ui           (default true)   GET /ui, RecentRequests
    general_settings.log_prompts  (default false)  prompts in the JSON request log
    --log-format json                              RequestLogHook
    OTEL_TRACES_EXPORTER / OTEL_EXPORTER_OTLP_*    TracingHook (pip install 'anygate[otel]')
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from anygate.observability.logs import RequestLogHook
from anygate.observability.recent import RecentRequests

if TYPE_CHECKING:
    from anygate.gateway import Gateway
    from anygate.observability.metrics import GatewayMetrics

log = logging.getLogger("anygate.observability")


@dataclass(slots=True)
class Observability:
    """What :func:`install` turned on for one gateway (the server's routes read it)."""

    metrics: GatewayMetrics | None = None
    recent: RecentRequests | None = None
    metrics_public: bool = False
    tracing: bool = False


def install(
    gateway: Gateway, *, log_format: str = "text", environ: Mapping[str, str] | None = None
) -> Observability:
    """Register the observability hooks that the gateway's config and the environment turn on."""
    general = gateway.config.general
    deployments = gateway.config.deployments
    found = Observability(metrics_public=general.metrics_public)
    if general.metrics:
        from anygate.observability.metrics import GatewayMetrics, MetricsHook

        found.metrics = GatewayMetrics()
        gateway.hooks.add(MetricsHook(found.metrics, deployments, gateway.router.health))
    if general.ui:
        found.recent = RecentRequests(deployments)
        gateway.hooks.add(found.recent)
    if log_format == "json":
        gateway.hooks.add(RequestLogHook(deployments, include_prompt=general.log_prompts))
    env = os.environ if environ is None else environ
    if tracing_requested(env):
        try:
            from anygate.observability.tracing import TracingHook, tracer_provider_from_environment

            provider, owned = tracer_provider_from_environment(env)
        except ImportError as exc:
            log.warning(
                "OTEL_* variables ask for traces but %s is not installed: pip install 'anygate[otel]'; "
                "tracing is off",
                exc.name or "OpenTelemetry",
            )
        else:
            gateway.hooks.add(TracingHook(provider, deployments, owns_provider=owned))
            found.tracing = True
    return found


def tracing_requested(env: Mapping[str, str]) -> bool:
    """Whether the standard OpenTelemetry variables ask for traces: an exporter other than ``none``, or an
    OTLP endpoint, and the SDK not disabled."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
