"""Benchmark anygate (and, with --compare-litellm, LiteLLM) against a fake upstream on loopback.

Usage (from the repository root, after `bash bench/setup.sh`):
    bench/.venv/bin/python -m bench.run --compare-litellm

For each gateway and worker count the harness starts the gateway on 127.0.0.1 in front of the nginx fake
upstream, checks one request per scenario, then per scenario runs wrk for --warmup seconds (discarded),
--duration seconds at 1 connection (latency) and --duration seconds at --connections connections
(throughput, and CPU per request from /proc of the gateway's process tree before and after). Scenario (e)
opens --streams slow streams at once and records peak RSS and how every stream ended. The direct-upstream
baseline runs the same scenarios straight against the fake upstream.

With --rounds N every gateway is started once and the scenarios run N times, alternating the
gateways scenario by scenario (a on each, then b on each, ...), so variants measured on a shared, noisy
machine are compared within the same minute; the report gives each figure's rounds and median and, for
variants of anygate, the CPU they add over the default anygate.

Results: bench/results/latest.json, bench/results/latest.md (ready to paste into BENCHMARKS.md) and
bench/results/chart.png; logs and generated configs of the run in bench/results/runs/<timestamp>/.
Everything runs on loopback and every loop is bounded by count and time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import chart, procstat, report
from bench.gateways import (
    OBSERVABILITY_VARIANTS,
    TEAMS_VARIANTS,
    Anygate,
    Gateway,
    LiteLLM,
    tool_versions,
)
from bench.loadgen import LoadResult, run_wrk
from bench.payloads import encode
from bench.procs import Server, raise_nofile_limit
from bench.scenarios import CLIENT_HEADERS, Scenario, load_scenarios, models_used, slow_stream_body
from bench.slow_streams import run_slow_streams
from bench.upstream.server import start_upstream
from bench.validate import check_request

RESULTS = Path(__file__).resolve().parent / "results"
ALL_SCENARIOS = "abcdefghijk"
DEFAULT_SCENARIOS = "abcdehi"
TEAMS_SETTLE_S = 1.6
"""Past the spend ledger's 1 s write interval and the cache's 0.5 s sync (the defaults the variants run)."""


@dataclass
class Settings:
    scenarios: str
    duration_s: float
    warmup_s: float
    connections: int
    streams: int
    out_dir: Path
    run_dir: Path
    rounds: int = 1
    settle_s: float = 0.0
    """Seconds the gateway's CPU is still counted after wrk stops (and waited after the warm-up), so the
    spend written in the background for a run's requests is charged to that run, not to the next."""


@dataclass
class Target:
    """Where load is sent: a gateway at some worker count, or the upstream itself (gateway None)."""

    label: str
    workers: int
    gateway: Gateway | None
    results: dict[str, Any] = field(default_factory=dict)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _measured_run(
    url: str,
    body_file: Path,
    headers: dict[str, str],
    connections: int,
    duration_s: float,
    expect: str,
    gateway: Server | None,
    upstream: Server,
    key_file: Path | None = None,
    settle_s: float = 0.0,
) -> dict[str, Any]:
    """One wrk run with the CPU of the gateway's and the upstream's process trees and the gateway's RSS.

    `settle_s`: seconds to keep counting the gateway's CPU after wrk stopped (its background work for
    the run's requests: the teams' batched spend write and cache sync)."""
    watched = gateway or upstream
    up_cpu0 = procstat.cpu_seconds(upstream.pid)
    gw_cpu0 = procstat.cpu_seconds(watched.pid)
    busy0 = procstat.machine_busy_seconds()
    with procstat.RssSampler(watched.pid) as rss:
        result: LoadResult = run_wrk(
            url, body_file, headers, connections, duration_s, expect, key_file=key_file
        )
        settled = settle_s if gateway is not None else 0.0
        time.sleep(settled)
    gw_cpu = procstat.cpu_seconds(watched.pid) - gw_cpu0
    up_cpu = procstat.cpu_seconds(upstream.pid) - up_cpu0
    busy = procstat.machine_busy_seconds() - busy0
    ours = up_cpu + result.loadgen_cpu_s + (gw_cpu if gateway is not None else 0.0)
    n = max(result.requests, 1)
    return {
        **result.to_dict(),
        "cpu_ms_per_req": gw_cpu * 1000 / n,
        "cpu_core_share": gw_cpu / result.duration_s if result.duration_s else 0.0,
        "upstream_cpu_ms_per_req": up_cpu * 1000 / n,
        "peak_rss_mb": rss.peak / 2**20,
        # Cores' worth of CPU used by other processes during the run (0 on a quiet machine).
        "background_cores": max(0.0, busy - ours) / (result.duration_s + settled)
        if result.duration_s
        else 0.0,
    }


