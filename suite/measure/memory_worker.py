"""Peak inference memory of one deployed model under one runtime and precision, alone in its own process.

A worker of ``suite.launch`` (``python -m suite.measure.memory_worker SPEC.json``): reads
the model back, builds it under the runtime (``suite.measure.prepare``), then runs a few
forwards at the task's batch and writes one JSON object to the job's ``out`` (``{"error": ...}``
when it fails). The peak is taken over the forwards only: on CPU the kernel's high-water mark
of this process is reset after the build (``/proc/self/clear_refs``), so what compilation or
export allocated and freed again does not count, while what stays resident does; the model's
share is that peak minus the resident set before the model was loaded (interpreter, torch and
the inputs are in the baseline; so are torch, torchvision, timm, transformers and scipy.stats, imported first
and listed in the row's ``source``, while a library the build imports lazily counts). On GPU
the figure is likewise the model's share, counted from before the model was loaded (the input is
in the baseline, as on CPU), read where the runtime keeps its memory (``Runtime.gpu_memory``):
the caching allocator's peak allocated bytes (eager, compile); its reserved bytes for CUDA graphs,
whose replays write into a private pool that is held but never counted as allocated; and for a
runtime outside PyTorch (ONNX Runtime's arena) NVML's figure for this process, else the device's
used memory. Where none of these can be read the field is null and ``source`` says why.
"""
from __future__ import annotations

import contextlib
import importlib
import resource
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import psutil
import torch

from suite import faults
from suite.launch import PRELOAD
from suite.measure.inputs import make_input
from suite.measure.jobs import MemoryJob
from suite.measure.prepare import prepare
from suite.measure.runtimes import PRECISIONS, RUNTIMES
from suite.measure.worker import run_worker
from suite.parts import InputSpec

FORWARDS = 3


class GpuFigures(TypedDict):
    """The model's share of the GPU's memory (``peak_mb``, read as ``source`` says) and every reading."""
    torch_max_allocated_mb: float
    torch_max_reserved_mb: float
    nvml_process_mb: float | None
    peak_mb: float | None
    source: str


class MemoryResult(TypedDict):
    """What the worker writes (the row's ``memory``): the model's share, how it was read, the readings."""
    batch: int
    peak_mb: float | None
    source: str
    process_peak_rss_mb: NotRequired[float]     # CPU
    rss_before_model_mb: NotRequired[float]
    torch_max_allocated_mb: NotRequired[float]  # CUDA
    torch_max_reserved_mb: NotRequired[float]
    nvml_process_mb: NotRequired[float | None]


def probe(folder: str, input_spec: InputSpec, batch: int, device: str, *, runtime: str = "eager",
          precision: str = "fp32", threads: int | None = None) -> MemoryResult:
    faults.point("memory")
    dev = torch.device(device)
    dtype = PRECISIONS[precision]
    x = make_input(input_spec, batch, dev, dtype)
    for name in PRELOAD:  # in the baseline however the worker started (a forked one has them already)
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    if dev.type == "cuda":
        return {"batch": batch, **_cuda_probe(folder, dev, runtime, precision, x, threads)}
    rss_before = psutil.Process().memory_info().rss / 2**20
    loaded = [m for m in PRELOAD if m in sys.modules]
    prepared = prepare(Path(folder), device=dev, runtime=runtime, precision=precision, examples=[x],
                       threads=threads)
    hwm_reset = reset_high_water_mark()
    _forwards(prepared.built.fn, x)
    hwm = high_water_mark_mb() if hwm_reset else None  # None after a reset only if /proc stopped answering
    peak = hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    how = ("peak RSS over the forwards (high-water mark reset after the build)" if hwm is not None else
           "peak RSS of the whole process (ru_maxrss; the high-water mark could not be reset)")
    return {"batch": batch, "peak_mb": peak - rss_before, "process_peak_rss_mb": peak,
            "rss_before_model_mb": rss_before,
            "source": f"cpu: {how} minus RSS before the model was loaded "
                      f"(already imported then: {', '.join(loaded) or 'none of ' + ', '.join(PRELOAD)})"}


def _forwards(fn: Any, x: Any) -> None:
    with torch.inference_mode():
        for _ in range(FORWARDS):
            fn(x)


