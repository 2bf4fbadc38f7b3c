"""Render a run's results as Markdown, ready to paste into BENCHMARKS.md.

Why one renderer for the terminal and the file: the figures someone pastes are then exactly the ones the
run printed, with the machine, the command and the budget of the issue next to them.
"""

from __future__ import annotations

from statistics import median
from typing import Any

from bench.scenarios import (
    ADDED_LATENCY_BUDGET_MS,
    CPU_BUDGET_MS,
    LOAD_SCENARIOS,
    RATIO_TARGET,
    SCENARIO_E_TITLE,
    SLOW_STREAMS_RSS_BUDGET_MB,
    TEAMS_ADDED_CPU_BUDGET_MS,
    load_scenarios,
)

_TITLES = {k: s.title for k, s in load_scenarios().items()}


def target_name(t: dict[str, Any], litellm_version: str = "") -> str:
    if t["gateway"] == "direct":
        return "direct upstream (nginx)"
    workers = f"{t['workers']} worker" + ("s" if t["workers"] != 1 else "")
    if t["gateway"] == "litellm":
        return f"LiteLLM {litellm_version} ({workers})".replace("  ", " ")
    variant = t["gateway"].removeprefix("anygate").removeprefix("-")
    return f"anygate {variant} ({workers})" if variant else f"anygate ({workers})"


def _f(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.{digits}f}"


def _ratio(a: float | None, b: float | None, target: float | None = None) -> str:
    if not a or not b:
        return "-"
    text = f"{a / b:,.0f}x" if a / b >= 10 else f"{a / b:.1f}x"
    if target is not None:
        text += " (ok)" if a / b >= target else f" (under {target:g}x)"
    return text


def _code(text: str, limit: int) -> str:
    """Inline-code-safe excerpt: one line, no backticks."""
    return text[:limit].replace("`", "'").replace("\r", "").replace("\n", "\\n")


def _scenario(t: dict[str, Any], key: str) -> dict[str, Any] | None:
    sc = t.get("scenarios", {}).get(key)
    return sc if sc and "cN" in sc else None


