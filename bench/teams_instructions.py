"""Instructions per request with and without teams, counted by Valgrind's callgrind.

What teams add to a small request (bench.run --teams) is a tenth or a fifth of its CPU, and on a shared
machine CPU seconds per request move by as much between two runs of the same gateway. Callgrind counts
the instructions a process executes instead: the same gateway under the same load gives the same count
to about 1%, whatever else the machine runs. Instructions are not seconds (cache misses and lock
hand-overs between threads cost time without instructions), so this complements the timed figures
rather than replacing them: it says how much work teams add, repeatably.

Each variant is started as in bench.run (one worker, the same config; `teams-sqlite` with the same
10,000 keys in SQLite), under callgrind with counting off. wrk sends scenario (a) on 32 connections,
rotating through the keys, for `--warmup` seconds; the gateway then writes that spend (so SQLite's
statements for the batch sizes are compiled, as in the first seconds of a real gateway); counting is
switched on for `--window` seconds of load and what follows it (the requests wrk left in flight, and
with teams the spend write); the count, by thread, is divided by the requests wrk completed, which
leaves the up to 32 requests in flight at its end uncounted but their work counted, alike in every
variant (about 1% of the count).

Under callgrind a gateway runs about 65 times slower (tens of requests a second instead of thousands),
so its time-driven work is scaled: the teams' spend write and cache sync run `--scale` times less often
(`proxy_batch_write_at`, `key_sync_interval`), so that a write carries hundreds of rows (at full speed,
thousands) rather than dozens. The Redis limiter reports to Redis every 50 ms, a cadence the config
does not set: under callgrind that call would be counted once per two requests instead of once per
hundred, so the Postgres + Redis variant is not measured this way.

    bench/.venv/bin/python -m bench.teams_instructions            # ~7 minutes a round
    bench/.venv/bin/python -m bench.teams_instructions --rounds 2

Needs valgrind, which bench/setup.sh installs with the rest.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.gateways import Anygate
from bench.loadgen import run_wrk
from bench.payloads import encode
from bench.procs import Server, raise_nofile_limit
from bench.scenarios import load_scenarios
from bench.upstream.server import start_upstream

VARIANTS = ("default", "teams-sqlite")
CONNECTIONS = 32
SETTLE_S = 5.0
"""Seconds for a gateway under callgrind to finish the requests wrk left in flight."""


class CountedAnygate(Anygate):
    """anygate under callgrind (counting off until told), its teams' timers ``scale`` times slower."""

    def __init__(self, variant: str, out_file: Path, scale: float) -> None:
        super().__init__("" if variant == "default" else variant)
        self.out_file = out_file
        self.scale = scale

    def argv(self, config_path: Path, port: int, workers: int) -> list[str]:
        return [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--separate-threads=yes",
            f"--callgrind-out-file={self.out_file}",
            *super().argv(config_path, port, workers),
        ]

    def config(self, upstream_port: int, models: set[str] | None = None) -> str:
        text = super().config(upstream_port, models)
        if self.teams:
            text = text.replace(
                "general_settings: {",
                f"general_settings: {{proxy_batch_write_at: {self.scale:g}, "
                f"key_sync_interval: {0.5 * self.scale:g}, ",
            )
        return text


@dataclass
class Count:
    variant: str
    requests: int
    errors: int
    by_thread: dict[int, int]
    """Instructions of each thread (1 is the main thread: the event loop)."""

    @property
    def per_request(self) -> float:
        return sum(self.by_thread.values()) / max(self.requests, 1)

    @property
    def main_per_request(self) -> float:
        return self.by_thread.get(1, 0) / max(self.requests, 1)


