"""``run_suite.py deploy-bench``: deployed latency of every variant on one architecture.

Each variant's model (random init, a few train-mode forwards so running statistics exist)
is deployed, and all deployed models are timed together in interleaved rounds: batch 1
(latency) and batch ``batch`` (throughput pass). Each variant is reported as a ratio to
``none`` (identity norms: the cost-free lower bound) and to ``ln``, paired per round, with
95% intervals. A faithful fold costs nothing, so folded variants should sit at 1.00 of
``none``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from tabulate import tabulate

from suite.bench.common import BenchSetup, report_dir, setup, write_report
from suite.measure.inputs import make_input
from suite.measure.interleave import TimingConfig, ratio_ci, time_interleaved
from suite.models.create import create_model
from suite.models.deploy import deploy
from suite.variants import NORMS, parse_variant
from suite.variants.base import budget_kwargs

BASELINES = ("none", "ln")


def build_deployed(model_name: str, variant: str, img_size: int, device: Any) -> Any:
    torch.manual_seed(0)
    v = parse_variant(variant)
    model = create_model(model_name, v, variant_kwargs=budget_kwargs(v.norm_cls, 100), img_size=img_size).to(device)
    with torch.no_grad():
        for _ in range(3):  # running statistics and schedules move off their init
            model.train()(torch.randn(4, 3, img_size, img_size, device=device))
    return deploy(model.eval())


def run_deploy_bench(*, model: str, img_size: int, variants: list[str] | None, batch: int, seconds: float,
                     device: str, threads: int | None, out: Path | None, results_dir: Path) -> int:
    bench = setup(device, threads)
    names = list(variants) if variants else NORMS.names()
    names += [b for b in BASELINES if b not in names]
    models = {v: build_deployed(model, v, img_size, bench.device) for v in names}
    spec = {"kind": "image", "shape": [3, img_size, img_size]}
    cfg = TimingConfig(budget_s=seconds, throughput_batch=batch)
    t = time_interleaved(models, lambda b: make_input(spec, b, bench.device), cfg, bench.device)
    rows = []
    for v in names:
        row: dict[str, Any] = {"variant": v, "p50_b1_ms": t[v].summary["p50_ms"],
                               f"median_b{batch}_ms": float(np.median(t[v].throughput_round_ms)),
                               "params": sum(p.numel() for p in models[v].parameters())}
        for base in BASELINES:
            for tag, series, ref in (("b1", t[v].latency_round_ms, t[base].latency_round_ms),
                                     (f"b{batch}", t[v].throughput_round_ms, t[base].throughput_round_ms)):
                r = ratio_ci(np.log(series) - np.log(ref), baseline=base)
                row[f"{tag}_vs_{base}"] = [r.value, r.lo, r.hi]
        rows.append(row)
    rounds = len(t[names[0]].latency_round_ms)
    args = {"model": model, "img_size": img_size, "variants": variants, "batch": batch, "seconds": seconds,
            "device": device, "threads": threads, "out": out}
    md = render(rows, model=model, img_size=img_size, batch=batch, seconds=seconds, bench=bench, rounds=rounds)
    write_report(report_dir(out, results_dir, "deploy-bench", device), md,
                 {"args": {k: str(v) for k, v in args.items()}, "rows": rows, "rounds": rounds}, bench)
    return 0


def render(rows: list[dict], *, model: str, img_size: int, batch: int, seconds: float, bench: BenchSetup,
           rounds: int) -> str:
    b = batch

    def ci(x: list[float]) -> str:
        return f"{x[0]:.3f} [{x[1]:.3f}, {x[2]:.3f}]"

    table = [{"variant": r["variant"], "b1 p50 ms": f"{r['p50_b1_ms']:.2f}", "b1 / none": ci(r["b1_vs_none"]),
              "b1 / ln": ci(r["b1_vs_ln"]), f"b{b} ms": f"{r[f'median_b{b}_ms']:.1f}",
              f"b{b} / none": ci(r[f"b{b}_vs_none"]), f"b{b} / ln": ci(r[f"b{b}_vs_ln"]),
              "params M": f"{r['params'] / 1e6:.3f}"} for r in rows]
    head = (f"Deployed latency, {model} at {img_size} px, {bench.where} "
            f"({bench.threads} threads), {rounds} interleaved rounds, {seconds:.0f} s; "
            f"ratios of per-round medians with 95% bootstrap intervals; lower is faster.")
    return head + "\n\n" + tabulate(table, headers="keys", tablefmt="github", disable_numparse=True) + "\n"
