"""``dyt``: Dynamic Tanh, ``y = g * tanh(alpha * x) + beta`` (Zhu, Chen, He, LeCun, Liu, CVPR 2025,
arXiv 2503.10622; code: ``jiachenzhu/DyT``).

The worked example of a new proposal in one small file: register, take ``dim``, accept
``eps`` (it has none), say how it deploys. Point-wise: its eval form is ``g * core(x) + beta``
with the element-wise ``core(x) = tanh(alpha * x)``, so deploy folds ``g, beta`` into the next
linear layer and keeps the core alone (``pointwise_form``).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from suite.variants import register_norm
from suite.variants.base import Norm


class TanhCore(nn.Module):
    """``tanh(alpha * x)``: what is left of DyT once its affine is folded away."""

    def __init__(self, alpha: torch.Tensor) -> None:
        super().__init__()
        self.alpha = nn.Parameter(alpha.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.alpha * x)


@register_norm("dyt")
class DyT(Norm):
    """Dynamic Tanh y = g * tanh(alpha * x) + beta, alpha a learnable scalar (init 0.5; Zhu et al., CVPR 2025)."""

    version = "2"  # 2: deploy folds g, beta into the next linear layer (point-wise form)
    pointwise = True

    def __init__(self, dim: int, *, alpha_init: float = 0.5, eps: float | None = None) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(float(alpha_init)))
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * torch.tanh(self.alpha * x) + self.bias

    def pointwise_form(self) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
        return TanhCore(self.alpha), self.weight, self.bias
