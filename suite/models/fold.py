"""Folding a per-channel affine map ``a * x + b`` into the linear layer next to it.

All arithmetic in float64, results cast back to the layer's dtype, so folding adds no
error beyond one final rounding. A layer without a bias gets one (``W b`` is not zero).
Layers are changed in place, so whatever is attached to them (forward hooks, child modules
such as a per-head query/key norm) stays; a layer rebuilt in another shape keeps them too
(``carry_attachments``).
"""
from __future__ import annotations

from typing import cast

import torch
import torch.nn as nn


def conv1d_type() -> type | None:
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # transformers is a dependency; keep vision-only use working without it
        return None
    return Conv1D


def _bias(layer: nn.Module, out: int) -> torch.Tensor:
    """The layer's bias in float64, created (as zeros) when it has none."""
    if getattr(layer, "bias", None) is None:
        weight = cast(torch.Tensor, layer.weight)
        layer.bias = nn.Parameter(torch.zeros(out, dtype=weight.dtype, device=weight.device))
    return cast(torch.Tensor, layer.bias).double()


@torch.no_grad()
def fold_into_consumer(layer: nn.Module, a: torch.Tensor, b: torch.Tensor) -> nn.Module:
    """``layer(a * x + b)`` as one layer, in place: Linear ``[out, in]`` or HF Conv1D ``[in, out]``."""
    a, b = a.detach().double(), b.detach().double()
    if isinstance(layer, nn.Linear):
        w = layer.weight.double()
        bias = _bias(layer, w.shape[0]) + w @ b
        layer.weight.copy_(w * a[None, :])
        layer.bias.copy_(bias)
        return layer
    conv1d = conv1d_type()
    if conv1d is not None and isinstance(layer, conv1d):
        weight, layer_bias = cast(torch.Tensor, layer.weight), cast(torch.Tensor, layer.bias)
        w = weight.double()  # [in, out]: y = x @ W + bias
        layer_bias.copy_(layer_bias.double() + b @ w)
        weight.copy_(a[:, None] * w)
        return layer
    raise NotImplementedError(f"cannot fold a norm into {type(layer).__name__}")


@torch.no_grad()
def fold_after(layer: nn.Module, a: torch.Tensor, b: torch.Tensor, offset: int = 0, groups: int = 1) -> nn.Module:
    """``a * layer(x) + b`` as one layer, in place (the producer side).

    The affine acts on output channels ``[offset, offset + groups * len(a))``, repeated over
    ``groups`` consecutive groups (e.g. the heads of a query projection); the other channels
    are untouched. Linear ``[out, in]``, HF Conv1D ``[in, out]`` or a convolution (whose own
    bias term becomes ``a * c + b``).
    """
    a, b = a.detach().double(), b.detach().double()
    conv1d = conv1d_type()
    out_axis = 1 if conv1d is not None and isinstance(layer, conv1d) else 0
    if not isinstance(layer, nn.Linear | nn.Conv1d | nn.Conv2d) and out_axis == 0:
        raise NotImplementedError(f"cannot fold a norm into the output of {type(layer).__name__}")
    weight = cast(torch.Tensor, layer.weight)
    w = weight.double()
    n_out = w.shape[out_axis]
    full_a = torch.ones(n_out, dtype=a.dtype, device=a.device)
    full_b = torch.zeros(n_out, dtype=b.dtype, device=b.device)
    hi = offset + groups * a.numel()
    if hi > n_out:
        raise ValueError(f"channels [{offset}, {hi}) are outside the {n_out} outputs of {type(layer).__name__}")
    full_a[offset:hi], full_b[offset:hi] = a.repeat(groups), b.repeat(groups)
    full_a, full_b = full_a.to(w.device), full_b.to(w.device)
    shape = [1] * w.dim()
    shape[out_axis] = n_out
    bias = _bias(layer, n_out)
    weight.copy_(w * full_a.reshape(shape))
    cast(torch.Tensor, layer.bias).copy_(full_a * bias + full_b)
    return layer


@torch.no_grad()
def fold_after_conv(conv: nn.Conv2d, a: torch.Tensor, b: torch.Tensor) -> nn.Conv2d:
    """``a * conv(x) + b`` per output channel, keeping the conv's own bias term ``a * c``."""
    fold_after(conv, a, b)
    return conv


_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
               "_forward_pre_hooks_with_kwargs")


def carry_attachments(old: nn.Module, new: nn.Module) -> nn.Module:
    """``new`` (a rebuilt ``old``) gets ``old``'s forward hooks and child modules; returns ``new``."""
    for name, child in old.named_children():
        new.add_module(name, child)
    for attr in _HOOK_DICTS:
        if hasattr(old, attr) and hasattr(new, attr):
            getattr(new, attr).update(getattr(old, attr))
    return new
