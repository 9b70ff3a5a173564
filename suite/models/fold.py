"""Folding a per-channel affine map ``a * x + b`` into the linear layer next to it.

All arithmetic in float64, results cast back to the layer's dtype, so folding adds no
error beyond one final rounding. A consumer without a bias gets one (``W b`` is not zero).
"""
from __future__ import annotations

import torch
import torch.nn as nn


def conv1d_type() -> type | None:
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # transformers is a dependency; keep vision-only use working without it
        return None
    return Conv1D


@torch.no_grad()
def fold_into_consumer(layer: nn.Module, a: torch.Tensor, b: torch.Tensor) -> nn.Module:
    """``layer(a * x + b)`` as one layer: Linear ``[out, in]`` or HF Conv1D ``[in, out]``."""
    a, b = a.detach().double(), b.detach().double()
    if isinstance(layer, nn.Linear):
        w = layer.weight.double()
        bias = (layer.bias.double() if layer.bias is not None else torch.zeros(w.shape[0], dtype=w.dtype,
                                                                            device=w.device)) + w @ b
        new = nn.Linear(layer.in_features, layer.out_features, bias=True, device=layer.weight.device,
                        dtype=layer.weight.dtype)
        new.weight.copy_(w * a[None, :])
        new.bias.copy_(bias)
        return new
    conv1d = conv1d_type()
    if conv1d is not None and isinstance(layer, conv1d):
        w = layer.weight.double()  # [in, out]: y = x @ W + bias
        layer.bias.copy_(layer.bias.double() + b @ w)
        layer.weight.copy_(a[:, None] * w)
        return layer
    raise NotImplementedError(f"cannot fold a norm into {type(layer).__name__}")


@torch.no_grad()
def fold_after_conv(conv: nn.Conv2d, a: torch.Tensor, b: torch.Tensor) -> nn.Conv2d:
    """``a * conv(x) + b`` per output channel, keeping the conv's own bias term ``a * c``."""
    a, b = a.detach().double(), b.detach().double()
    w = conv.weight.double()
    conv.weight.copy_(w * a.reshape(-1, *[1] * (w.dim() - 1)))
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(a)
    if conv.bias is None:
        conv.bias = nn.Parameter(torch.empty(w.shape[0], dtype=conv.weight.dtype, device=conv.weight.device))
    conv.bias.copy_(a * bias + b)
    return conv
