"""``dyt``: Dynamic Tanh, ``y = g * tanh(alpha * x) + beta`` (Zhu et al., CVPR 2025).

The worked example of a new proposal in one small file: register, take ``dim``, accept
``eps`` (it has none), done. Not foldable (tanh), so its deployed form keeps the layer.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from suite.variants import register_norm


@register_norm("dyt")
class DyT(nn.Module):
    """Dynamic Tanh y = g * tanh(alpha * x) + beta, alpha a learnable scalar (init 0.5)."""

    version = "1"
    foldable = False
    ln_like = False

    def __init__(self, dim: int, *, alpha_init: float = 0.5, eps: float | None = None) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(float(alpha_init)))
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * torch.tanh(self.alpha * x) + self.bias
