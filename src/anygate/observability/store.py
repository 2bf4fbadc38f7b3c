"""Metric values in plain Python objects, their merge across worker processes, and Prometheus' text format.

Why not prometheus_client's own metric objects: each ``inc`` or ``observe`` there takes a lock, checks
the metric's state and, for a histogram, walks the buckets in Python; a request touches a dozen values,
which measured ~10 µs of CPU per request. Here a counter is an attribute increment and a histogram a
``bisect`` plus two increments, on the event loop thread only; prometheus_client renders the text format
from these values when ``/metrics`` is scraped (its public ``*MetricFamily`` classes).

Several workers (``anygate --workers N``): each writes a snapshot of its values to
``$ANYGATE_METRICS_DIR/anygate-<pid>.json`` at most once a second after a change (and at shutdown), and a
scrape adds the snapshots of the other workers to its own live values: counters and histograms are
summed over every worker that ever wrote (a restarted worker's counts are kept), ``live`` gauges over
workers still running, ``max`` gauges take the maximum.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

METRICS_DIR_ENV: Final = "ANYGATE_METRICS_DIR"
"""Where the workers of one server share their snapshots; the CLI makes (and removes) it for --workers N."""
SNAPSHOT_PREFIX: Final = "anygate-"

Kind = Literal["counter", "histogram", "gauge"]


@dataclass(frozen=True, slots=True)
class Family:
    """One metric's name (counters without ``_total``), help, labels, buckets and cross-worker merge."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()
    merge: Literal["sum", "max", "live"] = "sum"


class Value:
    """A counter or a gauge."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0


class Histogram:
    """Bucket counts (the last one is +Inf) and the sum of observations."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value


class Store:
    """Every family's values by label values, in one process."""

    def __init__(self, families: Iterable[Family]) -> None:
        self.families = {family.name: family for family in families}
        self.series: dict[str, dict[tuple[str, ...], Value | Histogram]] = {
            name: {} for name in self.families
        }

    def value(self, name: str, labels: tuple[str, ...]) -> Value:
        found = self.series[name].get(labels)
        if found is None:
            found = self.series[name][labels] = Value()
        assert isinstance(found, Value)
        return found

    def histogram(self, name: str, labels: tuple[str, ...]) -> Histogram:
        found = self.series[name].get(labels)
        if found is None:
            found = self.series[name][labels] = Histogram(self.families[name].buckets)
        assert isinstance(found, Histogram)
        return found

    def snapshot(self) -> dict[str, list[Any]]:
        """The values as JSON-ready lists (taken on the loop thread; rendering may happen elsewhere)."""
        out: dict[str, list[Any]] = {}
        for name, series in self.series.items():
            out[name] = [
                [list(labels), [list(v.counts), v.sum] if isinstance(v, Histogram) else v.value]
                for labels, v in list(series.items())
            ]
        return out


def merged(
    families: Mapping[str, Family], snapshots: Iterable[tuple[dict[str, list[Any]], bool]]
) -> list[Metric]:
    """The metric families of several snapshots (each with whether its process is alive), merged."""
    totals: dict[str, dict[tuple[str, ...], Any]] = {name: {} for name in families}
    for snapshot, alive in snapshots:
        for name, rows in snapshot.items():
            family = families.get(name)
            if family is None or (family.merge == "live" and not alive):
                continue
            into = totals[name]
            for labels, value in rows:
                key = tuple(labels)
                seen = into.get(key)
                if family.kind == "histogram":
                    counts, total = value
                    if seen is None or len(seen[0]) != len(counts):
                        into[key] = [list(counts), total]
                    else:
                        seen[0] = [a + b for a, b in zip(seen[0], counts, strict=True)]
                        seen[1] += total
                elif seen is None:
                    into[key] = value
                else:
                    into[key] = max(seen, value) if family.merge == "max" else seen + value
    return [_family_metric(families[name], rows) for name, rows in totals.items()]


def _family_metric(family: Family, rows: Mapping[tuple[str, ...], Any]) -> Metric:
    labels = list(family.labels)
    metric: Metric
    if family.kind == "counter":
        metric = CounterMetricFamily(family.name, family.help, labels=labels)
        for key, value in rows.items():
            metric.add_metric(list(key), value)
    elif family.kind == "gauge":
        metric = GaugeMetricFamily(family.name, family.help, labels=labels)
        for key, value in rows.items():
            metric.add_metric(list(key), value)
    else:
        metric = HistogramMetricFamily(family.name, family.help, labels=labels)
        bounds = [floatToGoString(b) for b in family.buckets] + ["+Inf"]  # type: ignore[no-untyped-call]
        for key, (counts, total) in rows.items():
            cumulative, buckets = 0, []
            for bound, count in zip(bounds, counts, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            metric.add_metric(list(key), buckets, total)
    return metric


class _Fixed(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self._metrics)


def render(metrics: list[Metric]) -> bytes:
    """Prometheus' text format (0.0.4) of these families."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(metrics))
    return generate_latest(registry)


# --- snapshots of other workers ------------------------------------------------------------------


def metrics_dir() -> Path | None:
    """The directory the workers share, when the server runs several."""
    value = os.environ.get(METRICS_DIR_ENV)
    return Path(value) if value else None


def write_snapshot(directory: Path, pid: int, snapshot: dict[str, list[Any]]) -> None:
    """Replace this worker's snapshot atomically (a reader never sees half a file)."""
    path = directory / f"{SNAPSHOT_PREFIX}{pid}.json"
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(orjson.dumps(snapshot))
    temporary.replace(path)


def other_snapshots(directory: Path, own_pid: int) -> Iterator[tuple[dict[str, list[Any]], bool]]:
    """The snapshots of the other workers, each with whether that worker is still running."""
    for path in directory.glob(f"{SNAPSHOT_PREFIX}*.json"):
        pid_text = path.stem.removeprefix(SNAPSHOT_PREFIX)
        if not pid_text.isdigit() or int(pid_text) == own_pid:
            continue
        try:
            snapshot = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue  # replaced or removed while being read: the next scrape has it
        yield snapshot, _alive(int(pid_text))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
