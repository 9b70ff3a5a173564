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
import torch

from suite.measure.gpu import state_flag, state_warnings
from suite.report.leaderboard import leaderboard_markdown

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


@pytest.mark.gpu
def test_a_timing_group_records_nvml_state_before_and_after(tmp_path: Path) -> None:
    from suite.measure.timing_worker import run_group
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.Linear(256, 10)).eval()
    for name in ("ln", "un"):
        torch.save(model, tmp_path / f"{name}.pt")
    spec = {"models": {n: str(tmp_path / f"{n}.pt") for n in ("ln", "un")}, "baseline": "ln", "device": "cuda",
            "input_spec": {"kind": "image", "shape": [64]}, "unit": "items/s",
            "timing": {"budget_s": 0.5, "throughput_batch": 16, "warmup_s": 0.1}}
    out = run_group(spec)
    for when in ("before", "after"):
        state = out["gpu_state"][when]
        assert state["sm_clock_mhz"] > 0 and state["temperature_c"] is not None and state["power_w"] is not None
        assert isinstance(state["throttle_reasons"], list) and isinstance(state["throttled"], bool)
    assert out["models"]["un"]["latency"]["timer"] == "cuda_event"


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
