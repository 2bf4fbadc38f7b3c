"""Run wrk against a target with one fixed request and return its figures.

Why wrk: it is C with an epoll loop and keep-alive connections, so at the request rates a Python gateway
reaches on one core it spends a small fraction of a core, and the gateway stays the bottleneck. The
Lua script (bench/wrk/messages.lua) checks every answer and reports through a JSON line.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

WRK = "wrk"
_LUA = Path(__file__).resolve().parent / "wrk" / "messages.lua"


@dataclass
class LoadResult:
    """What one wrk run measured."""

    connections: int
    duration_s: float
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    error_detail: dict[str, int]
    sample_failure: str
    loadgen_cpu_s: float

    @property
    def loadgen_core_share(self) -> float:
        """Fraction of one core wrk used: far below 1 means wrk was not the bottleneck."""
        return self.loadgen_cpu_s / self.duration_s if self.duration_s else 0.0

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "loadgen_core_share": self.loadgen_core_share}


def run_wrk(
    url: str,
    body_file: Path,
    headers: dict[str, str],
    connections: int,
    duration_s: float,
    expect: str,
    timeout_s: float = 60.0,
    key_file: Path | None = None,
) -> LoadResult:
    """Keep `connections` connections busy with the request for `duration_s` seconds.

    url holds the path and query too (e.g. http://127.0.0.1:4000/v1/messages?beta=true). `expect` is a
    text every successful answer must contain; answers without it count as errors ("bad_body").
    `key_file` (API keys, one a line) makes each request send the next key as `x-api-key`.
    """
    if shutil.which(WRK) is None:
        raise RuntimeError("wrk is not installed: run `bash bench/setup.sh` first")
    scheme_host, _, path = url.partition("://")[2].partition("/")
    env = dict(os.environ)
    env.update(
        BENCH_BODY_FILE=str(body_file),
        BENCH_HEADERS="\n".join(f"{k}: {v}" for k, v in headers.items()),
        BENCH_EXPECT=expect,
        BENCH_PATH="/" + path,
        BENCH_KEY_FILE=str(key_file or ""),
    )
    argv = [
        WRK,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        f"--timeout={int(timeout_s)}s",
        "-s",
        str(_LUA),
        f"http://{scheme_host}/",
    ]
    # Bounded: wrk stops by itself after duration_s; the margin covers its last in-flight answers.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=duration_s + timeout_s + 30)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no figures (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    lat = data["latency_us"]
    detail = dict(data["errors"])
    detail["bad_body"] = data["bad_body"]
    seconds = data["duration_us"] / 1e6
    return LoadResult(
        connections=connections,
        duration_s=seconds,
        requests=data["requests"],
        rps=data["requests"] / seconds if seconds else 0.0,
        p50_ms=lat["p50"] / 1000,
        p90_ms=lat["p90"] / 1000,
        p99_ms=lat["p99"] / 1000,
        max_ms=lat["max"] / 1000,
        errors=sum(detail.values()),
        error_detail=detail,
        sample_failure=data.get("sample_failure", ""),
        loadgen_cpu_s=wrk_cpu,
    )