def _find(results: dict[str, Any], gateway: str, workers: int | None = None) -> dict[str, Any] | None:
    targets: list[dict[str, Any]] = results["targets"]
    for t in targets:
        if t["gateway"] == gateway and (workers is None or t["workers"] == workers):
            return t
    return None


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    s = results["settings"]
    version = m.get("litellm", "")
    lines = [
        f"## Benchmark results ({results['started']})",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}, Linux {m['kernel']}",
        f"- Tools: Python {m['python']}, LiteLLM {version}, {m.get('nginx', 'nginx ?')} with its Lua module "
        "as the "
        f"fake upstream, {m.get('wrk', 'wrk ?')} as the load generator, all on 127.0.0.1",
        f"- Command: `{results['command'].strip()}`",
        f"- Each figure: {s['duration_s']:.0f} s of load after {s['warmup_s']:.0f} s of warm-up; "
        "latency at 1 "
        f"connection, throughput and CPU per request at {s['connections']} connections; CPU = utime+stime of "
        "the gateway's process tree from /proc, divided by completed requests",
        "",
    ]
    background = [
        run["background_cores"]
        for t in results["targets"]
        for sc in t.get("scenarios", {}).values()
        for run in (sc.get("c1"), sc.get("cN"))
        if run and "background_cores" in run
    ]
    if background:
        quiet = (
            "a quiet machine" if max(background) < 0.25 else "NOT a quiet machine: figures are less reliable"
        )
        lines[-1:-1] = [
            f"- Background load: other processes used at most {max(background):.2f} cores during any "
            f"measured run ({quiet})"
        ]
    keys = [k for k in LOAD_SCENARIOS if k in s["scenarios"]]
    conns = s["connections"]
    if keys:
        lines += [
            "### Per scenario",
            "",
            f"| Scenario | Target | p50 ms (1 conn) | p99 ms (1 conn) | req/s ({conns} conn) | "
            f"CPU ms/req ({conns} conn) | peak RSS MB | errors |",
            "|---|---|--:|--:|--:|--:|--:|--:|",
        ]
        for key in keys:
            for t in results["targets"]:
                name = target_name(t, version)
                sc = t.get("scenarios", {}).get(key)
                if sc is None:
                    if "error" in t:
                        lines.append(f"| ({key}) {_TITLES[key]} | {name} | did not start | | | | | |")
                    continue
                if "cN" not in sc:
                    why = sc.get("check", {}).get("problem") or sc.get("error", "failed")
                    failed = f"FAILED: {_code(str(why), 80)}"
                    lines.append(f"| ({key}) {_TITLES[key]} | {name} | {failed} | | | | | |")
                    continue
                c1, cn = sc["c1"], sc["cN"]
                cpu = "-" if t["gateway"] == "direct" else _f(cn["cpu_ms_per_req"], 3)
                rss = "-" if t["gateway"] == "direct" else _f(cn["peak_rss_mb"], 0)
                lines.append(
                    f"| ({key}) {_TITLES[key]} | {name} | {_f(c1['p50_ms'], 3)} | {_f(c1['p99_ms'], 3)} | "
                    f"{_f(cn['rps'], 0)} | {cpu} | {rss} | {c1['errors'] + cn['errors']} |"
                )
        lines.append("")
        lines += _variants(results, keys)
        lines += _comparison(results, keys, version)
    if "e" in s["scenarios"]:
        lines += [
            f"### (e) {SCENARIO_E_TITLE}",
            "",
            f"| Target | streams | completed | failed | "
            f"peak RSS MB (budget {SLOW_STREAMS_RSS_BUDGET_MB:.0f}) | "
            "stream s p50 / max (nominal 10) | first byte s p50 | gateway CPU s | ping after message_stop |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for t in results["targets"]:
            e = t.get("slow_streams")
            if t["gateway"] == "direct":
                continue
            name = target_name(t, version)
            if not e or "error" in e:
                why = (e or {}).get("error") or t.get("error", "not run")
                lines.append(f"| {name} | FAILED: {_code(str(why), 80)} | | | | | | | |")
                continue
            rss_ok = e["peak_rss_mb"] <= SLOW_STREAMS_RSS_BUDGET_MB
            rss = f"{_f(e['peak_rss_mb'], 0)} ({'ok' if rss_ok else 'OVER'})"
            lines.append(
                f"| {name} | {e['streams']} | {e['completed']} | {e['failed']} | {rss} | "
                f"{_f(e['total_p50_s'], 1)} / {_f(e['total_max_s'], 1)} | {_f(e['first_byte_p50_s'], 2)} | "
                f"{_f(e['cpu_s'], 1)} | {e.get('pings_after_stop', 0)} |"
            )
        lines.append("")
    lines += _scaling(results, keys)
    lines += _failures(results, version)
    return "\n".join(lines) + "\n"


def _added_latency(sc: dict[str, Any] | None, direct: dict[str, Any] | None) -> float | None:
    """p50 at 1 connection through the gateway minus the same through nothing."""
    return sc["c1"]["p50_ms"] - direct["c1"]["p50_ms"] if sc and direct else None


def _comparison(results: dict[str, Any], keys: list[str], version: str) -> list[str]:
    """anygate vs LiteLLM at the first worker count, with the budget of the issue."""
    workers = results["settings"]["workers"][0]
    ag, ll, direct = (
        _find(results, "anygate", workers),
        _find(results, "litellm", workers),
        _find(results, "direct"),
    )
    if ag is None and ll is None:
        return []
    out = [
        f"### anygate vs LiteLLM {version} ({workers} worker{'s' if workers != 1 else ''})",
        "",
        "| Scenario | anygate CPU ms/req | LiteLLM CPU ms/req | LiteLLM ÷ anygate | anygate budget | "
        "anygate p50 added ms | LiteLLM p50 added ms | req/s anygate / LiteLLM |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for key in keys:
        a = _scenario(ag, key) if ag else None
        b = _scenario(ll, key) if ll else None
        d = _scenario(direct, key) if direct else None
        a_cpu = a["cN"]["cpu_ms_per_req"] if a else None
        b_cpu = b["cN"]["cpu_ms_per_req"] if b else None
        budget = CPU_BUDGET_MS[key]
        verdict = "-" if a_cpu is None else ("ok" if a_cpu <= budget else "OVER")
        lat_budget = ADDED_LATENCY_BUDGET_MS.get(key)

        a_add = _added_latency(a, d)
        add_txt = _f(a_add, 3)
        if a_add is not None and lat_budget is not None:
            add_txt += f" ({'ok' if a_add <= lat_budget else 'OVER'} ≤ {lat_budget:g})"
        rps = f"{_f(a['cN']['rps'], 0) if a else '-'} / {_f(b['cN']['rps'], 0) if b else '-'}"
        out.append(
            f"| ({key}) | {_f(a_cpu, 3)} | {_f(b_cpu, 2)} | {_ratio(b_cpu, a_cpu, RATIO_TARGET)} | "
            f"≤ {budget:g} ({verdict}) | "
            f"{add_txt} | {_f(_added_latency(b, d), 2)} | {rps} |"
        )
    out += ["", f"Target: anygate at least {RATIO_TARGET:g}x cheaper than LiteLLM in CPU per request.", ""]
    return out


def _round_cpu(t: dict[str, Any], key: str) -> list[float | None]:
    """CPU ms per request at the throughput run of each round (None where a round failed)."""
    runs = t.get("rounds", {}).get(key) or [t.get("scenarios", {}).get(key) or {}]
    return [r["cN"]["cpu_ms_per_req"] if "cN" in r else None for r in runs]


def _variants(results: dict[str, Any], keys: list[str]) -> list[str]:
    """Each anygate variant's CPU per request next to the default anygate's: the rounds, their median,
    and what the variant adds as the median of the per-round differences (rounds alternate the
    gateways, so a round's two figures share the machine's background load)."""
    out: list[str] = []
    rounds = results["settings"].get("rounds", 1)
    conns = results["settings"]["connections"]
    for workers in results["settings"]["workers"]:
        base = _find(results, "anygate", workers)
        variants = [
            t
            for t in results["targets"]
            if t["gateway"].startswith("anygate-") and t["workers"] == workers and "error" not in t
        ]
        if base is None or not variants:
            continue
        plural = "s" if workers != 1 else ""
        out += [
            f"### anygate variants against the default anygate ({workers} worker{plural}, "
            f"{rounds} round{'s' if rounds != 1 else ''})",
            "",
            f"CPU ms per request at {conns} connections; rounds alternate the gateways scenario by "
            "scenario. Added: the median over rounds of (variant - default) in the same round.",
            "",
            "| Scenario | anygate | CPU ms/req by round | median | added ms/req | ratio of medians |",
            "|---|---|---|--:|--:|--:|",
        ]
        for key in keys:
            base_cpu = _round_cpu(base, key)
            base_ok = [c for c in base_cpu if c is not None]
            base_median = median(base_ok) if base_ok else None
            by_round = " / ".join(_f(c, 3) for c in base_cpu)
            out.append(f"| ({key}) | default | {by_round} | {_f(base_median, 3)} | | |")
            for t in variants:
                cpu = _round_cpu(t, key)
                ok = [c for c in cpu if c is not None]
                med = median(ok) if ok else None
                diffs = [
                    v - b for v, b in zip(cpu, base_cpu, strict=False) if v is not None and b is not None
                ]
                added = median(diffs) if diffs else None
                added_txt = "-" if added is None else f"{added:+.3f}"
                if added is not None and t["gateway"].startswith("anygate-teams-"):
                    ok_added = added <= TEAMS_ADDED_CPU_BUDGET_MS
                    added_txt += f" ({'ok' if ok_added else 'OVER'} ≤ {TEAMS_ADDED_CPU_BUDGET_MS:g})"
                ratio = f"{med / base_median:.3f}x" if med and base_median else "-"
                variant = t["gateway"].removeprefix("anygate-")
                by_round = " / ".join(_f(c, 3) for c in cpu)
                out.append(f"| ({key}) | {variant} | {by_round} | {_f(med, 3)} | {added_txt} | {ratio} |")
        out.append("")
    return out


def _scaling(results: dict[str, Any], keys: list[str]) -> list[str]:
    workers = results["settings"]["workers"]
    if len(workers) < 2 or not keys:
        return []
    conns = results["settings"]["connections"]
    head = " | ".join(f"{g} w{w} req/s" for g in ("anygate", "LiteLLM") for w in workers)
    out = [
        f"### Throughput by worker count ({conns} connections)",
        "",
        f"| Scenario | {head} |",
        "|---|" + "--:|" * (2 * len(workers)),
    ]
    for key in keys:
        cells = []
        for g in ("anygate", "litellm"):
            for w in workers:
                t = _find(results, g, w)
                sc = _scenario(t, key) if t else None
                cells.append(_f(sc["cN"]["rps"], 0) if sc else "-")
        out.append(f"| ({key}) | " + " | ".join(cells) + " |")
    return [*out, ""]


def _failures(results: dict[str, Any], version: str) -> list[str]:
    """Failed checks and failed targets, with the request and the answer, so they can be reported as is."""
    out: list[str] = []
    for t in results["targets"]:
        name = target_name(t, version)
        if "error" in t:
            out.append(f"- **{name}**: `{_code(t['error'], 1500)}`")
        for key, sc in t.get("scenarios", {}).items():
            check = sc.get("check", {})
            if check and not check.get("ok"):
                req = check.get("request", {})
                out.append(
                    f"- **{name}, ({key})**: {check.get('problem')} — POST {req.get('url')}\n"
                    f"  - request body (start): `{_code(req.get('body_excerpt', ''), 300)}`\n"
                    f"  - response (HTTP {check.get('status')}): "
                    f"`{_code(check.get('response_excerpt', ''), 800)}`"
                )
            elif "error" in sc:
                out.append(f"- **{name}, ({key})**: {sc['error'][:500]}")
            for run in ("c1", "cN"):
                r = sc.get(run)
                if r and r.get("errors"):
                    out.append(
                        f"- **{name}, ({key}) {run}**: {r['errors']} errors {r['error_detail']}; first: "
                        f"`{_code(r.get('sample_failure', ''), 300)}`"
                    )
        e = t.get("slow_streams")
        if e and e.get("failed"):
            out.append(
                f"- **{name}, (e)**: {e['failed']} streams failed {e['problems']}; "
                f"e.g. `{_code(e['sample_problem'], 700)}`"
            )
    return ["### Failures", "", *out, ""] if out else []
