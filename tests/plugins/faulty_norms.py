"""Test-only norm plugins, loaded through NORMBENCH_PLUGINS: one raises, one produces NaN."""
from __future__ import annotations

import torch
import torch.nn as nn

from suite import register_norm


@register_norm("boom")
class Boom(nn.Module):
    """Test plugin: raises inside the cell (the sweep must record an error row and go on)."""

    def __init__(self, dim: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom from the test plugin")


@register_norm("nanorm")
class NaNNorm(nn.Module):
    """Test plugin: outputs NaN, so training must stop as `diverged`."""

    def __init__(self, dim: int, *, eps: float = 1e-6) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * float("nan")
