"""How the harness times models: warm-up, interleaved rounds, percentiles, paired ratios.

Latency differences between norms are a few percent on a CPU, below the drift of a busy
machine. So models are never timed one after another: every round runs a block of each
model (in a shuffled order), and a model's ratio to the baseline is taken per round, where
drift hits both alike; within a round the models alternate iteration by iteration
(A B A B ...). The ratio's 95% interval is a bootstrap of the 10%-trimmed mean of
the per-round log ratios. Rounds rotate the order, and timing stops only at the end of a
full rotation, so every model takes every position equally often. On GPU, iterations are
timed with CUDA events and the host synchronizes once per block, never per kernel. Where an
energy meter is given (a GPU with NVML's energy counter), an energy pass follows the rounds
(``suite.measure.energy``): each model alone, in windows long enough for the counter.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Self, TypedDict

import numpy as np
import torch
import torch.nn as nn

from suite.errors import UsageError
from suite.parts import Energy, Latency, Ratio, Throughput, TimingSettings


class EnergyPass(Protocol):
    """What the timing needs of an energy meter (``suite.measure.energy.EnergyMeter``, which imports this module)."""

    def windows(self, per_model_s: float) -> int: ...

    def measure(self, calls: Mapping[str, Callable[[], Any]], windows: int,
                baseline: str | None = None) -> dict[str, Energy]: ...

TimerName = Literal["perf_counter", "cuda_event"]


@dataclass
class TimingConfig:
    budget_s: float = 20.0       # wall time for the interleaved rounds of one group
    warmup_iters: int = 10       # warm-up runs at least this many iterations ...
    warmup_s: float = 1.0        # ... and at least this long, per model and batch size
    min_rounds: int = 8
    max_rounds: int = 2000
    block_s: float = 0.05        # target length of one model's share of a round's latency pass
    throughput_batch: int = 64
    measure_throughput: bool = True  # False: latency only (the throughput pass is skipped)

    def __post_init__(self) -> None:
        for name in ("budget_s", "block_s", "warmup_s"):
            if getattr(self, name) < 0 or (name != "warmup_s" and getattr(self, name) == 0):
                raise UsageError(f"timing {name} must be positive, got {getattr(self, name)}")
        if self.min_rounds < 2 or self.max_rounds < self.min_rounds:
            raise UsageError("timing needs min_rounds >= 2 and max_rounds >= min_rounds")
        if self.throughput_batch < 1 or self.warmup_iters < 0:
            raise UsageError("timing throughput_batch must be >= 1 and warmup_iters >= 0")

    @classmethod
    def from_settings(cls, settings: TimingSettings) -> Self:
        """The configuration a timing job's settings ask for (a keyword it leaves out keeps its default;
        the allocator's settings are recorded beside them, not configured here)."""
        d = cls()
        return cls(budget_s=settings.get("budget_s", d.budget_s), warmup_s=settings.get("warmup_s", d.warmup_s),
                   block_s=settings.get("block_s", d.block_s),
                   throughput_batch=settings.get("throughput_batch", d.throughput_batch),
                   measure_throughput=settings.get("measure_throughput", d.measure_throughput))


def block_for(per_model_s: float, default: float = 0.05) -> float:
    """A round's block for a per-model budget: the default (50 ms), shorter only for budgets under
    0.8 s a model, so that a short check still gets its minimum rounds within about its budget."""
    return min(default, max(per_model_s / 16, 0.005))


@dataclass
class RatioCI:
    value: float
    lo: float
    hi: float
    rounds: int
    baseline: str = ""

    def contains(self, x: float) -> bool:
        return self.lo <= x <= self.hi

    def as_part(self) -> Ratio:
        """The row's ``ratio`` (the fields in their order, as ``dataclasses.asdict`` writes them)."""
        return {"value": self.value, "lo": self.lo, "hi": self.hi, "rounds": self.rounds, "baseline": self.baseline}


class TimingRow(TypedDict):
    """A model's timing as the row keeps it (``Timing.as_row``)."""
    latency: Latency
    throughput: Throughput


