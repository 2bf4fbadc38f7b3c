"""Draw the chart of a run: CPU per request and p50 latency per scenario, anygate next to LiteLLM.

Why log scales: the two gateways are expected to differ by 50x or more, so on a linear axis one of the
two bar sets would be invisible. Each bar is labelled with its value so the chart can be read alone.
Can also be run on a saved results file: `python -m bench.chart bench/results/latest.json out.png`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.scenarios import LOAD_SCENARIOS

_COLORS = {"anygate": "#2b7bba", "litellm": "#e07b39", "direct": "#8c8c8c"}


def _series(results: dict[str, Any], gateway: str, keys: list[str], pick: str) -> list[float | None]:
    workers = results["settings"]["workers"][0]
    target = next(
        (
            t
            for t in results["targets"]
            if t["gateway"] == gateway and (gateway == "direct" or t["workers"] == workers)
        ),
        None,
    )
    out: list[float | None] = []
    for key in keys:
        sc = (target or {}).get("scenarios", {}).get(key)
        if not sc or "cN" not in sc:
            out.append(None)
        elif pick == "cpu":
            out.append(sc["cN"]["cpu_ms_per_req"])
        else:
            out.append(sc["c1"]["p50_ms"])
    return out


def draw(results: dict[str, Any], path: Path) -> bool:
    """Write the PNG; returns False (and says why) when matplotlib or the figures are missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        print("matplotlib is not installed (bash bench/setup.sh): no chart", file=sys.stderr)
        return False
    keys = [k for k in LOAD_SCENARIOS if k in results["settings"]["scenarios"]]
    if not keys:
        return False
    version = results["machine"].get("litellm", "")
    workers = results["settings"]["workers"][0]
    labels = {
        "a": "(a) small\nnon-streaming",
        "b": "(b) small\nstreaming",
        "c": "(c) Claude Code\n~90 KB streaming",
        "d": "(d) Anthropic\npassthrough",
        "f": "(f) Gemini\nnon-streaming",
        "g": "(g) Gemini\nstreaming",
        "h": "(h) Responses\nnon-streaming",
        "i": "(i) Responses\nstreaming",
        "j": "(j) Bedrock\nConverseStream",
        "k": "(k) Claude on\nBedrock stream",
    }
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    panels = [
        (
            "cpu",
            f"CPU ms per request ({results['settings']['connections']} connections, {workers} worker)",
            ["anygate", "litellm"],
        ),
        ("lat", "p50 latency ms (1 connection)", ["direct", "anygate", "litellm"]),
    ]
    names = {"anygate": "anygate", "litellm": f"LiteLLM {version}", "direct": "direct upstream"}
    drew = False
    for ax, (pick, title, gateways) in zip(axes, panels, strict=True):
        width = 0.8 / len(gateways)
        for i, gw in enumerate(gateways):
            values = _series(results, gw, keys, pick)
            xs = [j + (i - (len(gateways) - 1) / 2) * width for j in range(len(keys))]
            present = [(x, v) for x, v in zip(xs, values, strict=True) if v is not None and v > 0]
            if not present:
                continue
            drew = True
            bars = ax.bar(
                [x for x, _ in present], [v for _, v in present], width, label=names[gw], color=_COLORS[gw]
            )
            for bar, (_, v) in zip(bars, present, strict=True):
                ax.annotate(
                    f"{v:.3g}", (bar.get_x() + bar.get_width() / 2, v), ha="center", va="bottom", fontsize=8
                )
        ax.set_yscale("log")
        # Headroom above the tallest bar so the legend never covers a value label.
        top = ax.get_ylim()[1]
        ax.set_ylim(top=top * 6)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels([labels[k] for k in keys], fontsize=9)
        ax.set_title(title, fontsize=11)
        ax.grid(axis="y", which="both", alpha=0.25)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=9, loc="upper left", ncols=len(gateways))
    m = results["machine"]
    fig.suptitle(f"anygate vs LiteLLM — {m['cores']} cores, {m['cpu']} — {results['started']}", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return drew


if __name__ == "__main__":
    src = (
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else Path(__file__).resolve().parent / "results" / "latest.json"
    )
    dst = Path(sys.argv[2]) if len(sys.argv) > 2 else src.with_name("chart.png")
    sys.exit(0 if draw(json.loads(src.read_text()), dst) else 1)
