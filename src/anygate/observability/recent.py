"""What the dashboard reads: the most recent requests and per-minute totals, kept in memory.

:class:`RecentRequests` is a lifecycle hook that keeps, per process, a bounded ring of compact request
entries (no prompt, no key: the principal's key id, user and team) and one bucket of totals per minute
for the last day. The request path pays for one small tuple and a handful of additions; breakdowns by
model, deployment, key, team and user, and percentiles, are computed when the dashboard asks.

With ``--workers N`` each worker keeps its own: the dashboard shows the worker that answered
(docs/observability.md says so; ``/metrics`` is the place for totals across workers).
"""

from __future__ import annotations

import bisect
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from anygate.costs import usage_cost
from anygate.deployment import Deployment
from anygate.hooks import Hook, RequestRecord

RING_SIZE: Final = 10_000
"""Recent requests kept for the log and the breakdowns."""
BUCKET_SECONDS: Final = 60
BUCKETS_KEPT: Final = 24 * 60
LATENCY_BOUNDS: Final = tuple(0.001 * 1.25**i for i in range(72))
"""Latency histogram boundaries (1 ms to ~9 min, 25% apart): percentiles within one bucket's width."""
DIMENSIONS: Final = ("model", "deployment", "key", "team", "user")


class Entry(NamedTuple):
    """One request, as the dashboard shows it."""

    time: float
    request_id: str
    route: str
    model: str
    deployment: str | None
    provider: str | None
    key: str | None
    team: str | None
    user: str | None
    status: int
    outcome: str
    error_type: str | None
    error: str | None
    stream: bool
    attempts: int
    latency: float
    ttft: float | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int
    cost: float | None
    stop_reason: str | None


@dataclass(slots=True)
class Bucket:
    """Totals of one minute."""

    start: float
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    cost: float = 0.0
    latencies: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS) + 1))


