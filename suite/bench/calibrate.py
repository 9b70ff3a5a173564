"""``run_suite.py calibrate``: the harness timing one model under two names.

The same architecture is deep-copied and timed as ``A`` and ``B`` in interleaved rounds.
A faithful harness reports a ratio whose 95% interval contains 1.0, and the interval's
width shows the smallest latency difference the harness can resolve on this machine.
"""
from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import TypedDict

from suite import jsonio
from suite.bench.common import setup
from suite.env import now_iso
from suite.measure.inputs import make_input
from suite.measure.interleave import TimingConfig, time_interleaved
from suite.models.create import create_model
from suite.parts import InputSpec, Provenance


class CalibrationReport(TypedDict):
    """The calibration's JSON file: B's latency over A's (the same model) with its 95% interval."""
    model: str
    img_size: int
    budget_s: float
    device: str
    ratio_B_to_A: float
    ci95: list[float]
    ci_halfwidth_pct: float
    contains_1: bool
    rounds: int
    block_iters: dict[str, int]
    p50_ms: dict[str, float]
    recorded_at: str
    allocation: Mapping[str, object]
    provenance: Provenance


def run_calibration(*, model: str, img_size: int, seconds: float, batch: int, device: str, threads: int | None,
                    out: Path | None, results_dir: Path) -> int:
    import torch
    bench = setup(device, threads)
    torch.manual_seed(0)
    net = create_model(model, "ln", img_size=img_size).to(bench.device).eval()
    models = {"A": net, "B": copy.deepcopy(net)}
    cfg = TimingConfig(budget_s=seconds, throughput_batch=batch)
    spec: InputSpec = {"kind": "image", "shape": [3, img_size, img_size]}
    t = time_interleaved(models, lambda b: make_input(spec, b, bench.device), cfg, bench.device, baseline="A")
    r = t["B"].ratio
    assert r is not None
    report: CalibrationReport = {
        "model": model, "img_size": img_size, "budget_s": seconds, "device": device,
        "ratio_B_to_A": r.value, "ci95": [r.lo, r.hi], "ci_halfwidth_pct": 100 * (r.hi - r.lo) / 2 / r.value,
        "contains_1": r.contains(1.0), "rounds": r.rounds, "block_iters": t["A"].block_iters,
        "p50_ms": {n: t[n].summary["p50_ms"] for n in t}, "recorded_at": now_iso(), "allocation": bench.allocation,
        "provenance": bench.provenance,
    }
    path = out or results_dir / "calibration" / f"{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}-{device}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    jsonio.write_atomic(path, report)
    print(f"calibrate ({bench.where}): {model} @ {img_size}px, "
          f"{seconds:.0f} s, {r.rounds} rounds: ratio B/A = {r.value:.4f} "
          f"[{r.lo:.4f}, {r.hi:.4f}] (95%), half-width {report['ci_halfwidth_pct']:.2f}%, "
          f"contains 1.0: {report['contains_1']}; "
          f"p50 A {report['p50_ms']['A']:.2f} ms, B {report['p50_ms']['B']:.2f} ms")
    print(f"report: {path}")
    return 0
