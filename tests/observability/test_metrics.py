"""``GET /metrics``: scraped with prometheus_client's own parser after a scripted run, counters and
histograms must have moved by exactly what the run did; with ``--workers 2`` the totals add up."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from anygate.observability.metrics import SHARE_SECONDS
from tests.conftest import MASTER_KEY
from tests.fakes.gateway_server import GatewayServer
from tests.fakes.upstream import FakeUpstream
from tests.observability.support import (
    BODY,
    Expected,
    config,
    post,
    scrape,
    scripted_run,
    total,
    wait_for,
)
from tests.rawhttp import assert_error, send
from tests.test_cli import RunningGateway


def _settled(url: str, expected: Expected) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The samples once the client that left has been accounted for (its stream ends a moment later)."""
    answered = expected.ok + expected.upstream_400 + expected.client_gone
    wait_for(lambda: total(scrape(url), "anygate_requests_total") == answered)
    return scrape(url)


def assert_counts(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], expected: Expected) -> None:
    model = {"gen_ai_request_model": "gpt"}
    assert total(samples, "anygate_requests_total", status="200", error_type="", **model) == expected.ok
    assert (
        total(samples, "anygate_requests_total", status="400", error_type="invalid_request_error", **model)
        == expected.upstream_400
    )
    assert (
        total(samples, "anygate_requests_total", status="499", error_type="client_gone", deployment="gpt-b")
        == expected.client_gone
    )
    answered = expected.ok + expected.upstream_400 + expected.client_gone
    assert total(samples, "gen_ai_server_request_duration_seconds_count") == answered
    assert total(samples, "gen_ai_server_request_duration_seconds_bucket", le="+Inf") == answered
    assert total(samples, "gen_ai_server_time_to_first_token_seconds_count") == expected.ok
    attempts = "gen_ai_client_operation_duration_seconds_count"
    assert total(samples, attempts, error_type="", deployment="gpt-a") == expected.attempts_ok
    assert total(samples, attempts, error_type="", deployment="gpt-b") == expected.attempts_abandoned
    assert total(samples, attempts, error_type="api_error") == expected.attempts_api_error
    assert total(samples, attempts, error_type="invalid_request_error") == expected.attempts_invalid
    assert total(samples, attempts, gen_ai_provider_name="openai", gen_ai_operation_name="chat") == (
        expected.attempts_ok + expected.attempts_abandoned + expected.attempts_api_error + 1
    )
    assert total(samples, "anygate_retries_total", **model) == expected.retries
    assert total(samples, "anygate_fallbacks_total") == 0
    assert (
        total(samples, "anygate_deployment_failures_total", deployment="gpt-a", error_type="api_error") == 1
    )
    assert total(samples, "anygate_deployment_cooldowns_total", deployment="gpt-a") == 1
    assert total(samples, "anygate_deployment_cooldown_until_timestamp_seconds", deployment="gpt-a") > 0
    for kind, count in expected.usage.items():
        found = total(samples, "anygate_tokens_total", gen_ai_token_type=kind, deployment="gpt-a")
        assert found == count, (kind, found, count)
    usage = expected.usage
    assert total(samples, "gen_ai_client_token_usage_sum", gen_ai_token_type="input") == (
        usage["input"] + usage["cache_read"] + usage["cache_creation"]
    )
    assert total(samples, "gen_ai_client_token_usage_sum", gen_ai_token_type="output") == usage["output"]
    assert total(samples, "gen_ai_client_token_usage_count", gen_ai_token_type="output") == expected.ok
    assert total(samples, "anygate_spend_usd_total", deployment="gpt-a", team="none") == pytest.approx(
        expected.spend
    )
    # the stream the client left had used tokens (the gateway's estimate, since no usage arrived)
    assert total(samples, "anygate_tokens_total", gen_ai_token_type="input", deployment="gpt-b") > 0
    assert total(samples, "anygate_spend_usd_total", deployment="gpt-b") == 0  # no prices configured
    assert total(samples, "anygate_requests_in_flight") == 0
    assert total(samples, "anygate_streams_open") == 0


def test_a_scripted_run_moves_every_metric_by_what_it_did(
    serve: Callable[[str], GatewayServer], upstream: FakeUpstream
) -> None:
    server = serve(config(upstream))
    before = scrape(server.url)
    assert total(before, "anygate_requests_total") == 0
    expected = scripted_run(server.url, upstream)
    assert expected.usage["cache_read"] > 0
    assert_counts(_settled(server.url, expected), expected)


