"""The benchmark's teams variant (``bench.run --teams``): the keys it writes straight into the database
are keys a real gateway accepts, with the limits the benchmark says they have, and its report compares
each variant with the default gateway round by round."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bench import teams_keys
from bench.report import render
from bench.run import pick_medians

from tests.fakes.gateway_server import GatewayServer
from tests.teams.support import Admin, ask, teams_config, wait_for


def test_seeded_keys_are_accepted_by_a_real_gateway(sqlite_url: str, tmp_path: Path) -> None:
    asyncio.run(teams_keys.seed(sqlite_url, keys=300, teams=7))
    keys = teams_keys.write_key_file(tmp_path / "keys.txt", 300)
    assert (tmp_path / "keys.txt").read_text().split() == keys and len(set(keys)) == 300
    server = GatewayServer(teams_config(sqlite_url)).start()
    try:
        admin = Admin(server)
        for key in (keys[0], keys[150], keys[-1]):
            assert ask(server, key).content[0].text
        info = admin.get(f"/key/info?key={keys[8]}")["info"]
        assert info["rpm_limit"] == teams_keys.KEY_LIMITS["rpm_limit"]
        assert info["max_budget"] == teams_keys.KEY_LIMITS["max_budget"]
        assert info["budget_duration"] == "30d" and info["team_id"] == "bench-team-001"
        team = admin.get("/team/info?team_id=bench-team-001")["team_info"]
        assert team["max_budget"] == teams_keys.TEAM_LIMITS["max_budget"]
        # the seed was one admin change like any other: a key made after it works as well
        later = admin.post("/key/generate", {"models": ["claude-test"]})["key"]
        assert ask(server, later).content[0].text
        assert wait_for(lambda: admin.get(f"/key/info?key={keys[0]}")["info"]["spend"] > 0)
    finally:
        server.stop()


def _run(cpu: float) -> dict[str, Any]:
    figures = {"p50_ms": 1.0, "p99_ms": 2.0, "rps": 100.0, "errors": 0, "peak_rss_mb": 50.0}
    return {"c1": {**figures, "background_cores": 0.0}, "cN": {**figures, "cpu_ms_per_req": cpu}}


def _target(gateway: str, cpu: list[float | None]) -> dict[str, Any]:
    rounds = [_run(c) if c is not None else {"error": "the gateway went away"} for c in cpu]
    return {"gateway": gateway, "workers": 1, "label": gateway, "rounds": {"a": rounds}}


def test_the_report_gives_each_variant_its_rounds_median_and_added_cpu() -> None:
    targets = [
        _target("anygate", [0.30, 0.40, 0.20]),
        _target("anygate-teams-sqlite", [0.33, 0.50, 0.26]),
        _target("anygate-teams-postgres-redis", [0.33, None, 0.22]),
    ]
    for target in targets:
        pick_medians(target)
    assert targets[0]["scenarios"]["a"]["cN"]["cpu_ms_per_req"] == 0.30  # the median round
    machine = {"cpu": "x", "cores": "2", "memory_gib": "1", "os": "x", "kernel": "x", "python": "3"}
    settings = {"scenarios": "a", "duration_s": 5, "warmup_s": 1, "connections": 32, "workers": [1]}
    text = render(
        {
            "started": "t",
            "command": "c",
            "machine": machine,
            "settings": {**settings, "rounds": 3},
            "targets": targets,
        }
    )
    rows = {line.split("|")[2].strip(): line for line in text.splitlines() if line.startswith("| (a) | ")}
    # added = the median over rounds of (variant - default) in the same round: 0.03, 0.10, 0.06
    assert "| 0.330 / 0.500 / 0.260 | 0.330 | +0.060 (OVER ≤ 0.05) | 1.100x |" in rows["teams-sqlite"]
    # a failed round drops out of both the median and the differences: 0.03, 0.02
    assert "| 0.330 / - / 0.220 | 0.275 | +0.025 (ok ≤ 0.05) |" in rows["teams-postgres-redis"]
    assert "| 0.300 / 0.400 / 0.200 | 0.300 | | |" in rows["default"]


def test_the_spend_row_benchmark_writes_both_schemas(tmp_path: Path) -> None:
    """``bench.spend_rows`` fills each schema and measures every size it is given, on real SQLite."""
    import argparse

    from bench import spend_rows

    from anygate.teams import schema

    args = argparse.Namespace(stored=[0, 1200], batch=300, keys=20, rounds=1)
    for version, make_id in ((2, spend_rows._random_id), (schema.SCHEMA_VERSION, spend_rows.new_request_id)):
        figures = asyncio.run(spend_rows.measure(version, make_id, args))
        assert len(figures) == 2 and all(figure > 0 for figure in figures)