@dataclass
class Timing:
    """One model's measurements from an interleaved group."""

    latency_samples_ms: list[float]        # every batch-1 iteration
    latency_round_ms: list[float]          # per-round median of the batch-1 block
    throughput_round_ms: list[float]       # per-round median of one batch-B forward
    throughput_batch: int
    block_iters: dict[str, int]
    timer: TimerName
    ratio: RatioCI | None = None
    throughput_ratio: RatioCI | None = None
    log_ratios: list[float] = field(default_factory=list)   # per round, vs the baseline
    summary: dict[str, float] = field(default_factory=dict)
    energy: Energy | None = None           # the energy pass's figures (None: no energy meter)

    def as_row(self, unit: str, items: int = 1) -> TimingRow:
        """Row fields; ``items`` per sample scales throughput (e.g. tokens per sequence)."""
        s = self.summary
        return {
            "latency": {"p50_ms": s["p50_ms"], "p90_ms": s["p90_ms"], "p99_ms": s["p99_ms"], "mean_ms": s["mean_ms"],
                        "batch": 1, "n": len(self.latency_samples_ms), "timer": self.timer,
                        "ratio": None if self.ratio is None else
                        {**self.ratio.as_part(), "log_ratios": [round(x, 6) for x in self.log_ratios]},
                        "samples_ms": [round(s, 5) for s in self.latency_samples_ms],
                        "round_ms": [round(s, 5) for s in self.latency_round_ms],
                        "block_iters": self.block_iters["latency"]},
            "throughput": {"value": self.summary["throughput"] * items, "unit": unit, "batch": self.throughput_batch,
                           "ratio": None if self.throughput_ratio is None else self.throughput_ratio.as_part(),
                           "round_ms": [round(s, 5) for s in self.throughput_round_ms]},
        }


