"""``rms``: RMSNorm swapped in for LayerNorm and trained from scratch (not equivalent to LN).

Zhang & Sennrich, "Root Mean Square Layer Normalization", NeurIPS 2019:
``y = g * x / sqrt(mean_c(x^2) + eps)`` (``suite.variants.rmsnorm``: fused on CUDA, fast path on CPU).
"""
from __future__ import annotations

from suite.variants import register_norm
from suite.variants.rmsnorm import RMSNorm as _RMSNorm


@register_norm("rms")
class RMSNorm(_RMSNorm):
    """RMSNorm y = g * x / sqrt(mean(x^2) + eps), trained from scratch (NOT equivalent to LN)."""

    version = "1"
    foldable = False
    ln_like = True
    replaces_model_norm = True

    def __init__(self, dim: int, *, eps: float = 1e-6, elementwise_affine: bool = True) -> None:
        super().__init__(dim, eps=eps, elementwise_affine=elementwise_affine)
