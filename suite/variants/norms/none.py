"""``none``: identity, the latency lower bound (a norm that costs nothing)."""
from __future__ import annotations

import torch
import torch.nn as nn

from suite.variants import register_norm
from suite.variants.base import Norm


@register_norm("none")
class NoNorm(Norm):
    """Identity: no normalization at all; the cost-free latency bound (may diverge in training)."""

    version = "1"
    foldable = False
    ln_like = False
    replaces_model_norm = True

    def __init__(self, dim: int, *, eps: float | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def deploy_form(self) -> nn.Module:
        return nn.Identity()

    def extra_repr(self) -> str:
        return f"{self.dim}"
