"""``run_suite.py calibrate``: the harness timing one model under two names.

The same architecture is deep-copied and timed as ``A`` and ``B`` in interleaved rounds.
A faithful harness reports a ratio whose 95% interval contains 1.0, and the interval's
width shows the smallest latency difference the harness can resolve on this machine.
"""
from __future__ import annotations

import argparse
import copy
import datetime as dt
from pathlib import Path
from typing import Any

from suite import jsonio
from suite.alloc import steady_malloc
from suite.env import now_iso, provenance


def calibrate_parser(cls: type[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    p = cls(prog="run_suite.py calibrate", description="Time one model under two names; report the ratio and its interval.")
    p.add_argument("--model", default="deit_tiny_patch16_224", help="timm model name (random init)")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--seconds", type=float, default=60.0, help="interleaved timing budget (both names together)")
    p.add_argument("--batch", type=int, default=8, help="throughput batch")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=None, help="JSON report (default results/calibration/<time>.json)")
    return p


def run_calibration(args: argparse.Namespace, device_name: str, results_dir: Path) -> int:
    import torch
    from suite.measure import TimingConfig, make_input, time_interleaved
    from suite.models import create_model
    if args.threads:
        torch.set_num_threads(args.threads)
    malloc = steady_malloc()
    device = torch.device(device_name)
    torch.manual_seed(0)
    model = create_model(args.model, "ln", img_size=args.img_size).to(device).eval()
    models = {"A": model, "B": copy.deepcopy(model)}
    cfg = TimingConfig(budget_s=args.seconds, throughput_batch=args.batch)
    spec = {"kind": "image", "shape": [3, args.img_size, args.img_size]}
    t = time_interleaved(models, lambda b: make_input(spec, b, device), cfg, device, baseline="A")
    r = t["B"].ratio
    assert r is not None
    report: dict[str, Any] = {
        "model": args.model, "img_size": args.img_size, "budget_s": args.seconds, "device": device_name,
        "ratio_B_to_A": r.value, "ci95": [r.lo, r.hi], "ci_halfwidth_pct": 100 * (r.hi - r.lo) / 2 / r.value,
        "contains_1": r.contains(1.0), "rounds": r.rounds, "block_iters": t["A"].block_iters,
        "p50_ms": {n: t[n].summary["p50_ms"] for n in t}, "recorded_at": now_iso(), "allocation": malloc,
        "provenance": provenance(device),
    }
    out = args.out or results_dir / "calibration" / f"{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}-{device_name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    jsonio.write_atomic(out, report)
    where = "GPU" if device_name == "cuda" else "CPU"
    print(f"calibrate ({where}: {report['provenance']['device']['name']}): {args.model} @ {args.img_size}px, "
          f"{args.seconds:.0f} s, {r.rounds} rounds: ratio B/A = {r.value:.4f} "
          f"[{r.lo:.4f}, {r.hi:.4f}] (95%), half-width {report['ci_halfwidth_pct']:.2f}%, "
          f"contains 1.0: {report['contains_1']}; p50 A {report['p50_ms']['A']:.2f} ms, B {report['p50_ms']['B']:.2f} ms")
    print(f"report: {out}")
    return 0
