"""Runtimes: how a deployed model is executed when it is measured (eager, torch.compile, ONNX Runtime, ...).

A runtime is a plugin like a norm: one file in this package registering a class with
``@register_runtime(name)`` (out of tree: the entry-point group ``normbench.runtimes``). It
takes the deployed ``nn.Module`` (already in eval mode, on the device, in the precision) and
example inputs, and returns a :class:`Built`: a callable that maps an input to the outputs,
the seconds building cost (compilation, export, session creation; never counted in latency)
and facts for the row (library version, provider). ``unsupported(device, precision)`` says
why a runtime cannot run at all on this device or precision (the cell's row is then
``not-applicable`` with that reason); a model it cannot build raises, and that row is ``error``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from suite.parts import JsonObject
from suite.registry import Registry

RUNTIMES = Registry("runtime", "suite.measure.runtimes", "normbench.runtimes")
register_runtime = RUNTIMES.register

#: inference precisions: name -> torch dtype
PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Built:
    fn: Callable[[Any], Any]                        # input -> outputs, the thing that is timed
    build_s: float                                  # compile / export / session creation, seconds
    info: JsonObject = field(default_factory=dict)   # the row's ``runtime_info``, beside ``build_s``


#: how a runtime's GPU memory can be read (``Runtime.gpu_memory``): ``allocated``, tensors through
#: PyTorch's caching allocator (its peak counts weights and activations); ``reserved``, replays
#: that write into memory the allocator holds but does not count as allocated (CUDA graphs' private
#: pools); ``device``, memory outside PyTorch (an ONNX Runtime arena), seen only by the driver
GPU_MEMORY = ("allocated", "reserved", "device")


class Runtime:
    """Base of a runtime plugin (plugins may also duck-type these two methods)."""

    version = "1"
    gpu_memory = "allocated"  # one of GPU_MEMORY: where the memory probe reads this runtime's peak on CUDA
    #: True when building leaves an on-disk cache that a build of the same model in another process
    #: reads back (inductor): builds can then be warmed side by side before a timing group
    build_cache = False

    @classmethod
    def unsupported(cls, device: torch.device, precision: str) -> str | None:
        """None when this runtime can run here in this precision, else the reason it cannot."""
        return None

    @classmethod
    def build(cls, model: torch.nn.Module, examples: list[Any], *, device: torch.device, precision: str,
              threads: int | None) -> Built:
        raise NotImplementedError


def precision_unsupported(device: torch.device, precision: str) -> str | None:
    """Why ``precision`` cannot be used for inference on ``device`` (None when it can)."""
    if precision not in PRECISIONS:
        return f"unknown precision {precision!r} (known: {', '.join(PRECISIONS)})"
    if device.type == "cuda":
        from suite.measure.gpu import capability, device_info
        if precision == "bf16" and capability(device.index or 0) < (8, 0):  # Ampere and later have bf16
            return f"bf16 needs compute capability 8.0 or later ({device_info(device.index or 0)['name']})"
        return None
    if precision == "fp16":
        return "fp16 inference is a GPU precision: PyTorch's CPU kernels for float16 are emulated and slow"
    if precision == "bf16" and not cpu_has_bf16():
        return "this CPU has no native bfloat16 instructions (avx512_bf16 or amx_bf16)"
    return None


def cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def check_names(runtimes: list[str], precisions: list[str]) -> None:
    """Raise ``UsageError`` (one line, the known names listed) for an unknown runtime or precision."""
    from suite.errors import UsageError
    for r in runtimes:
        RUNTIMES.get(r)
    for p in precisions:
        if p not in PRECISIONS:
            raise UsageError(f"unknown precision {p!r}; known precisions: {', '.join(PRECISIONS)}")
