"""``ln``: the model's own LayerNorm, the baseline every ratio is taken against."""
from __future__ import annotations

import torch.nn as nn

from suite.variants import register_norm


@register_norm("ln")
class LayerNorm(nn.LayerNorm):
    """LayerNorm baseline: the model keeps its own LayerNorm modules (same eps as the model)."""

    version = "1"
    foldable = False
    ln_like = True
    replaces_model_norm = False  # inside create_model the stock modules stay untouched

    def __init__(self, dim: int, *, eps: float = 1e-6, elementwise_affine: bool = True) -> None:
        super().__init__(dim, eps=eps, elementwise_affine=elementwise_affine)
