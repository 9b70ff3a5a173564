"""Synthetic rows and nights for the nightly-regression tests (no training, no timing).

A night's timing noise mimics a busy CPU: a drift shared by every round and variant of
the night (the machine's state), round-level noise shared by the variants timed in that
round (they are interleaved), small per-model noise, occasional outlier rounds, and a
per-process "layout luck" per variant that the paired ratio does not cancel.
"""
from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from suite import jsonio
from suite.measure.jobs import ModelTiming, TimingResult
from suite.report.rows import SCHEMA_VERSION, RowKey, build_row

BASE_MS = {"ln": 1.30, "un": 1.20, "rms": 1.25}
TOP1 = {"ln": 97.5, "un": 96.0, "rms": 97.2}
MEM_MB = {"ln": 28.0, "un": 27.5, "rms": 27.8}
BATCH = 64


def provenance(**over: Any) -> dict[str, Any]:
    dev = {"type": "cpu", "name": "Test CPU", "cpu": "Test CPU", "torch_threads": 2} | over.pop("device", {})
    libs = {"torch": "2.14.1", "timm": "1.0.31", "transformers": "5.23.0"} | over.pop("libraries", {})
    return {"schema_version": SCHEMA_VERSION, "suite_version": "0.1.0", "git": {"commit": over.pop("commit", "c0ffee"),
            "dirty": False}, "python": "3.11", "libraries": libs, "host": "h", "device": dev} | over


def make_row(variant: str, seed: int = 0, *, task: str = "imagenet", round_ms: list[float] | None = None,
             thr_round_ms: list[float] | None = None, log_ratios: list[float] | None = None,
             top1: float = 97.0, peak_mb: float = 28.0, status: str = "ok", run_id: str = "run0",
             recorded_at: str = "2026-01-01T00:00:00+00:00", device: str = "cpu",
             gpu_state: dict | None = None, prov: dict | None = None) -> dict[str, Any]:
    """One complete results row (it follows the published schema), with the fields the verdicts read."""
    round_ms = list(round_ms if round_ms is not None else [1.0] * 20)
    thr_round_ms = list(thr_round_ms if thr_round_ms is not None else [40.0] * 20)
    ok = status == "ok"
    ratio = None if variant == "ln" and log_ratios is None else \
        {"baseline": "ln", "value": 1.0, "lo": 1.0, "hi": 1.0, "rounds": 20,
         "log_ratios": list(log_ratios or [0.0] * 20)}
    p50 = float(np.median(round_ms))
    key = RowKey(task=task, variant=variant, norm=variant, attention=None, seed=seed, profile="smoke", device=device,
                 config_id=f"c-{task}-{variant}-{seed}", config_group=f"g-{task}")
    latency = {"p50_ms": p50, "p90_ms": max(round_ms), "p99_ms": max(round_ms), "mean_ms": p50, "batch": 1,
               "n": len(round_ms), "timer": "perf_counter", "samples_ms": round_ms, "round_ms": round_ms,
               "ratio": ratio}
    throughput = {"value": BATCH * 1e3 / float(np.median(thr_round_ms)), "unit": "img/s", "batch": BATCH,
                  "round_ms": thr_round_ms}
    measured = ModelTiming(latency=latency, throughput=throughput, runtime_info={"build_s": 0.0},
                           agreement={"rel_err": 0.0, "reference": "eager fp32", "inputs": 16})
    return build_row(
        key, run_id=run_id, status=status, message="" if ok else "RuntimeError: boom",
        provenance=prov or provenance(device={"type": device}), recorded_at=recorded_at,
        measured=measured if ok else None, timing=TimingResult(gpu_state=gpu_state),
        quality={"top1": top1, "top5": 100.0} if ok else {}, primary_metric="top1",
        metric_better={"top1": "higher", "top5": "higher"},
        memory={"peak_mb": peak_mb, "source": "cpu: test"} if ok else None,
        model={"name": "vit_tiny_patch16_224", "kwargs": {}, "variant_kwargs": {}, "attention": None,
               "params_train": 100_000, "params": 100_000, "flops": 10_000_000},
        train={"steps": 10, "time_s": 1.0, "step_ms": 10.0, "final_loss": 0.5, "loss_curve": [1.0, 0.5]},
        deploy={"rel_err": 0.0, "norm_modules_left": 0, "checked": "VisionTransformer"},
        dataset={"kind": "embedded", "path": None, "label": "digits (embedded)", "fingerprint": "d1"},
        distributed={"world_size": 1, "backend": "none", "bn_statistics": "per-process"},
        launcher="subprocess", versions={"task": "1", "norm": "1"})


