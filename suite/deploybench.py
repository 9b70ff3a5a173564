"""``run_suite.py deploy-bench``: deployed latency of every variant on one architecture.

Each variant's model (random init, a few train-mode forwards so running statistics exist)
is deployed, and all deployed models are timed together in interleaved rounds: batch 1
(latency) and batch ``--batch`` (throughput pass). Each variant is reported as a ratio to
``none`` (identity norms: the cost-free lower bound) and to ``ln``, paired per round, with
95% intervals. A faithful fold costs nothing, so folded variants should sit at 1.00 of
``none``.
"""
from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

from suite import jsonio
from suite.alloc import steady_malloc
from suite.env import now_iso, provenance


def deploy_bench_parser(cls: type[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    p = cls(prog="run_suite.py deploy-bench", description="Interleaved deployed latency of variants, as ratios.")
    p.add_argument("--model", default="deit_tiny_patch16_224")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--variants", default=None, help="comma list (default: every registered norm)")
    p.add_argument("--batch", type=int, default=32, help="the second batch size (the first is 1)")
    p.add_argument("--seconds", type=float, default=300.0, help="interleaved timing budget, all variants together")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=None, help="folder for report.json and report.md")
    return p


def build_deployed(model_name: str, variant: str, img_size: int, device: Any) -> Any:
    import torch

    from suite import create_model, deploy
    from suite.variants import parse_variant
    from suite.variants.base import budget_kwargs
    torch.manual_seed(0)
    v = parse_variant(variant)
    model = create_model(model_name, v, variant_kwargs=budget_kwargs(v.norm_cls, 100), img_size=img_size).to(device)
    with torch.no_grad():
        for _ in range(3):  # running statistics and schedules move off their init
            model.train()(torch.randn(4, 3, img_size, img_size, device=device))
    return deploy(model.eval())


def run_deploy_bench(args: argparse.Namespace, device_name: str, results_dir: Path) -> int:
    import torch

    from suite.cli import parse_list
    from suite.measure import TimingConfig, make_input, ratio_ci, time_interleaved
    from suite.variants import NORMS
    if args.threads:
        torch.set_num_threads(args.threads)
    malloc = steady_malloc()
    device = torch.device(device_name)
    variants = parse_list(args.variants, "--variants") if args.variants else NORMS.names()
    for base in ("none", "ln"):
        if base not in variants:
            variants.append(base)
    models = {v: build_deployed(args.model, v, args.img_size, device) for v in variants}
    spec = {"kind": "image", "shape": [3, args.img_size, args.img_size]}
    cfg = TimingConfig(budget_s=args.seconds, throughput_batch=args.batch)
    t = time_interleaved(models, lambda b: make_input(spec, b, device), cfg, device)
    rows = []
    for v in variants:
        row: dict[str, Any] = {"variant": v, "p50_b1_ms": t[v].summary["p50_ms"],
                               f"median_b{args.batch}_ms": float(np.median(t[v].throughput_round_ms)),
                               "params": sum(p.numel() for p in models[v].parameters())}
        for base in ("none", "ln"):
            for tag, series, ref in (("b1", t[v].latency_round_ms, t[base].latency_round_ms),
                                     (f"b{args.batch}", t[v].throughput_round_ms, t[base].throughput_round_ms)):
                r = ratio_ci(np.log(series) - np.log(ref), baseline=base)
                row[f"{tag}_vs_{base}"] = [r.value, r.lo, r.hi]
        rows.append(row)
    where = "GPU" if device_name == "cuda" else "CPU"
    prov = provenance(device)
    md = render(rows, args, where, prov, t[variants[0]].ratio, len(t[variants[0]].latency_round_ms))
    out = args.out or results_dir / "deploy-bench" / f"{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}-{device_name}"
    out.mkdir(parents=True, exist_ok=True)
    jsonio.write_atomic(out / "report.json", {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
                                              "rounds": len(t[variants[0]].latency_round_ms), "allocation": malloc,
                                              "recorded_at": now_iso(), "provenance": prov})
    (out / "report.md").write_text(md)
    print(md)
    print(f"report: {out}")
    return 0


def render(rows: list[dict], args: argparse.Namespace, where: str, prov: dict, _: Any, rounds: int) -> str:
    b = args.batch

    def ci(x: list[float]) -> str:
        return f"{x[0]:.3f} [{x[1]:.3f}, {x[2]:.3f}]"

    table = [{"variant": r["variant"], "b1 p50 ms": f"{r['p50_b1_ms']:.2f}", "b1 / none": ci(r["b1_vs_none"]),
              "b1 / ln": ci(r["b1_vs_ln"]), f"b{b} ms": f"{r[f'median_b{b}_ms']:.1f}",
              f"b{b} / none": ci(r[f"b{b}_vs_none"]), f"b{b} / ln": ci(r[f"b{b}_vs_ln"]),
              "params M": f"{r['params'] / 1e6:.3f}"} for r in rows]
    dev = prov["device"]
    head = (f"Deployed latency, {args.model} at {args.img_size} px, {where}: {dev.get('name')} "
            f"({dev.get('torch_threads')} threads), {rounds} interleaved rounds, {args.seconds:.0f} s; "
            f"ratios of per-round medians with 95% bootstrap intervals; lower is faster.")
    return head + "\n\n" + tabulate(table, headers="keys", tablefmt="github", disable_numparse=True) + "\n"
