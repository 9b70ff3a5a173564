"""Event timing, the memory probe and NVML facts, on the models a sweep saves. The CUDA cases are
marked `gpu` (skipped without CUDA); the CPU cases run the same code everywhere."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from suite.measure.interleave import TimingConfig, time_interleaved

from conftest import DEVICES, TINY_INPUT, save_tiny_deployed


@pytest.mark.gpu
def test_cuda_event_timing() -> None:
    dev = torch.device("cuda")
    models = {"a": nn.Linear(256, 256).to(dev).eval(), "b": nn.Linear(256, 256).to(dev).eval()}
    cfg = TimingConfig(budget_s=0.5, warmup_iters=5, warmup_s=0.1, block_s=0.005, throughput_batch=32)
    out = time_interleaved(models, lambda b: torch.randn(b, 256, device=dev), cfg, dev, baseline="a")
    assert out["a"].timer == "cuda_event" and out["b"].summary["p50_ms"] > 0


@pytest.mark.parametrize("device", DEVICES)
def test_the_memory_probe_reads_a_saved_deployed_model(tmp_path, device: str) -> None:
    from suite.measure.memory_worker import probe
    folder = save_tiny_deployed(tmp_path / "ln")
    mem = probe(str(folder), TINY_INPUT, 8, device)
    assert mem["batch"] == 8 and mem["source"].startswith(device) and mem["peak_mb"] is not None
    if device == "cuda":  # weights (about 2 MB in fp32) and activations, the input left out
        assert mem["peak_mb"] > 1 and mem["torch_max_allocated_mb"] == mem["peak_mb"]
        assert mem["nvml_process_mb"] is None or mem["nvml_process_mb"] > mem["peak_mb"]


@pytest.mark.gpu
@pytest.mark.parametrize("runtime", ["cudagraphs", "eager"])
def test_gpu_memory_counts_activations_under_every_runtime(tmp_path, runtime: str) -> None:
    """CUDA-graph replays write into a private pool: the probe must still see the activations."""
    from suite.measure.memory_worker import probe
    folder = save_tiny_deployed(tmp_path / "ln")
    small = probe(str(folder), TINY_INPUT, 1, "cuda", runtime=runtime)
    large = probe(str(folder), TINY_INPUT, 512, "cuda", runtime=runtime)  # MLP activations: about 8 MB each
    assert large["peak_mb"] > small["peak_mb"] > 1, (small, large)


@pytest.mark.gpu
def test_nvml_device_facts_create_no_cuda_context() -> None:
    from suite.measure.gpu import device_info, gpu_state
    initialized = torch.cuda.is_initialized()
    info, state = device_info(0), gpu_state(0)
    assert torch.cuda.is_initialized() == initialized  # the sweep's parent asks these and must hold no context
    assert info["name"] and info.get("driver") and info.get("uuid", "").startswith("GPU-")
    assert info["capability"] and info["total_memory_mb"] > 1000
    assert state is not None and state["sm_clock_mhz"] and state["temperature_c"] is not None
