"""Noise-only nights must not raise alarms; real steps must. Synthetic histories (tests/synth.py).

The figures these tests measure are quoted in the README ("Nightly regression checks").
Each night is compared with the 14 nights before it, as the nightly workflow does.
"""
from __future__ import annotations

import numpy as np

from suite.regression.compare import Baseline, compare_rows

from synth import Change, Noise, night

WINDOW = 14


def alarm_rates(noise: Noise, change: Change, nights: int, seed: int, pairwise: bool = False) -> dict[str, float]:
    """Fraction of nights with any regressed / improved verdict, and per (cell, metric) hits."""
    rng = np.random.default_rng(seed)
    history = [night(rng, n, noise) for n in range(WINDOW)]
    reg = imp = 0
    hits: dict[tuple[str, str], int] = {}
    for n in range(nights):
        new = night(rng, WINDOW + n, noise, change)
        base = Baseline("sim", "run", [history[-1]]) if pairwise else Baseline("sim", "history", history[-WINDOW:])
        verdicts = compare_rows(new, base)
        reg += any(v.verdict == "regressed" for v in verdicts)
        imp += any(v.verdict == "improved" for v in verdicts)
        for v in verdicts:
            if v.verdict == "regressed":
                hits[(v.cell, v.metric)] = hits.get((v.cell, v.metric), 0) + 1
        history.append(night(rng, WINDOW + n, noise))  # the history itself stays change-free
    rates = {"regressed": reg / nights, "improved": imp / nights}
    rates |= {f"{c}:{m}": k / nights for (c, m), k in hits.items()}
    print(f"\n{noise} {change}: {rates}")
    return rates


def test_false_alarm_rate_over_200_noise_only_nights_is_at_most_1_percent() -> None:
    rates = alarm_rates(Noise(), Change(), 200, seed=1)
    assert rates["regressed"] <= 0.01
    assert rates["improved"] <= 0.02


def test_false_alarm_rate_against_one_baseline_run_is_at_most_1_percent() -> None:
    # one baseline night, no measured spread: the priors (CPU drift 3%) carry the decision
    rates = alarm_rates(Noise(top1_sd=0.0), Change(), 200, seed=2, pairwise=True)
    assert rates["regressed"] <= 0.01


def test_a_5_percent_latency_step_in_one_variant_is_flagged() -> None:
    rates = alarm_rates(Noise(), Change(latency={"un": 1.05}), 100, seed=3)
    assert rates["imagenet/un/s0:ratio_to_ln"] >= 0.95  # paired with ln: drift cancels
    pair = alarm_rates(Noise(), Change(latency={"un": 1.05}), 100, seed=4, pairwise=True)
    assert pair["imagenet/un/s0:ratio_to_ln"] >= 0.95


def test_a_1_point_top1_drop_is_flagged() -> None:
    rates = alarm_rates(Noise(), Change(top1={"un": -1.0}), 100, seed=5)
    assert rates["imagenet/un/s0:top1"] >= 0.95


def test_a_5_percent_step_of_every_variant_shows_in_absolute_latency_when_drift_is_small() -> None:
    # ln's own latency has no drift-free partner: a change that slows every variant alike is
    # told from machine drift only by the history's spread (here 1% per night)
    rates = alarm_rates(Noise(drift_sd=0.01), Change(latency={"ln": 1.05, "un": 1.05, "rms": 1.05}), 100, seed=6)
    assert rates["imagenet/ln/s0:latency"] >= 0.4
    assert rates["regressed"] >= 0.6