@dataclass
class Noise:
    drift_sd: float = 0.02        # whole-machine drift per night (log sd), shared by everything
    round_sd: float = 0.02        # per round, shared by the variants interleaved in it
    model_sd: float = 0.01        # per round and model
    layout_sd: float = 0.003      # per night and model: what the paired ratio cannot cancel
    outlier_p: float = 0.03       # chance that a model's round is hit by an outlier
    top1_sd: float = 0.15         # quality redraw between nights (points)
    mem_sd: float = 0.003
    rounds: int = 60
    variants: tuple[str, ...] = ("ln", "un", "rms")
    seeds: tuple[int, ...] = (0,)


@dataclass
class Change:
    """A real change applied to one night: latency/memory factors and top-1 shifts per variant."""

    latency: dict[str, float] = field(default_factory=dict)
    top1: dict[str, float] = field(default_factory=dict)
    memory: dict[str, float] = field(default_factory=dict)


def _rounds(rng: np.random.Generator, n: int, base: float, shared: np.ndarray, noise: Noise) -> np.ndarray:
    out = rng.normal(0, noise.model_sd, n) + shared
    hit = rng.random(n) < noise.outlier_p
    out[hit] += np.log(rng.uniform(1.1, 1.6, hit.sum()))
    return base * np.exp(out)


def night(rng: np.random.Generator, n: int, noise: Noise = Noise(), change: Change = Change()) -> list[dict]:
    """The rows of night ``n``: every variant and seed, timed in one interleaved group per seed."""
    drift = rng.normal(0, noise.drift_sd)
    rows = []
    for seed in noise.seeds:
        shared = rng.normal(0, noise.round_sd, noise.rounds) + drift
        shared_thr = rng.normal(0, noise.round_sd, noise.rounds) + drift
        lat, thr = {}, {}
        for v in noise.variants:
            f = np.log(change.latency.get(v, 1.0)) + rng.normal(0, noise.layout_sd)
            lat[v] = _rounds(rng, noise.rounds, BASE_MS[v], shared + f, noise)
            thr[v] = _rounds(rng, noise.rounds, BASE_MS[v] * BATCH * 0.5, shared_thr + f, noise)
        for v in noise.variants:
            rows.append(make_row(
                v, seed, round_ms=list(lat[v]), thr_round_ms=list(thr[v]),
                log_ratios=None if v == "ln" else list(np.log(lat[v]) - np.log(lat["ln"])),
                top1=TOP1[v] + change.top1.get(v, 0.0) + rng.normal(0, noise.top1_sd),
                peak_mb=MEM_MB[v] * change.memory.get(v, 1.0) * np.exp(rng.normal(0, noise.mem_sd)),
                run_id=f"night{n}", recorded_at=f"2026-01-{1 + n % 28:02d}T02:00:00+00:00"))
    return rows


def as_history_night(rows: list[dict], n: int) -> list[dict]:
    """The rows as the history store keeps them (a ``night`` id added)."""
    return [copy.deepcopy(r) | {"night": f"n{n:04d}"} for r in rows]


def write_history(path: Path, n_nights: int, noise: Noise = Noise(), changes: dict[int, Change] | None = None,
                  seed: int = 0, commits: list[str] | None = None) -> Path:
    """A history store of ``n_nights`` synthetic nights, written as ``append_night`` writes one night
    (fingerprint, night id, commit), then compacted once; ``changes``: from night index on, that
    change (a step). Returns the history file."""
    from suite.regression.history import HISTORY_VERSION, HistoryConfig, compact, history_file
    from suite.report.fingerprint import fingerprint, fingerprint_id
    rng = np.random.default_rng(seed)
    file = history_file(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    step = Change()
    start = datetime.datetime(2026, 1, 1, 2, tzinfo=datetime.UTC)
    with open(file, "w") as f:
        for n in range(n_nights):
            step = (changes or {}).get(n, step)
            commit = commits[n] if commits else f"{n:04x}" + "a" * 36
            when = (start + datetime.timedelta(days=n)).isoformat()
            for r in night(rng, n, noise, step):
                r["provenance"]["git"]["commit"] = commit
                r["recorded_at"] = when
                fp = fingerprint(r)
                f.write(jsonio.dumps({**r, "night": f"n{n:04d}", "appended_at": when, "commit": commit,
                                      "fingerprint": fp, "fingerprint_id": fingerprint_id(fp),
                                      "history_version": HISTORY_VERSION}) + "\n")
    compact(file, HistoryConfig())
    return file
