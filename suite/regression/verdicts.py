"""Verdict statistics: is a metric's change real, and is it big enough to matter?

Night-to-night comparisons are unpaired: the two runs saw different machine states. So
each metric gets a per-run value on its own scale (log for latency, throughput, memory
and perplexity-like metrics, so changes are relative; points for top-1/top-5) plus a
standard error from the run's own raw data, and a change is called only when BOTH hold:

1. it is larger than the noise: ``q * sd`` where sd combines the two runs' bootstrap
   errors and the noise between runs. Against one baseline run the between-run noise is
   a prior per device type (``Rule.prior_noise``: night-to-night drift of a whole
   machine, which the within-run error cannot see) or the seed spread; against a history
   of at least ``MIN_HISTORY`` nights it is measured: the spread of the history's
   nightly values, and q comes from Student's t (a prediction interval for one new night);
2. it is at least the metric's minimum effect (latency 3%, memory 2%, top-1 and box AP 0.5 point).

The latency ratio to the baseline variant (``ratio_to_ln``) is paired within one
timing process, so machine drift cancels in it: it is the signal that resolves a few
percent when whole-machine drift hides the absolute latency change.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import stats

from suite.errors import UsageError
from suite.report.rows import Row

#: one-sided false-alarm level per metric and cell; a nightly run makes tens of such tests
ALPHA = 0.0005
#: nights a history needs before its own spread replaces the priors
MIN_HISTORY = 5
#: the verdicts' paired ratio is the interquartile mean of the per-round log ratios
RATIO_TRIM = 0.25
VERDICTS = ("regressed", "improved", "unchanged", "incomparable")


@dataclass(frozen=True)
class Rule:
    """How one metric is judged."""

    metric: str
    better: str                       # "higher" | "lower"
    scale: str                        # "log" (relative change) | "points" (absolute change)
    min_effect: float                 # fraction on log scale (0.03 = 3%), points otherwise
    prior_noise: dict[str, float] = field(default_factory=dict)  # device type -> between-run sd

    def __post_init__(self) -> None:
        if self.better not in ("higher", "lower"):
            raise UsageError(f"metric {self.metric}: better must be 'higher' or 'lower', got {self.better!r}")
        if self.scale not in ("log", "points"):
            raise UsageError(f"metric {self.metric}: scale must be 'log' or 'points', got {self.scale!r}")
        if self.min_effect < 0 or any(v < 0 for v in self.prior_noise.values()):
            raise UsageError(f"metric {self.metric}: min_effect and prior_noise must be >= 0")

    @property
    def min_step(self) -> float:
        return math.log1p(self.min_effect) if self.scale == "log" else self.min_effect

    def noise(self, device_type: str | None) -> float:
        return self.prior_noise.get(device_type or "", max(self.prior_noise.values(), default=0.0))

    def to_scale(self, x: float) -> float:
        return math.log(x) if self.scale == "log" else float(x)

    def show(self, v: float) -> float:
        """A value on this rule's scale, back in the metric's own unit."""
        return math.exp(v) if self.scale == "log" else v

    def show_change(self, d: float) -> str:
        return f"{math.expm1(d) * 100:+.1f}%" if self.scale == "log" else f"{d:+.2f} pt"


#: CPU night drift of a few percent is typical of shared machines; GPUs drift less
TIMING_DRIFT = {"cpu": 0.03, "cuda": 0.015}
RULES = {
    "latency": Rule("latency", "lower", "log", 0.03, TIMING_DRIFT),
    "throughput": Rule("throughput", "higher", "log", 0.03, TIMING_DRIFT),
    # paired within one process: only the per-process layout luck of each model is left
    "ratio": Rule("ratio", "lower", "log", 0.03, {"cpu": 0.005, "cuda": 0.005}),
    "memory": Rule("memory", "lower", "log", 0.02, {"cpu": 0.005, "cuda": 0.0}),
    # mJ per batch-1 inference (NVML's counter, GPU only): judged like latency, board power drifts too
    "energy": Rule("energy", "lower", "log", 0.03, {"cpu": 0.03, "cuda": 0.03}),
}
QUALITY_RULES = {
    # same seed + same code reproduces quality on CPU; GPU kernels are not bitwise deterministic
    "top1": Rule("top1", "higher", "points", 0.5, {"cpu": 0.0, "cuda": 0.15}),
    "top5": Rule("top5", "higher", "points", 0.5, {"cpu": 0.0, "cuda": 0.15}),
    # box AP is stored in points (0-100); a relative rule would blow up near 0 mAP
    "map": Rule("map", "higher", "points", 0.5, {"cpu": 0.0, "cuda": 0.3}),
    "ap50": Rule("ap50", "higher", "points", 0.5, {"cpu": 0.0, "cuda": 0.3}),
}


def quality_rule(metric: str, better: str) -> Rule:
    """Known metrics have tuned rules; any other is judged relatively with a 1% minimum."""
    if metric in QUALITY_RULES:
        return QUALITY_RULES[metric]
    return Rule(metric, better, "log", 0.01, {"cpu": 0.0, "cuda": 0.003})


@dataclass
class Obs:
    """One run's value of a metric, on the rule's scale."""

    value: float
    se: float = 0.0        # within-run standard error (bootstrap over rounds)
    spread: float = 0.0    # known between-run noise of this value (the seed spread)


@dataclass
class Judgement:
    verdict: str
    change: float          # new - reference, on the rule's scale
    threshold: float       # the size a change had to exceed, on the rule's scale
    reference: float       # the baseline value it was compared with, on the rule's scale
    method: str            # "pairwise" or "history(K)"


def judge(rule: Rule, new: Obs, base: list[Obs], device_type: str | None, alpha: float = ALPHA) -> Judgement:
    """The verdict for one metric of one cell: ``new`` against one or more baseline nights."""
    if not base:
        raise ValueError("judge needs at least one baseline observation")
    if len(base) >= MIN_HISTORY:
        vals = np.array([b.value for b in base])
        ref, k = float(np.median(vals)), len(vals)
        s = max(float(np.std(vals, ddof=1)), new.se, new.spread)
        sd = s * math.sqrt(1 + math.pi / (2 * k))  # a new night vs the median of k nights
        q, method = _t_quantile(1 - alpha, k - 1), f"history({k})"
    else:
        b = base[-1]
        ref = b.value
        extra = max(rule.noise(device_type), new.spread, b.spread)
        sd = math.sqrt(new.se ** 2 + b.se ** 2 + 2 * extra ** 2)
        q, method = _normal_quantile(1 - alpha), "pairwise"
    d = new.value - ref
    threshold = max(rule.min_step, q * sd)
    worse = d if rule.better == "lower" else -d
    verdict = "regressed" if worse > threshold else "improved" if -worse > threshold else "unchanged"
    return Judgement(verdict, d, threshold, ref, method)


@lru_cache(maxsize=256)
def _t_quantile(p: float, df: int) -> float:
    return float(stats.t.ppf(p, df))


@lru_cache(maxsize=16)
def _normal_quantile(p: float) -> float:
    return float(stats.norm.ppf(p))


def boot_se(values: Any, stat: Callable[[np.ndarray], np.ndarray], n_resamples: int = 500) -> float:
    """Bootstrap standard error of ``stat`` (vectorized over axis 1); seeded, so reproducible."""
    a = np.asarray(values, dtype=np.float64)
    if a.size < 3:
        return 0.0
    idx = np.random.default_rng(0).integers(0, a.size, (n_resamples, a.size))
    return float(np.std(stat(a[idx]), ddof=1))


def _median(a: np.ndarray) -> np.ndarray:
    return np.median(a, axis=1)


def _trimmed(a: np.ndarray) -> np.ndarray:
    # a quarter off each end: a burst of outlier rounds in one model must not move the ratio
    return stats.trim_mean(a, RATIO_TRIM, axis=1)


def _log_rounds(values: list[float]) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    return np.log(a[np.isfinite(a) & (a > 0)])


#: observations already made of rows, by the row object's id and whether with bootstrap errors
Memo = dict[tuple[int, bool], dict[str, "tuple[Rule, Obs]"]]


def observed(r: Row, with_se: bool, memo: Memo | None = None) -> dict[str, tuple[Rule, Obs]]:
    """``observations(r, with_se)``, made once per row where a ``memo`` is kept (a replay of the history
    judges each row against many nights); every call gets its own ``Obs``, since judging sets their
    spreads. The rows must stay alive while the memo is used."""
    if memo is None:
        return observations(r, with_se=with_se)
    key = (id(r.d), with_se)
    if key not in memo:
        memo[key] = observations(r, with_se=with_se)
    return {m: (rule, replace(obs)) for m, (rule, obs) in memo[key].items()}


def observations(r: Row, with_se: bool = True) -> dict[str, tuple[Rule, Obs]]:
    """Every judged metric of an ``ok`` row, from its raw per-round data where stored.

    ``with_se=False`` skips the bootstraps (history nights are judged by their spread)."""
    se = boot_se if with_se else (lambda values, stat: 0.0)
    out: dict[str, tuple[Rule, Obs]] = {}
    better = r.metric_better
    for m, v in r.quality.items():
        if m in better and math.isfinite(v):
            rule = quality_rule(m, better[m])
            if rule.scale == "points" or v > 0:
                out[m] = (rule, Obs(rule.to_scale(v)))
    logs = _log_rounds(r.latency_rounds)
    if logs.size:
        out["latency"] = (RULES["latency"], Obs(float(np.median(logs)), se(logs, _median)))
    elif (r.latency_p50 or 0) > 0:
        out["latency"] = (RULES["latency"], Obs(math.log(r.latency_p50)))  # type: ignore[arg-type]
    lr = np.asarray(r.log_ratios, dtype=np.float64)
    if r.ratio_baseline and r.ratio_baseline != r.variant and lr.size:
        out[f"ratio_to_{r.ratio_baseline}"] = (RULES["ratio"], Obs(float(stats.trim_mean(lr, RATIO_TRIM)),
                                                                    se(lr, _trimmed)))
    tlogs = _log_rounds(r.throughput_rounds)
    if tlogs.size and r.throughput_batch:  # items/s = batch / round time: the same scale, sign flipped
        out["throughput"] = (RULES["throughput"], Obs(math.log(r.throughput_batch * 1e3) - float(np.median(tlogs)),
                                                      se(tlogs, _median)))
    elif (r.throughput or 0) > 0:
        out["throughput"] = (RULES["throughput"], Obs(math.log(r.throughput)))  # type: ignore[arg-type]
    if (r.peak_mb or 0) > 0:
        out["memory"] = (RULES["memory"], Obs(math.log(r.peak_mb)))  # type: ignore[arg-type]
    elogs = _log_rounds(r.energy_windows)
    if elogs.size:   # rows without a measured energy (CPU, older rows) have no energy metric
        out["energy"] = (RULES["energy"], Obs(float(np.median(elogs)), se(elogs, _median)))
    return out
