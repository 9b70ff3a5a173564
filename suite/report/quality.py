"""Seed-paired quality comparison: is a variant better than ``ln``, worse, or the same within noise?

Two variants trained with the same seed see the same initialisation of everything the variant
does not replace, the same data order and the same augmentation, so their quality difference
*per seed* is a paired sample: most of what a seed moves cancels in it. With n seeds recorded
for both, the difference is summarised by its mean and a 95% Student-t interval over the n
per-seed differences (``mean +- t(0.975, n-1) * sd / sqrt(n)``). The verdict is ``better`` or
``worse`` (in the metric's own direction) when the interval excludes zero, else ``same within
noise``. One seed gives a difference but no interval, so no verdict: the table says so rather
than imply a ranking.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
VERDICTS = ("better", "worse", "same within noise")


@dataclass(frozen=True)
class PairedDiff:
    seeds: int
    mean: float                   # mean over seeds of (variant - baseline), in the metric's unit
    lo: float | None              # 95% interval of that mean (None with fewer than 2 seeds)
    hi: float | None
    verdict: str                  # better | worse | same within noise | "1 seed, no verdict" | "no paired seeds"

    def show(self, digits: int = 2) -> str:
        if self.seeds == 0:
            return "-"
        text = f"{self.mean:+.{digits}f}"
        return text if self.lo is None else f"{text} [{self.lo:+.{digits}f}, {self.hi:+.{digits}f}]"


def paired_difference(variant: dict[int, float], baseline: dict[int, float], better: str,
                      confidence: float = CONFIDENCE) -> PairedDiff:
    """``variant`` and ``baseline``: seed -> quality; ``better``: "higher" or "lower"."""
    seeds = sorted(set(variant) & set(baseline))
    diffs = np.array([variant[s] - baseline[s] for s in seeds], dtype=np.float64)
    n = len(diffs)
    if n == 0:
        return PairedDiff(0, math.nan, None, None, "no paired seeds")
    mean = float(diffs.mean())
    if n == 1:
        return PairedDiff(1, mean, None, None, "1 seed, no verdict")
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * diffs.std(ddof=1) / math.sqrt(n))
    lo, hi = mean - half, mean + half
    if lo > 0 or hi < 0:
        improved = (mean > 0) == (better == "higher")
        verdict = "better" if improved else "worse"
    else:
        verdict = "same within noise"
    return PairedDiff(n, mean, lo, hi, verdict)
