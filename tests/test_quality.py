"""Seed-paired quality verdicts: a known difference is called, equal variants are 'same' at the expected rate."""
from __future__ import annotations

import numpy as np
import pytest

from suite.report.quality import paired_difference


def seeds(values) -> dict[int, float]:
    return dict(enumerate(map(float, values)))


def test_a_known_difference_is_better_or_worse_in_the_metrics_direction() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(90, 2, 5)                       # seed-to-seed spread much larger than the effect...
    plus = base + 1.0 + rng.normal(0, 0.1, 5)         # ...but paired by seed the effect stands out
    up = paired_difference(seeds(plus), seeds(base), "higher")
    assert up.verdict == "better" and up.lo > 0 and up.mean == pytest.approx(1.0, abs=0.15)
    assert paired_difference(seeds(plus), seeds(base), "lower").verdict == "worse"  # e.g. perplexity
    assert paired_difference(seeds(base - 1.0), seeds(base), "higher").verdict == "worse"


def test_equal_variants_are_same_within_noise_at_the_confidence_level() -> None:
    rng = np.random.default_rng(1)
    trials, n = 4000, 3
    same = sum(paired_difference(seeds(rng.normal(0, 1, n)), seeds(np.zeros(n)), "higher").verdict
               == "same within noise" for _ in range(trials))
    assert same / trials == pytest.approx(0.95, abs=0.015)


def test_an_exact_rewrite_is_the_same_and_one_seed_gives_no_verdict() -> None:
    q = seeds([97.5, 98.1, 96.9])
    exact = paired_difference(q, q, "higher")
    assert exact.verdict == "same within noise" and exact.mean == 0.0 and exact.show() == "+0.00 [+0.00, +0.00]"
    one = paired_difference({0: 95.0}, {0: 97.0}, "higher")
    assert one.verdict == "1 seed, no verdict" and one.lo is None and one.show() == "-2.00"
    assert paired_difference({1: 95.0}, {0: 97.0}, "higher").verdict == "no paired seeds"
