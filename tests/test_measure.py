"""The statistics and mechanics of timing (not the speed of anything: see `calibrate`)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from suite.measure.inputs import count_flops, make_input
from suite.measure.interleave import TimingConfig, assert_eval, percentiles, ratio_ci, time_interleaved


def test_ratio_ci_covers_one_for_identical_noise_and_finds_a_real_difference() -> None:
    rng = np.random.default_rng(1)
    same = ratio_ci(rng.normal(0, 0.03, 200))
    assert same.contains(1.0) and same.hi - same.lo < 0.02 and same.rounds == 200
    slower = ratio_ci(rng.normal(np.log(1.05), 0.03, 200))
    assert not slower.contains(1.0) and 1.04 < slower.value < 1.06 and slower.lo > 1.0


def test_ratio_ci_is_robust_to_a_few_outlier_rounds() -> None:
    rng = np.random.default_rng(2)
    logs = rng.normal(0, 0.02, 100)
    logs[:3] = 1.5  # three rounds hit by a hiccup of the machine
    assert ratio_ci(logs).contains(1.0)


def test_ratio_ci_degenerate_inputs() -> None:
    assert np.isnan(ratio_ci([]).value)
    exact = ratio_ci([0.0] * 5)
    assert exact.value == exact.lo == exact.hi == 1.0


def test_percentiles() -> None:
    p = percentiles(list(range(1, 101)))
    assert p["p50_ms"] == pytest.approx(50.5) and p["p99_ms"] == pytest.approx(99.01)


def test_time_interleaved_pairs_rounds_and_refuses_train_mode() -> None:
    fast, slow = nn.Linear(32, 32).eval(), nn.Sequential(*[nn.Linear(32, 32) for _ in range(8)]).eval()
    cfg = TimingConfig(budget_s=0.3, warmup_iters=2, warmup_s=0.0, min_rounds=4, block_s=0.002, throughput_batch=4)
    out = time_interleaved({"fast": fast, "slow": slow}, lambda b: torch.randn(b, 32), cfg, torch.device("cpu"),
                           baseline="fast")
    assert len(out["fast"].latency_round_ms) == len(out["slow"].latency_round_ms) >= 4
    assert len(out["slow"].log_ratios) == out["slow"].ratio.rounds
    assert out["fast"].ratio.value == 1.0 and out["slow"].summary["throughput"] > 0
    row = out["slow"].as_row("items/s")
    assert row["latency"]["ratio"]["baseline"] == "fast" and row["throughput"]["unit"] == "items/s"
    with pytest.raises(RuntimeError, match="train mode"):
        time_interleaved({"x": nn.Linear(2, 2)}, lambda b: torch.randn(b, 2), cfg, torch.device("cpu"))


def test_assert_eval_names_the_training_submodule() -> None:
    m = nn.Sequential(nn.Linear(2, 2), nn.Dropout()).eval()
    m[1].train()
    with pytest.raises(RuntimeError, match="1 is training"):
        assert_eval(m)


def test_timing_config_validation() -> None:
    from suite.errors import UsageError
    with pytest.raises(UsageError):
        TimingConfig(budget_s=0)
    with pytest.raises(UsageError):
        TimingConfig(min_rounds=1)


def test_count_flops_of_a_linear_layer() -> None:
    assert count_flops(nn.Linear(10, 20), torch.randn(3, 10)) == 2 * 3 * 10 * 20


def test_make_input_is_deterministic() -> None:
    spec = {"kind": "image", "shape": [3, 8, 8]}
    assert torch.equal(make_input(spec, 2, "cpu"), make_input(spec, 2, "cpu"))
    tok = make_input({"kind": "tokens", "seq_len": 5, "vocab_size": 7}, 2, "cpu")
    assert tok.shape == (2, 5) and tok.max() < 7


def test_calibrate_reports_a_ratio_and_its_interval(tmp_path, capsys) -> None:
    from suite import jsonio
    from suite.cli.main import main
    out = tmp_path / "cal.json"
    assert main(["calibrate", "--model", "vit_tiny_patch16_224", "--img-size", "32", "--seconds", "0.5",
                 "--batch", "2", "--device", "cpu", "--out", str(out)]) == 0
    report = jsonio.read(out)
    assert report["rounds"] >= 8 and report["ci95"][0] <= report["ratio_B_to_A"] <= report["ci95"][1]
    assert "calibrate (CPU:" in capsys.readouterr().out


def test_rounds_end_on_a_full_rotation() -> None:
    models = {n: nn.Linear(4, 4).eval() for n in "abc"}
    cfg = TimingConfig(budget_s=0.01, warmup_iters=1, warmup_s=0.0, min_rounds=4, block_s=0.001, throughput_batch=2)
    out = time_interleaved(models, lambda b: torch.randn(b, 4), cfg, torch.device("cpu"))
    assert len(out["a"].latency_round_ms) % 3 == 0  # each model led equally often
