"""Provenance: everything about the machine and software that can change a number.

Recorded in every row (``provenance``) and in every benchmark report; the comparability
fingerprint (``suite.report.fingerprint``) is read from it.
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
from functools import lru_cache
from pathlib import Path

import torch

from suite.env import GPUS_ENV, git_state, suite_version
from suite.parts import SCHEMA_VERSION, DeviceInfo, GpuUsed, Provenance

LIBRARIES = ("torch", "torchvision", "timm", "transformers", "numpy", "nvidia-ml-py")


@lru_cache(maxsize=1)
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_description(device: torch.device) -> DeviceInfo:
    """What the measurements ran on: CPU model and threads, or the GPU and its driver."""
    cpu, cpu_count, threads = cpu_name(), os.cpu_count(), torch.get_num_threads()
    # the SIMD code torch's CPU kernels run (AVX512, AVX2, ...): two CPUs of one model name can differ
    # here, and their results then differ in the last digits. Not in the fingerprint (older rows lack it)
    isa = torch.backends.cpu.get_cpu_capability()
    if device.type == "cuda":
        from suite.measure.gpu import device_info
        return {"type": "cuda", "cpu": cpu, "cpu_count": cpu_count, "cpu_isa": isa, "torch_threads": threads,
                "index": gpu_index(device.index or 0), **device_info(device.index or 0), "tf32": tf32_state()}
    # the suite's devices are "cpu" and "cuda" (``--device``)
    return {"type": "cpu", "cpu": cpu, "cpu_count": cpu_count, "cpu_isa": isa, "torch_threads": threads,
            "name": cpu}


def gpu_index(cuda_index: int) -> int:
    """The GPU's index as the sweep numbers them (``--gpus``): a worker the GPU pool pinned sees its
    GPUs as 0, 1, ... and is told their sweep indices in ``NORMBENCH_GPUS``."""
    pinned = [int(g) for g in os.environ.get(GPUS_ENV, "").split(",") if g.strip().isdigit()]
    return pinned[cuda_index] if cuda_index < len(pinned) else cuda_index


def gpus_used() -> list[GpuUsed]:
    """The GPUs this process sees (a cell the pool pinned, or a job's), by sweep index, name and UUID."""
    if not torch.cuda.is_available():
        return []
    out: list[GpuUsed] = []
    for i in range(torch.cuda.device_count()):
        uuid = getattr(torch.cuda.get_device_properties(i), "uuid", None)
        out.append({"index": gpu_index(i), "name": torch.cuda.get_device_name(i),
                    "uuid": None if uuid is None else f"GPU-{uuid}"})
    return out


def tf32_state() -> dict[str, bool | str]:
    """Whether "fp32" on CUDA is really TF32 somewhere: PyTorch's defaults let cuDNN convolutions
    use TF32 and keep matmuls in full fp32; the suite leaves them as they are and records them."""
    out: dict[str, bool | str] = {"cudnn_conv": bool(torch.backends.cudnn.allow_tf32),
                           "matmul": bool(torch.backends.cuda.matmul.allow_tf32),
                           "float32_matmul_precision": torch.get_float32_matmul_precision()}
    conv = getattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision", None)  # torch >= 2.9's names
    if conv is not None:
        out["cudnn_conv_fp32_precision"] = conv
    return out


def provenance(device: torch.device) -> Provenance:
    """The provenance part of a row (``suite.report.parts.Provenance``)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "suite_version": suite_version(),
        "git": git_state(),
        "python": platform.python_version(),
        "libraries": library_versions(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "device": device_description(device),
    }