def _run_scenario(
    sc: Scenario, target: Target, gateway: Server | None, upstream: Server, st: Settings
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    key_file = target.gateway.key_file if target.gateway is not None else None
    if gateway is None:
        url = f"http://127.0.0.1:{upstream.port}{sc.direct_path}"
        body, headers, expect = encode(sc.direct_body), sc.direct_headers, sc.direct_expect
    else:
        url = f"http://127.0.0.1:{gateway.port}/v1/messages{sc.query}"
        body, headers, expect = encode(sc.body), sc.headers, sc.expect
        if key_file is not None:  # checked with the first virtual key; wrk then rotates through all
            first_key = key_file.read_text().split("\n", 1)[0]
            headers = {**headers, "x-api-key": first_key}
        check = check_request(url, body, headers, sc.stream, thinking=sc.thinking, usage=sc.usage)
        result["check"] = {"ok": check.ok, "problem": check.problem, "status": check.status}
        if not check.ok:
            result["check"]["request"] = {"url": url, "headers": headers, "body_excerpt": body[:600].decode()}
            result["check"]["response_excerpt"] = check.response_excerpt
            log(f"  ({sc.key}) check FAILED: {check.problem} (HTTP {check.status}); load runs skipped")
            return result
    body_file = st.run_dir / "bodies" / f"{target.label}-{sc.key}.json"
    body_file.parent.mkdir(parents=True, exist_ok=True)
    body_file.write_bytes(body)
    if st.warmup_s > 0:
        run_wrk(url, body_file, headers, st.connections, st.warmup_s, expect, key_file=key_file)
        if gateway is not None:
            time.sleep(st.settle_s)
    result["c1"] = _measured_run(
        url, body_file, headers, 1, st.duration_s, expect, gateway, upstream, key_file, st.settle_s
    )
    result["cN"] = _measured_run(
        url,
        body_file,
        headers,
        st.connections,
        st.duration_s,
        expect,
        gateway,
        upstream,
        key_file,
        st.settle_s,
    )
    c1, cn = result["c1"], result["cN"]
    log(
        f"  {target.label} ({sc.key}) p50 {c1['p50_ms']:.3f} ms  p99 {c1['p99_ms']:.3f} ms @1 | "
        f"{cn['rps']:.0f} req/s "
        f"@{st.connections}  CPU {cn['cpu_ms_per_req']:.3f} ms/req  RSS {cn['peak_rss_mb']:.0f} MB  "
        f"errors {c1['errors'] + cn['errors']}  (wrk {cn['loadgen_core_share']:.0%} of a core, "
        f"upstream {cn['upstream_cpu_ms_per_req']:.3f} ms/req)"
    )
    background = max(c1["background_cores"], cn["background_cores"])
    if background > 0.25:
        log(f"      warning: other processes used {background:.2f} cores during this scenario")
    if c1["errors"] or cn["errors"]:
        log(f"      first failure: {(cn['sample_failure'] or c1['sample_failure'])[:300]!r}")
    return result


def _run_slow_streams(gateway: Server, st: Settings) -> dict[str, Any]:
    url = f"http://127.0.0.1:{gateway.port}/v1/messages"
    cpu0 = procstat.cpu_seconds(gateway.pid)
    client0 = time.process_time()
    with procstat.RssSampler(gateway.pid) as rss:
        res = run_slow_streams(url, slow_stream_body(), CLIENT_HEADERS, streams=st.streams, timeout_s=180)
    out: dict[str, Any] = {
        **res.to_dict(),
        "peak_rss_mb": rss.peak / 2**20,
        "cpu_s": procstat.cpu_seconds(gateway.pid) - cpu0,
        "client_cpu_s": time.process_time() - client0,
    }
    log(
        f"  (e) {res.completed}/{res.streams} streams completed ({res.pings_after_stop} of them with pings "
        f"after message_stop), failed {res.failed}, peak RSS "
        f"{out['peak_rss_mb']:.0f} MB, wall {res.wall_s:.1f} s, gateway CPU {out['cpu_s']:.1f} s"
        + (f"; problems {res.problems}; e.g. {res.sample_problem[:700]!r}" if res.failed else "")
    )
    return out


def start_target(target: Target, upstream: Server, st: Settings) -> tuple[bool, Server | None]:
    """Start the target's gateway (None for the direct upstream); False, recorded, if it cannot start."""
    if target.gateway is None:
        return True, None
    try:
        started = time.monotonic()
        server = target.gateway.start(st.run_dir, upstream.port, target.workers, models_used(st.scenarios))
        target.results["startup_s"] = time.monotonic() - started
        target.results["idle_rss_mb"] = procstat.rss_bytes(server.pid) / 2**20
        return True, server
    except Exception as exc:
        target.results["error"] = str(exc)
        log(f"  {target.label} cannot start: {exc}")
        _cleanup(target)
        return False, None


def stop_target(target: Target, server: Server | None) -> None:
    try:
        if server is not None:
            if server.proc.poll() is not None:
                target.results["error"] = (
                    f"exited with code {server.proc.returncode}: {server.log_tail(1500)}"
                )
            server.stop()
            target.results["log"] = str(server.log_path)
    finally:
        _cleanup(target)


def _cleanup(target: Target) -> None:
    if target.gateway is not None:
        try:
            target.gateway.cleanup()
        except Exception as exc:
            log(f"  cleanup after {target.label} failed: {exc}")


def _run_key(key: str, target: Target, server: Server | None, upstream: Server, st: Settings) -> None:
    """Run scenario `key` on a started target and record it (under "rounds" when there are several)."""
    scenarios = load_scenarios()
    if key in scenarios:
        try:
            result = _run_scenario(scenarios[key], target, server, upstream, st)
        except Exception as exc:
            result = {"error": repr(exc)}
            log(f"  {target.label} ({key}) failed: {exc!r}")
        if st.rounds > 1:
            target.results.setdefault("rounds", {}).setdefault(key, []).append(result)
        else:
            target.results.setdefault("scenarios", {})[key] = result
    elif key == "e" and server is not None and "slow_streams" not in target.results:
        try:
            target.results["slow_streams"] = _run_slow_streams(server, st)
        except Exception as exc:
            target.results["slow_streams"] = {"error": repr(exc)}
            log(f"  {target.label} (e) failed: {exc!r}")


def run_target(target: Target, upstream: Server, st: Settings) -> None:
    """Run every selected scenario against one target; failures are recorded, not raised."""
    log(f"== {target.label} ==")
    ok, server = start_target(target, upstream, st)
    if not ok:
        return
    try:
        for key in st.scenarios:
            _run_key(key, target, server, upstream, st)
    finally:
        stop_target(target, server)


def run_rounds(targets: list[Target], upstream: Server, st: Settings) -> None:
    """Start every target, then run each scenario on each target in turn, `st.rounds` times over.

    Why: on a shared machine the background load moves from minute to minute, so two variants measured
    ten minutes apart differ by more than what one of them adds; alternating them scenario by scenario
    and taking medians over rounds keeps the comparison within the same minute. Scenario (e) runs in the
    first round only.
    """
    running: list[tuple[Target, Server | None]] = []
    try:
        for target in targets:
            log(f"== starting {target.label} ==")
            ok, server = start_target(target, upstream, st)
            if ok:
                running.append((target, server))
        for index in range(st.rounds):
            log(f"== round {index + 1} of {st.rounds} ==")
            for key in st.scenarios:
                for target, server in running:
                    _run_key(key, target, server, upstream, st)
    finally:
        for target, server in running:
            stop_target(target, server)
    for target, _ in running:
        pick_medians(target.results)


def pick_medians(results: dict[str, Any]) -> None:
    """Each scenario's figures become those of its median round by CPU per request (the lower one of
    an even count); the rounds stay in results["rounds"]."""
    for key, rounds in results.get("rounds", {}).items():
        measured = sorted((r for r in rounds if "cN" in r), key=lambda r: r["cN"]["cpu_ms_per_req"])
        chosen = measured[(len(measured) - 1) // 2] if measured else rounds[-1]
        results.setdefault("scenarios", {})[key] = chosen


def machine_info() -> dict[str, str]:
    import os
    import platform

    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    os_name = "unknown"
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("PRETTY_NAME="):
            os_name = line.split("=", 1)[1].strip('"')
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory_gib": f"{mem_kb / 2**20:.0f}",
        "os": os_name,
        "kernel": platform.release(),
        **tool_versions(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--scenarios",
        default=DEFAULT_SCENARIOS,
        help="scenario letters to run, e.g. 'abd' or 'a,b' (default: abcdehi; f, g, j, k on request)",
    )
    p.add_argument(
        "--compare-litellm", action="store_true", help="also run LiteLLM 1.110.2 (bench/.venv-litellm)"
    )
    p.add_argument(
        "--skip-anygate", action="store_true", help="do not run anygate (e.g. to test the harness on LiteLLM)"
    )
    p.add_argument("--skip-direct", action="store_true", help="do not run the direct-upstream baseline")
    p.add_argument("--workers", default="1", help="worker counts, comma-separated, e.g. '1,2' (default: 1)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured wrk run (default: 10)")
    p.add_argument(
        "--warmup",
        type=float,
        default=3.0,
        help="seconds of discarded load before each scenario (default: 3)",
    )
    p.add_argument(
        "--connections", type=int, default=32, help="connections of the throughput run (default: 32)"
    )
    p.add_argument(
        "--streams", type=int, default=1000, help="concurrent slow streams in scenario e (default: 1000)"
    )
    p.add_argument(
        "--observability",
        default="",
        help="also run anygate variants, comma-separated: "
        + "; ".join(f"{k}: {v}" for k, v in OBSERVABILITY_VARIANTS.items()),
    )
    p.add_argument(
        "--teams",
        default="",
        help="also run anygate with teams on and virtual keys, comma-separated: "
        + "; ".join(f"{k}: {v}" for k, v in TEAMS_VARIANTS.items()),
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="start every gateway once and run the scenarios this many times, alternating the "
        "gateways scenario by scenario; medians are reported (default: 1)",
    )
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory (default: bench/results)")
    args = p.parse_args(argv)
    args.observability = [v.strip() for v in args.observability.split(",") if v.strip()]
    if set(args.observability) - set(OBSERVABILITY_VARIANTS):
        p.error(f"--observability takes {', '.join(OBSERVABILITY_VARIANTS)}")
    args.teams = [v.strip() for v in args.teams.split(",") if v.strip()]
    if set(args.teams) - set(TEAMS_VARIANTS):
        p.error(f"--teams takes {', '.join(TEAMS_VARIANTS)}")
    if not 1 <= args.rounds <= 20:
        p.error("--rounds must be 1-20")
    args.scenarios = "".join(c for c in args.scenarios.lower() if c in ALL_SCENARIOS)
    args.workers = [int(w) for w in str(args.workers).split(",") if w.strip()]
    if not args.scenarios or not args.workers or min(args.workers) < 1:
        p.error("need at least one scenario of a-g and worker counts >= 1")
    if not 1 <= args.duration <= 600 or not 0 <= args.warmup <= 120 or not 1 <= args.streams <= 5000:
        p.error("--duration must be 1-600 s, --warmup 0-120 s, --streams 1-5000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_nofile_limit()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir: Path = args.out
    run_dir = out_dir / "runs" / stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    st = Settings(
        args.scenarios,
        args.duration,
        args.warmup,
        args.connections,
        args.streams,
        out_dir,
        run_dir,
        rounds=args.rounds,
        # Teams write spend every second and sync the cache every half second: count that in the run.
        settle_s=TEAMS_SETTLE_S if args.teams else 0.0,
    )

    targets: list[Target] = []
    if not args.skip_direct:
        targets.append(Target("direct", 0, None))
    for workers in args.workers:
        if not args.skip_anygate:
            targets.append(Target(f"anygate-w{workers}", workers, Anygate()))
            for variant in args.observability:
                targets.append(Target(f"anygate-{variant}-w{workers}", workers, Anygate(variant)))
            for variant in args.teams:
                label = f"anygate-teams-{variant}-w{workers}"
                targets.append(Target(label, workers, Anygate(f"teams-{variant}")))
        if args.compare_litellm:
            targets.append(Target(f"litellm-w{workers}", workers, LiteLLM()))

    command = "bench/.venv/bin/python -m bench.run " + " ".join(sys.argv[1:] if argv is None else argv)
    log(f"run directory {run_dir}")
    upstream = start_upstream(run_dir)
    log(f"fake upstream (nginx) on 127.0.0.1:{upstream.port}")
    try:
        if st.rounds > 1:
            run_rounds(targets, upstream, st)
        else:
            for target in targets:
                run_target(target, upstream, st)
    finally:
        upstream.stop()

    results: dict[str, Any] = {
        "started": stamp,
        "command": command,
        "machine": machine_info(),
        "settings": {
            "scenarios": st.scenarios,
            "duration_s": st.duration_s,
            "warmup_s": st.warmup_s,
            "connections": st.connections,
            "streams": st.streams,
            "workers": args.workers,
            "rounds": st.rounds,
            "settle_s": st.settle_s,
        },
        "targets": [
            {
                "label": t.label,
                "workers": t.workers,
                "gateway": t.gateway.name if t.gateway else "direct",
                **t.results,
            }
            for t in targets
        ],
    }
    (run_dir / "results.json").write_text(json.dumps(results, indent=2))
    (out_dir / "latest.json").write_text(json.dumps(results, indent=2))
    markdown = report.render(results)
    (out_dir / "latest.md").write_text(markdown)
    (run_dir / "report.md").write_text(markdown)
    chart_path = out_dir / "chart.png"
    if chart.draw(results, chart_path):
        log(f"chart written to {chart_path}")
    print()
    print(markdown)
    log(f"results: {out_dir / 'latest.json'}, {out_dir / 'latest.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
