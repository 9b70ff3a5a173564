"""Inputs for timing and memory probes, and FLOP counting.

Timing inputs are random but fixed (one seeded generator), so every model of a group sees
the same tensors; a task describes them with an input spec: ``{"kind": "image", "shape":
[C, H, W]}`` or ``{"kind": "tokens", "seq_len": L, "vocab_size": V}``.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from suite.parts import InputSpec


def count_flops(model: nn.Module, inputs: Any) -> int:
    """Forward FLOPs of one call (matmul/conv/attention, as torch.utils.flop_counter counts them)."""
    from torch.utils.flop_counter import FlopCounterMode
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(inputs)
    return int(counter.get_total_flops())


def make_input(spec: InputSpec, batch: int, device: torch.device | str,
               dtype: torch.dtype = torch.float32, seed: int = 1234) -> Any:
    """A random model input from a task's input spec (fixed seed: every model sees the same);
    images in ``dtype`` (the precision measured), token ids as integers."""
    g = torch.Generator().manual_seed(seed)
    if spec["kind"] == "image":
        return torch.randn(batch, *spec["shape"], generator=g).to(device=device, dtype=dtype)
    if spec["kind"] == "tokens":
        return torch.randint(0, spec["vocab_size"], (batch, spec["seq_len"]), generator=g).to(device)
    raise ValueError(f"unknown input kind {spec['kind']!r}")