def _cuda_probe(folder: str, dev: torch.device, runtime: str, precision: str, x: Any,
                threads: int | None) -> GpuFigures:
    before = read_gpu(dev)  # the input is allocated: it is in the baseline, as on CPU
    prepared = prepare(Path(folder), device=dev, runtime=runtime, precision=precision, examples=[x],
                       threads=threads)
    torch.cuda.synchronize(dev)
    torch.cuda.empty_cache()  # blocks freed during the build are no longer held; graph pools stay
    torch.cuda.reset_peak_memory_stats(dev)
    _forwards(prepared.built.fn, x)
    torch.cuda.synchronize(dev)
    return gpu_figures(getattr(RUNTIMES.get(runtime), "gpu_memory", "allocated"), before, read_gpu(dev))


@dataclass(frozen=True)
class GpuReading:
    """What the probe reads about the GPU's memory at one moment (MiB; None where unreadable)."""

    allocated_mb: float
    reserved_mb: float
    peak_allocated_mb: float      # since the last reset of the peak statistics
    peak_reserved_mb: float
    device_used_mb: float | None  # the whole device: total minus free (cudaMemGetInfo)
    process_mb: float | None      # NVML's figure for this process (None where NVML hides processes)


def read_gpu(dev: torch.device) -> GpuReading:
    from suite.measure.gpu import process_memory_mb
    free, total = torch.cuda.mem_get_info(dev)
    return GpuReading(allocated_mb=torch.cuda.memory_allocated(dev) / 2**20,
                      reserved_mb=torch.cuda.memory_reserved(dev) / 2**20,
                      peak_allocated_mb=torch.cuda.max_memory_allocated(dev) / 2**20,
                      peak_reserved_mb=torch.cuda.max_memory_reserved(dev) / 2**20,
                      device_used_mb=(total - free) / 2**20, process_mb=process_memory_mb(dev.index or 0))


def gpu_figures(method: str, before: GpuReading, after: GpuReading) -> GpuFigures:
    """The model's share of the GPU's memory over the forwards, read the way ``method`` says
    (``suite.measure.runtimes.GPU_MEMORY``), every reading kept beside it."""
    allocated = after.peak_allocated_mb - before.allocated_mb
    reserved = after.peak_reserved_mb - before.reserved_mb

    def figures(peak_mb: float | None, source: str) -> GpuFigures:
        return {"torch_max_allocated_mb": allocated, "torch_max_reserved_mb": reserved,
                "nvml_process_mb": after.process_mb, "peak_mb": peak_mb, "source": source}

    if method == "allocated":
        return figures(allocated, "cuda: torch.cuda.max_memory_allocated over the forwards minus the bytes allocated "
                                  "before the model was loaded (the input)")
    if method == "reserved":
        return figures(reserved, "cuda graphs: torch.cuda.max_memory_reserved over the replays minus the bytes "
                                 "reserved before the model was loaded (replays write into the graphs' private pool, "
                                 "which allocated bytes do not count)")
    if method != "device":
        raise ValueError(f"unknown GPU memory method {method!r} (known: allocated, reserved, device)")
    if before.process_mb is not None and after.process_mb is not None:
        return figures(after.process_mb - before.process_mb,
                       "cuda, outside PyTorch's allocator: NVML's memory of this process after the "
                       "forwards minus before the model was loaded (the runtime's arena keeps its peak)")
    if before.device_used_mb is not None and after.device_used_mb is not None:
        return figures(after.device_used_mb - before.device_used_mb,
                       "cuda, outside PyTorch's allocator: the device's used memory after the forwards "
                       "minus before the model was loaded (NVML shows no per-process figure here; the "
                       "probe runs alone on its GPU)")
    return figures(None, "n/a: this runtime's memory is outside PyTorch's allocator and "
                         "neither NVML nor the driver reported the GPU's used memory")


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


def measure(spec: Mapping[str, object]) -> MemoryResult:
    """The memory of the model a ``MemoryJob`` names."""
    job = MemoryJob.from_json(spec)
    return probe(job.model, job.input_spec, job.batch, job.device, runtime=job.runtime, precision=job.precision,
                 threads=job.threads)


def main(spec_path: str) -> int:
    return run_worker(spec_path, measure)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
