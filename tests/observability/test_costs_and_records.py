"""The cost of a usage at model_info prices, and the dashboard's in-memory records."""

from __future__ import annotations

import pytest

from anygate.costs import usage_cost
from anygate.deployment import Deployment
from anygate.hooks import MASTER, AttemptRecord, Principal, RequestRecord, Usage
from anygate.observability.recent import RecentRequests
from anygate.protocol.errors import GatewayError


def test_cost_uses_every_price_and_falls_back_to_the_input_price_for_caches() -> None:
    usage = Usage(100, 10, cache_read_input_tokens=50, cache_creation_input_tokens=20)
    prices = {"input_cost_per_token": 1.0, "output_cost_per_token": 2.0}
    assert usage_cost(prices, usage) == 100 + 20 + 50 + 20
    priced = {**prices, "cache_read_input_token_cost": 0.1, "cache_creation_input_token_cost": 1.25}
    assert usage_cost(priced, usage) == pytest.approx(100 + 20 + 5 + 25)
    assert usage_cost({}, usage) is None  # no prices: unknown, not free
    assert usage_cost(prices, None) == 0.0
    assert usage_cost({"input_cost_per_token": "free", "output_cost_per_token": True}, usage) is None


def _record(i: int, *, status: int = 200, latency: float = 0.1, team: str | None = None) -> RequestRecord:
    principal = Principal("virtual_key", key_id=f"key{i % 2}", team_id=team) if team else MASTER
    record = RequestRecord(f"req_{i:04d}", "messages", principal, {}, model="gpt", started=10.0)
    record.started_at = 1_000_000.0 + i
    record.deployment_id, record.provider = "gpt-a", "openai"
    record.attempts.append(AttemptRecord("gpt-a", "openai", 10.0, 10.0 + latency))
    record.ended = 10.0 + latency
    record.status = status
    if status == 200:
        record.outcome = "ok"
        record.usage = Usage(10, 5, 30, 0)
        record.stop_reason = "tool_use" if i % 4 == 0 else "end_turn"
    else:
        record.outcome, record.error = "error", GatewayError(status, "nope")
    return record


def test_recent_requests_summarise_filter_and_stay_bounded() -> None:
    deployment = Deployment("gpt", "openai", "gpt-4o", "gpt-a", model_info={"input_cost_per_token": 0.5})
    now = [1_000_100.0]
    recent = RecentRequests([deployment], ring_size=50, wall_clock=lambda: now[0])
    for i in range(60):
        recent.completed(_record(i, latency=0.01 * (i % 10 + 1), team="t1" if i % 3 else None))
    recent.completed(_record(60, status=429))
    assert len(recent.entries) == 50
    summary = recent.summary(3600)
    totals = summary["totals"]
    assert totals["requests"] == 61  # the per-minute totals count every request, not only those kept
    assert totals["errors"] == 1
    assert totals["input_tokens"] == 600 and totals["cache_read_tokens"] == 1800
    assert totals["cache_hit_rate"] == pytest.approx(1800 / 2400)
    assert totals["spend"] == pytest.approx(60 * (10 + 30) * 0.5)
    assert 0.04 <= totals["latency_p50"] <= 0.07 and 0.09 <= totals["latency_p95"] <= 0.13
    assert sum(summary["series"]["requests"]) == 61
    assert len(summary["series"]["time"]) >= 60  # one point per minute of the window
    teams = {row["name"]: row for row in summary["breakdowns"]["team"]}
    assert set(teams) == {"t1"}
    assert [row["name"] for row in summary["breakdowns"]["model"]] == ["gpt"]
    failed = recent.requests({"status": "429"})
    assert [r["request_id"] for r in failed] == ["req_0060"]
    assert failed[0]["error_type"] == "rate_limit_error"
    newest = recent.requests({}, limit=3)
    assert [r["request_id"] for r in newest] == ["req_0060", "req_0059", "req_0058"]
    assert recent.requests({"key": "key1", "team": "t1"}, limit=1000)
    assert failed[0]["stop_reason"] is None and newest[1]["stop_reason"] == "end_turn"
    tool_uses = recent.requests({"stop_reason": "tool_use"}, limit=1000)
    assert [r["request_id"] for r in tool_uses][:2] == ["req_0056", "req_0052"]
    assert len(tool_uses) == 12  # of the 50 kept (req_0010…req_0059), every fourth
    assert recent.requests({"unknown": "x"}, limit=1)  # unknown filters are ignored
    now[0] += 7200
    assert recent.summary(3600)["totals"]["requests"] == 0
