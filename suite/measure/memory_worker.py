"""Peak inference memory of one deployed model under one runtime and precision, alone in its own process.

A worker of ``suite.launch`` (``python -m suite.measure.memory_worker SPEC.json``): reads
the model back, builds it under the runtime (``suite.measure.prepare``), then runs a few
forwards at the task's batch and writes one JSON object to ``spec["out"]`` (``{"error": ...}``
when it fails). The peak is taken over the forwards only: on CPU the kernel's high-water mark
of this process is reset after the build (``/proc/self/clear_refs``), so what compilation or
export allocated and freed again does not count, while what stays resident does; the model's
share is that peak minus the resident set before the model was loaded (interpreter, torch and
the inputs are in the baseline; so are torch, torchvision, timm and transformers, imported first
and listed in the row's ``source``, while a library the build imports lazily counts). On GPU:
``torch.cuda.max_memory_allocated`` from after the build, and NVML's view of this process (CUDA
context included).
"""
from __future__ import annotations

import contextlib
import importlib
import resource
import sys
from pathlib import Path
from typing import Any

import psutil
import torch

from suite import faults
from suite.launch import PRELOAD
from suite.measure.inputs import make_input
from suite.measure.prepare import prepare
from suite.measure.runtimes import PRECISIONS
from suite.measure.worker import run_worker

FORWARDS = 3


def probe(folder: str, input_spec: dict[str, Any], batch: int, device: str, *, runtime: str = "eager",
          precision: str = "fp32", threads: int | None = None) -> dict[str, Any]:
    faults.point("memory")
    dev = torch.device(device)
    dtype = PRECISIONS[precision]
    x = make_input(input_spec, batch, dev, dtype)
    for name in PRELOAD:  # in the baseline however the worker started (a forked one has them already)
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    rss_before = psutil.Process().memory_info().rss / 2**20
    loaded = [m for m in PRELOAD if m in sys.modules]
    prepared = prepare(Path(folder), device=dev, runtime=runtime, precision=precision, examples=[x],
                       threads=threads)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    hwm_reset = reset_high_water_mark()
    with torch.inference_mode():
        for _ in range(FORWARDS):
            prepared.built.fn(x)
    out: dict[str, Any] = {"batch": batch}
    if dev.type == "cuda":
        from suite.measure.gpu import process_memory_mb
        torch.cuda.synchronize(dev)
        allocated = torch.cuda.max_memory_allocated(dev) / 2**20
        out |= {"peak_mb": allocated, "torch_max_allocated_mb": allocated,
                "nvml_process_mb": process_memory_mb(dev.index or 0),
                "source": "cuda: torch.cuda.max_memory_allocated over the forwards (peak_mb) + NVML process memory"}
        return out
    peak = high_water_mark_mb() if hwm_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    how = ("peak RSS over the forwards (high-water mark reset after the build)" if hwm_reset else
           "peak RSS of the whole process (ru_maxrss; the high-water mark could not be reset)")
    return out | {"peak_mb": peak - rss_before, "process_peak_rss_mb": peak, "rss_before_model_mb": rss_before,
                  "source": f"cpu: {how} minus RSS before the model was loaded "
                            f"(already imported then: {', '.join(loaded) or 'none of ' + ', '.join(PRELOAD)})"}


def reset_high_water_mark() -> bool:
    """Reset this process's peak RSS to its current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return high_water_mark_mb() is not None


def high_water_mark_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def main(spec_path: str) -> int:
    return run_worker(spec_path, lambda spec: probe(spec["model"], spec["input_spec"], spec["batch"], spec["device"],
                                                    runtime=spec.get("runtime", "eager"),
                                                    precision=spec.get("precision", "fp32"),
                                                    threads=spec.get("threads")))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
