"""The metric values of several workers, merged: counters and histograms summed over every worker that
wrote, in-flight gauges over running workers only, timestamps by maximum."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from anygate.observability.metrics import COOLDOWN_UNTIL, FAMILIES, IN_FLIGHT, REQUEST_DURATION, REQUESTS
from anygate.observability.store import Store, merged, other_snapshots, render, write_snapshot


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _worker(requests: int, in_flight: int, cooldown_until: float, latency: float) -> Store:
    store = Store(FAMILIES)
    store.value(REQUESTS.name, ("chat", "gpt", "gpt-a", "200", "")).value += requests
    store.value(IN_FLIGHT.name, ("chat",)).value = in_flight
    store.value(COOLDOWN_UNTIL.name, ("gpt-a",)).value = cooldown_until
    for _ in range(requests):
        store.histogram(REQUEST_DURATION.name, ("chat", "gpt", "openai", "")).observe(latency)
    return store


def test_snapshots_of_running_and_exited_workers_merge(tmp_path: Path) -> None:
    own = _worker(3, 1, 100.0, 0.05)
    running, exited = _worker(4, 2, 300.0, 0.5), _worker(5, 7, 200.0, 3.0)
    write_snapshot(tmp_path, 1, running.snapshot())  # pid 1 is always running
    write_snapshot(tmp_path, _dead_pid(), exited.snapshot())
    write_snapshot(tmp_path, 4242424, own.snapshot())  # our own file is not read twice
    (tmp_path / "anygate-garbage.json").write_text("{")
    snapshots = [(own.snapshot(), True), *other_snapshots(tmp_path, own_pid=4242424)]
    text = render(merged(own.families, snapshots)).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return sum(v for (n, found), v in samples.items() if n == name and set(labels.items()) <= set(found))

    assert value("anygate_requests_total") == 12  # an exited worker's counts are kept
    assert value("anygate_requests_in_flight") == 3  # its in-flight requests are not
    assert value("anygate_deployment_cooldown_until_timestamp_seconds") == 300.0
    assert value("gen_ai_server_request_duration_seconds_count") == 12
    assert value("gen_ai_server_request_duration_seconds_sum") == 3 * 0.05 + 4 * 0.5 + 5 * 3.0
    assert value("gen_ai_server_request_duration_seconds_bucket", le="0.08") == 3
    assert value("gen_ai_server_request_duration_seconds_bucket", le="0.64") == 7
    assert value("gen_ai_server_request_duration_seconds_bucket", le="+Inf") == 12
