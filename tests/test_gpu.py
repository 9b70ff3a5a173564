"""CUDA paths: event timing, NVML memory and state. Marked `gpu`: skipped without CUDA."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from suite.measure.interleave import TimingConfig, time_interleaved

pytestmark = pytest.mark.gpu


def test_cuda_event_timing() -> None:
    dev = torch.device("cuda")
    models = {"a": nn.Linear(256, 256).to(dev).eval(), "b": nn.Linear(256, 256).to(dev).eval()}
    cfg = TimingConfig(budget_s=0.5, warmup_iters=5, warmup_s=0.1, block_s=0.005, throughput_batch=32)
    out = time_interleaved(models, lambda b: torch.randn(b, 256, device=dev), cfg, dev, baseline="a")
    assert out["a"].timer == "cuda_event" and out["b"].summary["p50_ms"] > 0


def test_nvml_state_and_process_memory(tmp_path) -> None:
    from suite.measure.gpu import device_info, gpu_state
    from suite.measure.memory_worker import probe
    info, state = device_info(0), gpu_state(0)
    assert info["name"] and info.get("driver")
    assert state is not None and state["sm_clock_mhz"] and state["temperature_c"] is not None
    model = nn.Sequential(nn.Linear(64, 4096), nn.Linear(4096, 64)).eval()
    torch.save(model, tmp_path / "m.pt")
    mem = probe(str(tmp_path / "m.pt"), {"kind": "image", "shape": [64]}, 8, "cuda")
    assert mem["torch_max_allocated_mb"] > 1.0 and mem["nvml_process_mb"] > mem["torch_max_allocated_mb"]
