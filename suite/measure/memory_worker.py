"""Peak inference memory of one deployed model, measured alone in a fresh process.

A worker of ``suite.sweep.launch`` (``python -m suite.measure.memory_worker SPEC.json``): loads the
model, runs a few forwards at the task's batch and writes one JSON object to ``spec["out"]``
(``{"error": ...}`` when it fails). On CPU: peak resident set size of this process
(``ru_maxrss``), and the model's share of it, peak minus the RSS before the model was
loaded (the interpreter, torch and the input are in the baseline). On GPU: NVML's view of
this process's memory (CUDA context included) and ``torch.cuda.max_memory_allocated``.
"""
from __future__ import annotations

import resource
import sys
from typing import Any

import psutil
import torch

from suite.measure.inputs import make_input
from suite.measure.worker import run_worker

FORWARDS = 3


def probe(model_path: str, input_spec: dict[str, Any], batch: int, device: str) -> dict[str, Any]:
    dev = torch.device(device)
    x = make_input(input_spec, batch, dev)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    rss_before = psutil.Process().memory_info().rss / 2**20
    model = torch.load(model_path, map_location=dev, weights_only=False).eval()
    with torch.inference_mode():
        for _ in range(FORWARDS):
            model(x)
    out: dict[str, Any] = {"batch": batch}
    if dev.type == "cuda":
        from suite.measure.gpu import process_memory_mb
        torch.cuda.synchronize(dev)
        allocated = torch.cuda.max_memory_allocated(dev) / 2**20
        nvml = process_memory_mb(dev.index or 0)
        out |= {"peak_mb": allocated, "torch_max_allocated_mb": allocated, "nvml_process_mb": nvml,
                "source": "cuda: torch.cuda.max_memory_allocated (peak_mb) + NVML process memory"}
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        out |= {"peak_mb": peak - rss_before, "process_peak_rss_mb": peak, "rss_before_model_mb": rss_before,
                "source": "cpu: peak RSS (ru_maxrss) minus RSS before the model was loaded"}
    return out


def main(spec_path: str) -> int:
    return run_worker(spec_path, lambda spec: probe(spec["model_path"], spec["input_spec"], spec["batch"],
                                                    spec["device"]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
