"""GPU state in rows and the leaderboard's throttling flag.

The flag logic is tested on synthetic states everywhere; capturing a real NVML state
around a timing group, and seeing another process on the GPU, needs CUDA (`gpu` marker).
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from suite.measure.gpu import StateSampler, state_flag, state_warnings
from suite.report.leaderboard import leaderboard_markdown

from conftest import DEVICES, TINY_INPUT, save_tiny_deployed
from synth import make_row

CALM = {"sm_clock_mhz": 1980, "temperature_c": 50, "power_w": 120.0, "throttle_reasons": [], "throttled": False,
        "other_processes": 0}


def test_throttled_or_shared_gpu_rows_are_flagged_in_the_table_with_a_footnote() -> None:
    hot = CALM | {"throttle_reasons": ["sw-thermal", "idle"], "throttled": True}
    shared = CALM | {"other_processes": 2}
    assert state_warnings({"before": CALM, "after": CALM}) == [] and state_flag(None) == ""
    assert state_warnings({"before": CALM, "after": hot}) == ["while throttled (sw-thermal)"]
    assert state_flag({"before": shared, "after": CALM}) == "shared GPU"
    rows = [make_row("ln", device="cuda", gpu_state={"before": CALM, "after": CALM}),
            make_row("un", device="cuda", log_ratios=[-0.05] * 20, gpu_state={"before": CALM, "after": hot}),
            make_row("rms", device="cuda", log_ratios=[-0.02] * 20, gpu_state={"before": shared, "after": shared})]
    md = leaderboard_markdown(rows)
    lines = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| ")}
    assert "⚠" not in lines["ln"]
    assert "| ok ⚠ throttled " in lines["un"] and "| ok ⚠ shared GPU " in lines["rms"]
    assert "- ⚠ `un` seed 0: measured while throttled (sw-thermal); its latency may be inflated" in md
    assert "- ⚠ `rms` seed 0: measured with 2 other process(es) on the GPU" in md


def test_the_sampler_sees_a_cap_that_holds_only_during_the_rounds() -> None:
    states = iter([CALM, CALM | {"sm_clock_mhz": 1400, "throttle_reasons": ["sw-power-cap"], "throttled": True},
                   CALM | {"sm_clock_mhz": 1700}])
    counters = iter([{"power": 0, "thermal": 5_000_000}, {"power": 250_000_000, "thermal": 5_000_000}])
    sampler = StateSampler(lambda: next(states), lambda: next(counters))
    for _ in range(3):
        sampler.sample()
    during = sampler.summary()
    assert during["samples"] == 3 and during["sm_clock_mhz"] == {"min": 1400, "median": 1700.0, "max": 1980}
    assert during["throttle_reasons"] == ["sw-power-cap"] and during["throttled_fraction"] == pytest.approx(1 / 3)
    assert during["violation_ms"] == {"power": 250.0, "thermal": 0.0}
    calm_ends = {"before": CALM, "during": during, "after": CALM}
    assert state_flag(calm_ends) == "throttled"
    assert state_warnings(calm_ends)[0] == "while throttled (power limit 250 ms during the rounds)"
    assert StateSampler(lambda: None).summary() is None  # no NVML: no state, not a calm one


@pytest.mark.parametrize("device", DEVICES)
def test_a_timing_group_samples_the_gpu_state_at_every_round(tmp_path: Path, device: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from suite.measure import timing_worker
    from suite.measure.jobs import TimingJob
    if device == "cpu":  # a fake NVML reading stands in for the GPU's
        monkeypatch.setattr(timing_worker, "_gpu_state", lambda dev: dict(CALM))
    models = {n: str(save_tiny_deployed(tmp_path / n, n)) for n in ("ln", "un")}
    spec = TimingJob(models=models, baseline="ln", device=device, runtime="eager", precision="fp32",
                     input_spec=TINY_INPUT, unit="items/s", out=str(tmp_path / "timing.json"),
                     timing={"budget_s": 0.5, "throughput_batch": 4, "warmup_s": 0.05}).as_json()
    out = timing_worker.run_group(spec)
    assert set(out["models"]) == {"ln", "un"} and not out["failed"]
    rounds = len(out["models"]["un"]["latency"]["round_ms"])
    during = out["gpu_state"]["during"]
    assert during["samples"] == rounds >= 8
    for when in ("before", "after"):
        state = out["gpu_state"][when]
        assert state["sm_clock_mhz"] > 0 and state["temperature_c"] is not None and state["power_w"] is not None
        assert isinstance(state["throttle_reasons"], list) and isinstance(state["throttled"], bool)
    if device == "cuda":
        assert out["models"]["un"]["latency"]["timer"] == "cuda_event" and during["sm_clock_mhz"]["median"] > 0
        assert "violation_ms" in during


@pytest.mark.gpu
def test_another_process_on_the_gpu_is_seen_and_flagged() -> None:
    from suite.measure.gpu import gpu_state
    holder = subprocess.Popen([sys.executable, "-c", "import torch, time; x = torch.ones(1, device='cuda'); "
                               "print('ready', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        state = gpu_state(0)
        if state["other_processes"] == 0:  # containers may hide other PIDs from NVML
            pytest.skip("NVML lists no compute processes of others here (PID namespace)")
        assert state_flag({"before": state, "after": state}) in ("shared GPU", "throttled")
        assert any("other process" in w for w in state_warnings({"before": state}))
    finally:
        holder.kill()
        holder.wait()