def _callgrind(action: str, pid: int) -> None:
    done = subprocess.run(["callgrind_control", *action.split(), str(pid)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"callgrind_control {action} failed: {done.stderr or done.stdout}")


def _read_dump(out_file: Path) -> dict[int, int]:
    """Instructions by thread of the dump made on request (``part: 1``), one file per thread."""
    by_thread: dict[int, int] = {}
    for path in out_file.parent.glob(out_file.name + ".1-*"):
        thread = int(path.name.rsplit("-", 1)[1])
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("summary:"):
                by_thread[thread] = int(line.split()[1])
                break
    if not by_thread:
        raise RuntimeError(f"callgrind wrote no dump next to {out_file}")
    return by_thread


def measure(variant: str, upstream: Server, run_dir: Path, args: argparse.Namespace) -> Count:
    out_dir = run_dir / f"{variant}-{time.monotonic_ns()}"
    out_dir.mkdir(parents=True)
    gateway = CountedAnygate(variant, out_dir / "callgrind.out", args.scale)
    server = gateway.start(out_dir, upstream.port, 1, {"bench-openai"})
    try:
        scenario = load_scenarios()["a"]
        url = f"http://127.0.0.1:{server.port}/v1/messages{scenario.query}"
        body_file = out_dir / "body.json"
        body_file.write_bytes(encode(scenario.body))
        headers = dict(scenario.headers)
        if gateway.key_file is not None:
            headers["x-api-key"] = gateway.key_file.read_text().split("\n", 1)[0]

        def load(seconds: float) -> tuple[int, int]:
            done = run_wrk(
                url, body_file, headers, CONNECTIONS, seconds, scenario.expect, key_file=gateway.key_file
            )
            return done.requests, done.errors

        # Teams: past the next spend write; otherwise past the requests left in flight.
        settle = args.scale * 1.2 if gateway.teams else SETTLE_S
        load(args.warmup)
        time.sleep(settle)  # the warm-up's requests and spend done before counting starts
        _callgrind("-z", server.pid)
        _callgrind("-i on", server.pid)
        requests, errors = load(args.window)
        time.sleep(settle)  # and the window's, counted
        _callgrind("-d", server.pid)
        _callgrind("-i off", server.pid)
        return Count(variant, requests, errors, _read_dump(out_dir / "callgrind.out"))
    finally:
        server.stop()
        gateway.cleanup()


def report(counts: list[Count]) -> str:
    lines = [
        "| variant | requests | errors | instructions / request | main thread | other threads | added |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    by_variant: dict[str, list[Count]] = {}
    for count in counts:
        by_variant.setdefault(count.variant, []).append(count)
    defaults = [count.per_request for count in by_variant.get("default", [])]
    base = statistics.median(defaults) if defaults else 0.0
    for variant, runs in by_variant.items():
        for count in runs:
            total = count.per_request
            added = (
                f"{total - base:+,.0f} ({(total / base - 1) * 100:+.1f}%)"
                if base and variant != "default"
                else "-"
            )
            lines.append(
                f"| {variant} | {count.requests:,} | {count.errors} | {total:,.0f} | "
                f"{count.main_per_request:,.0f} | {total - count.main_per_request:,.0f} | {added} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="comma-separated: default, teams-sqlite"
    )
    parser.add_argument("--rounds", type=int, default=1, help="runs of each variant, alternating")
    parser.add_argument("--window", type=float, default=60.0, help="seconds of counted load")
    parser.add_argument("--warmup", type=float, default=90.0, help="seconds of load before counting")
    parser.add_argument("--scale", type=float, default=10.0, help="teams' spend write every SCALE seconds")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if set(variants) - set(VARIANTS):
        parser.error(f"--variants takes {', '.join(VARIANTS)}")
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed: run `bash bench/setup.sh`", file=sys.stderr)
            return 2
    raise_nofile_limit()
    run_dir = Path(tempfile.mkdtemp(prefix="anygate-instructions-"))
    upstream = start_upstream(run_dir)
    counts: list[Count] = []
    try:
        for round_index in range(args.rounds):
            for variant in variants:
                count = measure(variant, upstream, run_dir, args)
                print(
                    f"round {round_index + 1} {variant}: {count.requests:,} requests, "
                    f"{count.per_request:,.0f} instructions / request",
                    file=sys.stderr,
                    flush=True,
                )
                counts.append(count)
    finally:
        upstream.stop()
        if counts:
            print(report(counts))
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