def ratio_ci(log_ratios: Any, confidence: float = 0.95, baseline: str = "") -> RatioCI:
    """Ratio ``exp(trimmed_mean(log r))`` with a bootstrap interval over rounds."""
    from scipy import stats  # here, not at import: a training cell imports this module and never needs it
    a = np.asarray(log_ratios, dtype=np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return RatioCI(math.nan, math.nan, math.nan, 0, baseline)
    center = float(stats.trim_mean(a, 0.1))
    if a.size < 3 or np.ptp(a) == 0:
        lo = hi = center if np.ptp(a) == 0 else math.nan
    else:
        res = stats.bootstrap((a,), lambda s, axis: stats.trim_mean(s, 0.1, axis=axis), vectorized=True,
                              n_resamples=4000, confidence_level=confidence, method="percentile",
                              rng=np.random.default_rng(0))
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return RatioCI(math.exp(center), math.exp(lo), math.exp(hi), int(a.size), baseline)


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    s = np.asarray(samples_ms, dtype=np.float64)
    return {"p50_ms": float(np.percentile(s, 50)), "p90_ms": float(np.percentile(s, 90)),
            "p99_ms": float(np.percentile(s, 99)), "mean_ms": float(s.mean())}


class _CpuTimer:
    name: TimerName = "perf_counter"

    def interleave(self, calls: list[Callable[[], Any]], iters: int) -> list[list[float]]:
        """Run ``iters`` passes of A B C ...; returns per-call lists of per-iteration ms."""
        out: list[list[float]] = [[] for _ in calls]
        for _ in range(iters):
            for samples, fn in zip(out, calls):
                t0 = time.perf_counter_ns()
                fn()
                samples.append((time.perf_counter_ns() - t0) / 1e6)
        return out


class _CudaTimer:
    name: TimerName = "cuda_event"

    def interleave(self, calls: list[Callable[[], Any]], iters: int) -> list[list[float]]:
        events = [[(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                   for _ in range(iters)] for _ in calls]
        for i in range(iters):
            for evs, fn in zip(events, calls):
                evs[i][0].record()
                fn()
                evs[i][1].record()
        torch.cuda.synchronize()  # once per block of the round, never per kernel
        return [[start.elapsed_time(end) for start, end in evs] for evs in events]


def make_timer(device: torch.device) -> _CpuTimer | _CudaTimer:
    return _CudaTimer() if device.type == "cuda" else _CpuTimer()


def assert_eval(model: nn.Module, name: str = "model") -> None:
    training = [n for n, m in model.named_modules() if m.training]
    if training:
        raise RuntimeError(f"refusing to time {name} in train mode ({training[0] or 'root'} is training): "
                           "offline norms would update their statistics; call .eval()")


def _warmup(timer: Any, fn: Callable[[], Any], cfg: TimingConfig) -> float:
    """Run until both warm-up limits are met; returns the median cost of an iteration (ms)."""
    samples: list[float] = []
    t0 = time.perf_counter()
    while len(samples) < max(cfg.warmup_iters, 1) or time.perf_counter() - t0 < cfg.warmup_s:
        samples += timer.interleave([fn], 1)[0]
    return float(np.median(samples[len(samples) // 2:]))


def time_interleaved(models: Mapping[str, Callable[[Any], Any]], make_input: Callable[[int], Any], cfg: TimingConfig,
                     device: torch.device, baseline: str | None = None,
                     progress: Callable[[int, float], None] | None = None,
                     energy: EnergyPass | None = None) -> dict[str, Timing]:
    """Time ``models`` (modules, or any callables a runtime built) in interleaved rounds: latency
    at batch 1 and throughput at cfg.throughput_batch; then, with an ``energy`` meter, each model's
    energy per batch-1 inference (``suite.measure.energy``; its windows are outside the budget)."""
    names = list(models)
    for n in names:
        m = models[n]
        if isinstance(m, nn.Module):
            assert_eval(m, n)
    timer = make_timer(device)
    x1, xb = make_input(1), make_input(cfg.throughput_batch)
    calls = {n: (lambda m=models[n]: m(x1), lambda m=models[n]: m(xb)) for n in names}
    lat: dict[str, list[float]] = {n: [] for n in names}
    lat_round: dict[str, list[float]] = {n: [] for n in names}
    thr_round: dict[str, list[float]] = {n: [] for n in names}
    energies: dict[str, Energy] = {}
    with torch.inference_mode():
        cost1 = [_warmup(timer, calls[n][0], cfg) for n in names]
        costb = [_warmup(timer, calls[n][1], cfg) if cfg.measure_throughput else 0.0 for n in names]
        # latency gets at least as much of a round as the throughput pass
        kb = max(1, min(100, round(cfg.block_s * 1e3 / max(np.median(costb), 1e-6))))
        k1 = max(1, min(1000, round(max(cfg.block_s * 1e3, kb * np.median(costb)) / max(np.median(cost1), 1e-6))))
        t0, rounds = time.perf_counter(), 0
        while rounds < cfg.max_rounds and (rounds < cfg.min_rounds or time.perf_counter() - t0 < cfg.budget_s
                                           or rounds % len(names)):  # stop only after a full rotation
            order = names[rounds % len(names):] + names[:rounds % len(names)]  # each model leads equally often
            for n, s in zip(order, timer.interleave([calls[n][0] for n in order], k1)):
                lat[n] += s
                lat_round[n].append(float(np.median(s)))
            if not cfg.measure_throughput:
                for n in order:
                    thr_round[n].append(lat_round[n][-1] * cfg.throughput_batch)
            else:
                for n, s in zip(order, timer.interleave([calls[n][1] for n in order], kb)):
                    thr_round[n].append(float(np.median(s)))
            rounds += 1
            if progress is not None:
                progress(rounds, time.perf_counter() - t0)
        if energy is not None:
            energies = energy.measure({n: calls[n][0] for n in names}, energy.windows(cfg.budget_s / len(names)),
                                      baseline)
    out = {}
    for n in names:
        summary = percentiles(lat[n])
        summary["throughput"] = cfg.throughput_batch * 1e3 / float(np.median(thr_round[n]))
        out[n] = Timing(lat[n], lat_round[n], thr_round[n], cfg.throughput_batch,
                        {"latency": k1, "throughput": kb}, timer.name, summary=summary,
                        energy=energies.get(n))
    if baseline is not None:
        base = out[baseline]
        for n in names:
            out[n].log_ratios = list(np.log(out[n].latency_round_ms) - np.log(base.latency_round_ms))
            out[n].ratio = ratio_ci(out[n].log_ratios, baseline=baseline)
            out[n].throughput_ratio = ratio_ci(np.log(base.throughput_round_ms) - np.log(out[n].throughput_round_ms),
                                               baseline=baseline)
    return out