class RecentRequests(Hook):
    """The dashboard's memory: recent request entries and per-minute buckets."""

    def __init__(
        self,
        deployments: Iterable[Deployment],
        *,
        ring_size: int = RING_SIZE,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._deployments = {d.deployment_id: d for d in deployments}
        self.entries: deque[Entry] = deque(maxlen=ring_size)
        self.buckets: deque[Bucket] = deque(maxlen=BUCKETS_KEPT)
        self._wall_clock = wall_clock

    def completed(self, record: RequestRecord) -> None:
        usage = record.usage
        deployment = self._deployments.get(record.deployment_id or "")
        cost = usage_cost(deployment.model_info, usage) if deployment is not None else None
        principal = record.principal
        error = record.error
        latency = record.latency or 0.0
        ended = record.started_at + latency
        entry = Entry(
            ended, record.request_id, record.route, record.model, record.deployment_id, record.provider,
            principal.key_id, principal.team_id, principal.user_id, record.status, record.outcome or "error",
            None if error is None else error.error_type, None if error is None else error.message,
            record.stream, len(record.attempts), latency, record.time_to_first_token,
            usage.input_tokens if usage else 0, usage.output_tokens if usage else 0,
            usage.cache_read_input_tokens if usage else 0, usage.cache_creation_input_tokens if usage else 0,
            cost, record.stop_reason,
        )  # fmt: skip
        self.entries.append(entry)
        start = ended - ended % BUCKET_SECONDS
        buckets = self.buckets
        if not buckets or buckets[-1].start < start:
            buckets.append(Bucket(start))
        bucket = buckets[-1]
        bucket.requests += 1
        if entry.outcome == "error":
            bucket.errors += 1
        bucket.input_tokens += entry.input_tokens
        bucket.output_tokens += entry.output_tokens
        bucket.cache_read_tokens += entry.cache_read_tokens
        bucket.cache_creation_tokens += entry.cache_creation_tokens
        if cost:
            bucket.cost += cost
        bucket.latencies[bisect.bisect_left(LATENCY_BOUNDS, latency)] += 1

    # --- what the dashboard asks --------------------------------------------------------------------

    def summary(self, window: float) -> dict[str, Any]:
        """Totals, percentiles, a per-minute series and breakdowns over the last ``window`` seconds."""
        now = self._wall_clock()
        since = now - window
        buckets = [b for b in self.buckets if b.start + BUCKET_SECONDS > since]
        latencies = [0] * (len(LATENCY_BOUNDS) + 1)
        for bucket in buckets:
            for i, count in enumerate(bucket.latencies):
                latencies[i] += count
        requests = sum(b.requests for b in buckets)
        totals = {
            "requests": requests,
            "errors": sum(b.errors for b in buckets),
            "input_tokens": sum(b.input_tokens for b in buckets),
            "output_tokens": sum(b.output_tokens for b in buckets),
            "cache_read_tokens": sum(b.cache_read_tokens for b in buckets),
            "cache_creation_tokens": sum(b.cache_creation_tokens for b in buckets),
            "spend": round(sum(b.cost for b in buckets), 6),
            "latency_p50": _percentile(latencies, 0.50),
            "latency_p95": _percentile(latencies, 0.95),
        }
        totals["cache_hit_rate"] = _cache_hit_rate(totals)
        series = _series(buckets, since, now)
        entries = [e for e in self.entries if e.time > since]
        return {
            "window_seconds": window,
            "now": now,
            "totals": totals,
            "series": series,
            "breakdowns": {dimension: _breakdown(entries, dimension) for dimension in DIMENSIONS},
            "requests_kept": len(self.entries),
        }

    def requests(self, filters: Mapping[str, str], limit: int = 200) -> list[dict[str, Any]]:
        """The most recent entries, newest first, that match every filter (``model``, ``deployment``,
        ``key``, ``team``, ``user``, ``status``, ``outcome``, ``stop_reason``, ``q`` a substring of the
        request id)."""
        wanted = {name: value for name, value in filters.items() if value and name in _FILTERS}
        found: list[dict[str, Any]] = []
        for entry in reversed(self.entries):
            if all(_FILTERS[name](entry, value) for name, value in wanted.items()):
                found.append(entry._asdict())
                if len(found) >= limit:
                    break
        return found


def _series(buckets: list[Bucket], since: float, now: float) -> dict[str, list[Any]]:
    """One point per minute of the window; minutes without requests are zeros (latency: gaps)."""
    by_start = {b.start: b for b in buckets}
    first = since - since % BUCKET_SECONDS
    empty = Bucket(0.0)
    series: dict[str, list[Any]] = {name: [] for name in _SERIES}
    start = first
    while start <= now:
        bucket = by_start.get(start, empty)
        series["time"].append(start)
        series["requests"].append(bucket.requests)
        series["errors"].append(bucket.errors)
        series["latency_p50"].append(_percentile(bucket.latencies, 0.50))
        series["latency_p95"].append(_percentile(bucket.latencies, 0.95))
        series["input_tokens"].append(
            bucket.input_tokens + bucket.cache_read_tokens + bucket.cache_creation_tokens
        )
        series["output_tokens"].append(bucket.output_tokens)
        series["cache_hit_rate"].append(_cache_hit_rate(_bucket_tokens(bucket)))
        series["spend"].append(round(bucket.cost, 6))
        start += BUCKET_SECONDS
    return series


_SERIES: Final = (
    "time", "requests", "errors", "latency_p50", "latency_p95", "input_tokens", "output_tokens",
    "cache_hit_rate", "spend",
)  # fmt: skip

_FILTERS: Final[Mapping[str, Callable[[Entry, str], bool]]] = {
    "model": lambda e, v: e.model == v,
    "deployment": lambda e, v: e.deployment == v,
    "key": lambda e, v: e.key == v,
    "team": lambda e, v: e.team == v,
    "user": lambda e, v: e.user == v,
    "status": lambda e, v: str(e.status) == v,
    "outcome": lambda e, v: e.outcome == v,
    "stop_reason": lambda e, v: e.stop_reason == v,
    "q": lambda e, v: v in e.request_id,
}


def _dimension_value(entry: Entry, dimension: str) -> str | None:
    return entry.model if dimension == "model" else getattr(entry, dimension)


def _breakdown(entries: list[Entry], dimension: str) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    latencies: dict[str, list[float]] = {}
    for entry in entries:
        value = _dimension_value(entry, dimension)
        if value is None:
            continue
        row = rows.get(value)
        if row is None:
            row = rows[value] = {
                "name": value, "requests": 0, "errors": 0, "input_tokens": 0, "output_tokens": 0,
                "cache_read_tokens": 0, "cache_creation_tokens": 0, "spend": 0.0,
            }  # fmt: skip
            latencies[value] = []
        row["requests"] += 1
        row["errors"] += entry.outcome == "error"
        row["input_tokens"] += entry.input_tokens
        row["output_tokens"] += entry.output_tokens
        row["cache_read_tokens"] += entry.cache_read_tokens
        row["cache_creation_tokens"] += entry.cache_creation_tokens
        row["spend"] += entry.cost or 0.0
        latencies[value].append(entry.latency)
    for value, row in rows.items():
        ordered = sorted(latencies[value])
        row["latency_p50"] = _exact_percentile(ordered, 0.50)
        row["latency_p95"] = _exact_percentile(ordered, 0.95)
        row["cache_hit_rate"] = _cache_hit_rate(row)
        row["spend"] = round(row["spend"], 6)
    return sorted(rows.values(), key=lambda r: (-r["requests"], r["name"]))


def _bucket_tokens(bucket: Bucket) -> dict[str, int]:
    return {
        "input_tokens": bucket.input_tokens,
        "cache_read_tokens": bucket.cache_read_tokens,
        "cache_creation_tokens": bucket.cache_creation_tokens,
    }


def _cache_hit_rate(row: Mapping[str, Any]) -> float | None:
    """Share of input tokens read from a cache; None with no input at all."""
    total = row["input_tokens"] + row["cache_read_tokens"] + row["cache_creation_tokens"]
    return None if not total else round(row["cache_read_tokens"] / total, 4)


def _percentile(counts: list[int], q: float) -> float | None:
    """The upper boundary of the histogram bin holding the ``q`` quantile (seconds)."""
    total = sum(counts)
    if not total:
        return None
    rank = math.ceil(q * total)
    seen = 0
    for i, count in enumerate(counts):
        seen += count
        if seen >= rank:
            return round(LATENCY_BOUNDS[min(i, len(LATENCY_BOUNDS) - 1)], 4)
    return None


def _exact_percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 4)