def test_metrics_need_an_admin_key_unless_public(
    serve: Callable[[str], GatewayServer], upstream: FakeUpstream
) -> None:
    server = serve(config(upstream))
    assert_error(send(server.url, "GET", "/metrics"), 401, "authentication_error")
    assert_error(
        send(server.url, "GET", "/metrics", headers={"x-api-key": "sk-wrong-key-0000"}),
        401,
        "authentication_error",
    )
    assert send(server.url, "GET", "/metrics", headers={"x-api-key": MASTER_KEY}).status == 200
    public = serve(config(upstream, "  metrics_public: true"))
    assert send(public.url, "GET", "/metrics").status == 200
    off = serve(config(upstream, "  metrics: false"))
    assert_error(send(off.url, "GET", "/metrics", headers={"x-api-key": MASTER_KEY}), 404, "not_found_error")


def test_label_values_stay_bounded(serve: Callable[[str], GatewayServer], upstream: FakeUpstream) -> None:
    """Model names nobody configured (each one a 404) end up as ``other`` past the cap; no request id,
    key or user id is ever a label."""
    from anygate.observability import metrics

    server = serve(config(upstream))
    cap = metrics.LABEL_CAP
    for i in range(cap + 5):
        answer = post(server.url, {**BODY, "model": f"random-{i}"})
        assert answer.status == 404
    samples = scrape(server.url)
    models = {dict(labels).get("gen_ai_request_model") for (name, labels) in samples if "requests" in name}
    assert "other" in models
    assert len(models - {None}) <= cap + 2  # the configured group, the capped others, and "other"
    label_names = {name for (_, labels) in samples for name, _ in labels}
    assert not label_names & {"request_id", "key", "api_key", "user", "user_id"}


def test_two_workers_report_the_totals_of_both(upstream: FakeUpstream, tmp_path: Path) -> None:
    """The real CLI with ``--workers 2``: requests land on both workers, and every scrape (whichever
    worker answers it) reports the totals of both. The metrics directory is removed at exit."""
    config_file = tmp_path / "config.yaml"
    config_file.write_text(config(upstream))
    temp = tmp_path / "tmp"
    temp.mkdir()
    gateway = RunningGateway("--config", str(config_file), "--workers", "2", env={"TMPDIR": str(temp)})
    try:
        from tests.observability.support import CHAT, Json, completion

        # Slow answers to concurrent clients: a worker busy with requests leaves new connections to the
        # other. Batches go on until both workers have served some (the second may still be starting).
        upstream.script(CHAT, Json(completion(10, 5), delay=0.05))
        created = [p for p in temp.iterdir() if p.name.startswith("anygate-metrics-")]
        assert len(created) == 1
        count = 0
        deadline = time.monotonic() + 30
        with ThreadPoolExecutor(8) as pool:
            while True:
                statuses = list(pool.map(lambda _: post(gateway.url, BODY).status, range(16)))
                assert statuses == [200] * 16
                count += 16
                time.sleep(SHARE_SECONDS + 0.2)  # each worker shares its values within a second
                if len(list(created[0].glob("anygate-*.json"))) >= 2:
                    break
                assert time.monotonic() < deadline, "one worker served every request"
        wait_for(lambda: total(scrape(gateway.url), "anygate_requests_total", status="200") == count)
        for _ in range(6):  # new connections: the scrapes land on either worker
            samples = scrape(gateway.url)
            assert total(samples, "anygate_requests_total", status="200") == count
            assert total(samples, "anygate_tokens_total", gen_ai_token_type="output") == 5 * count
            assert total(samples, "gen_ai_server_request_duration_seconds_count") == count
            assert total(samples, "gen_ai_server_request_duration_seconds_bucket", le="+Inf") == count
            assert total(samples, "anygate_requests_in_flight") == 0
    finally:
        gateway.terminate()
    assert list(temp.iterdir()) == []
    assert "ANYGATE_METRICS_DIR" not in os.environ


def test_the_grafana_dashboard_uses_only_metrics_the_gateway_exports(
    serve: Callable[[str], GatewayServer], upstream: FakeUpstream
) -> None:
    import json
    import re

    server = serve(config(upstream))
    text = send(server.url, "GET", "/metrics", headers={"x-api-key": MASTER_KEY}).body.decode()
    families = set(re.findall(r"^# HELP (\S+)", text, flags=re.MULTILINE))
    dashboard = json.loads((Path(__file__).parents[2] / "examples" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert exprs
    from anygate.observability.metrics import FAMILIES

    label_names = {label for family in FAMILIES for label in family.labels}
    found = {name for expr in exprs for name in re.findall(r"\b(?:anygate|gen_ai)_[a-z_]+", expr)}
    used = found - label_names
    assert len(used) >= 10
    for name in used:
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in families or base in families, name
