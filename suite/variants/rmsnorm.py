"""RMSNorm and CRMSNorm modules, written for speed with stock PyTorch ops.

On CUDA ``F.rms_norm`` has a fused kernel. On CPU it is several times slower than
``F.layer_norm`` (measured on the development machine: 1.6 ms vs 0.37 ms at [32, 197, 192]),
while one ``torch.linalg.vector_norm`` reduction plus one multiply beats LayerNorm; so the
CPU path takes that route. Statistics are accumulated in at least float32.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _acc(x: torch.Tensor) -> torch.dtype:
    return torch.promote_types(x.dtype, torch.float32)


def rms_norm(x: torch.Tensor, eps: float, weight: torch.Tensor | None = None) -> torch.Tensor:
    """``x / sqrt(mean(x^2) + eps)`` over the last dim, times ``weight`` if given."""
    d = x.shape[-1]
    if x.is_cuda:
        return F.rms_norm(x, (d,), weight, eps)
    sq = torch.linalg.vector_norm(x, dim=-1, keepdim=True, dtype=_acc(x)).square()
    y = x * torch.rsqrt(sq * (1.0 / d) + eps).to(x.dtype)
    return y if weight is None else y * weight


def crms_norm(x: torch.Tensor, dim: int, eps: float) -> torch.Tensor:
    """CRMSNorm on the d-1 stored coordinates: ``x / sqrt((sum x^2 + (sum x)^2) / d + eps)``."""
    acc = _acc(x)
    sq = torch.linalg.vector_norm(x, dim=-1, keepdim=True, dtype=acc).square()
    s = x.sum(-1, keepdim=True, dtype=acc)
    return x * torch.rsqrt((sq + s * s) * (1.0 / dim) + eps).to(x.dtype)


class RMSNorm(nn.Module):
    """RMSNorm over the last dim, with an optional learnable gain (no bias)."""

    def __init__(self, dim: int, *, eps: float = 1e-6, elementwise_affine: bool = True) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps
        self.weight = nn.Parameter(torch.ones(dim)) if elementwise_affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.eps, self.weight)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}, affine={self.weight is not None}"


class CRMSNorm(nn.Module):
    """CRMSNorm for a zero-mean stream stored in its first d-1 coordinates (divisor d)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps  # dim is the full width d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return crms_norm(x, self.dim, self.eps)

    def extra_repr(self) -> str:
        return f"{self.dim} (stored {self.dim - 1}), eps={self.eps}"
