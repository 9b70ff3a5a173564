"""``run_suite.py scaling``: attention-only latency against sequence length, softmax vs SLA.

For each width C and token count N (a square grid), the model's softmax attention (timm
``Attention``, fused scaled-dot-product attention) and SLA are timed interleaved at batch
1. The growth exponent is the slope of log latency on log N; the crossover is where SLA
becomes faster (interpolated between measured N in log-log, or extrapolated from the fits
when it is faster at every measured N). Writes report.json, report.md and scaling.png.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict, cast

import numpy as np
import torch
from tabulate import tabulate

from suite.bench.common import BenchSetup, report_dir, setup, write_report
from suite.measure.interleave import TimingConfig, time_interleaved
from suite.variants.attention.sla import SimplifiedLinearAttention, grid_of


class ScalingRow(TypedDict):
    """One (C, N) point of ``report.json``'s ``rows``: both medians and SLA's ratio [value, lo, hi]."""
    C: int
    N: int
    softmax_ms: float
    sla_ms: float
    sla_over_softmax: list[float]
    rounds: int


class ScalingFit(TypedDict):
    """One width's line of ``report.json``'s ``summary``: the growth exponents and the crossover."""
    C: int
    softmax_exponent: float
    sla_exponent: float
    crossover_N: float
    crossover: str


def attention_pair(c: int, n: int, device: torch.device) -> dict[str, torch.nn.Module]:
    from timm.layers import Attention
    torch.manual_seed(0)
    softmax = Attention(c, num_heads=c // 64, qkv_bias=True)
    cast(Any, softmax).fused_attn = True  # timm declares it Final (set once at init); force the fused kernel
    sla = SimplifiedLinearAttention(c, c // 64, grid_of(n))
    return {"softmax": softmax.to(device).eval(), "sla": sla.to(device).eval()}


def fit_exponent(ns: list[int], ms: list[float]) -> float:
    return float(np.polyfit(np.log(ns), np.log(ms), 1)[0])


def crossover(ns: list[int], soft: list[float], lin: list[float]) -> tuple[float, str]:
    """N where SLA's latency meets softmax's; how it was found."""
    r = np.log(np.asarray(lin) / np.asarray(soft))
    for i in range(len(ns) - 1):
        if r[i] >= 0 > r[i + 1]:
            x0, x1 = math.log(ns[i]), math.log(ns[i + 1])
            return math.exp(x0 + (x1 - x0) * r[i] / (r[i] - r[i + 1])), "interpolated"
    a1, b1 = np.polyfit(np.log(ns), np.log(soft), 1)
    a2, b2 = np.polyfit(np.log(ns), np.log(lin), 1)
    how = "extrapolated (SLA faster at every measured N)" if r[0] < 0 else "extrapolated (softmax faster throughout)"
    return (float(math.exp((b2 - b1) / (a1 - a2))) if a1 != a2 else math.nan), how


def run_scaling(*, tokens: list[int], dims: list[int], seconds: float, device: str, threads: int | None,
                out: Path | None, results_dir: Path) -> int:
    bench = setup(device, threads)
    rows: list[ScalingRow] = []
    summary: list[ScalingFit] = []
    for c in dims:
        for n in tokens:
            pair = attention_pair(c, n, bench.device)
            x = torch.randn(1, n, c, device=bench.device)
            cfg = TimingConfig(budget_s=seconds, warmup_iters=2, warmup_s=0.5, min_rounds=4, block_s=0.05,
                               throughput_batch=1, measure_throughput=False)
            make_input = cast(Callable[[int], Any], lambda b, x=x: x)  # mypy cannot infer a lambda with defaults
            t = time_interleaved(pair, make_input, cfg, bench.device, baseline="softmax")
            r = t["sla"].ratio
            assert r is not None
            rows.append({"C": c, "N": n, "softmax_ms": t["softmax"].summary["p50_ms"],
                         "sla_ms": t["sla"].summary["p50_ms"], "sla_over_softmax": [r.value, r.lo, r.hi],
                         "rounds": r.rounds})
            print(f"C={c} N={n}: softmax {rows[-1]['softmax_ms']:.2f} ms, SLA {rows[-1]['sla_ms']:.2f} ms, "
                  f"SLA/softmax {r.value:.3f} [{r.lo:.3f}, {r.hi:.3f}]", flush=True)
        mine = [row for row in rows if row["C"] == c]
        ns = [row["N"] for row in mine]
        cross, how = crossover(ns, [row["softmax_ms"] for row in mine], [row["sla_ms"] for row in mine])
        summary.append({"C": c, "softmax_exponent": fit_exponent(ns, [row["softmax_ms"] for row in mine]),
                        "sla_exponent": fit_exponent(ns, [row["sla_ms"] for row in mine]),
                        "crossover_N": cross, "crossover": how})
    folder = report_dir(out, results_dir, "scaling", device)
    plot(rows, dims, bench.where, folder / "scaling.png")
    args = {"tokens": tokens, "dims": dims, "seconds": seconds, "device": device, "threads": threads, "out": out}
    write_report(folder, render(rows, summary, bench, seconds),
                 {"rows": rows, "summary": summary, "args": {k: str(v) for k, v in args.items()}}, bench)
    return 0


def render(rows: list[ScalingRow], summary: list[ScalingFit], bench: BenchSetup, seconds: float) -> str:
    table = [{"C": r["C"], "N": r["N"], "softmax ms": f"{r['softmax_ms']:.3f}", "SLA ms": f"{r['sla_ms']:.3f}",
              "SLA / softmax [95% CI]": "{:.3f} [{:.3f}, {:.3f}]".format(*r["sla_over_softmax"]),
              "speed-up": f"{1 / r['sla_over_softmax'][0]:.2f}x"} for r in rows]
    fits = [{"C": s["C"], "softmax exponent": f"{s['softmax_exponent']:.2f}",
             "SLA exponent": f"{s['sla_exponent']:.2f}",
             "crossover N": f"{s['crossover_N']:.0f}", "how": s["crossover"]} for s in summary]
    head = (f"Attention-only latency, batch 1, {bench.where} ({bench.threads} threads); "
            f"softmax = timm Attention through fused SDPA; interleaved per (C, N), {seconds:.0f} s each.")
    return "\n\n".join([head, tabulate(table, headers="keys", tablefmt="github", disable_numparse=True),
                        tabulate(fits, headers="keys", tablefmt="github", disable_numparse=True)]) + "\n"


def plot(rows: list[ScalingRow], dims: list[int], where: str, path: Path) -> None:
    from matplotlib.figure import Figure
    fig = Figure(figsize=(6, 4.2))
    ax = fig.subplots()
    for c in dims:
        mine = [r for r in rows if r["C"] == c]
        ns = [r["N"] for r in mine]
        ax.loglog(ns, [r["softmax_ms"] for r in mine], "o-", label=f"softmax C={c}")
        ax.loglog(ns, [r["sla_ms"] for r in mine], "s--", label=f"SLA C={c}")
    ax.set_xlabel("tokens N")
    ax.set_ylabel("latency, batch 1 (ms)")
    ax.set_title(f"Attention scaling ({where})", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
