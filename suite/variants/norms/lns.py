"""``lns``: LayerNorm Scaling (Sun, Song, Li, Yin, Zheng, Liu, "The Curse of Depth in Large Language
Models", NeurIPS 2025, arXiv 2502.05795; code: ``lmsdss/LayerNorm-Scaling``).

The output of the LayerNorm (or RMSNorm) in block ``l`` is multiplied by ``1 / sqrt(l)``, which
keeps the variance of deep Pre-LN blocks' outputs from growing with depth.

Conventions, from the reference code (``peft_pretraining/modeling_llama.py``, ``NORM_TYPE=LNS``):
``l`` counts blocks from 1 (the scale is ``1 / sqrt(layer_index + 1)`` with a 0-based index, so
the first block is unscaled); both norms of a block (before attention and before the MLP) get
the same ``l``; the final norm after the last block is not scaled. The LLaMA models of the paper
use RMSNorm; in a model with RMSNorm the suite scales an RMSNorm (``base="rms"``), elsewhere a
LayerNorm. The depth comes from ``placement_kwargs(..., layer=l)``, which the model surgery
fills from the architecture adapter; a norm outside the blocks (or one that does not read the
residual stream, such as a per-head query/key norm) gets ``layer=None``: scale 1.

The reference LNS run also leaves out the scaled initialisation of the output projections; the
suite keeps each model's own initialisation.

Deploy: the constant folds into the norm's affine (``deploy_form``: a plain LayerNorm/RMSNorm
with ``g / sqrt(l)`` and ``b / sqrt(l)``), so LNS costs at inference what LN costs.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from suite.variants import register_norm
from suite.variants.base import Norm
from suite.variants.rmsnorm import RMSNorm, rms_norm


@register_norm("lns")
class LayerNormScaling(Norm):
    """LayerNorm Scaling: the norm output in block l times 1/sqrt(l), final norm unscaled (Sun et al., NeurIPS 2025)."""

    version = "1"
    ln_like = True  # inherits the eps of the LayerNorm it replaces

    def __init__(self, dim: int, *, eps: float = 1e-6, layer: int | None = None, base: str = "ln") -> None:
        super().__init__()
        if base not in ("ln", "rms"):
            raise ValueError(f"lns base must be 'ln' or 'rms', got {base!r}")
        if layer is not None and layer < 1:
            raise ValueError(f"lns layer counts blocks from 1, got {layer}")
        self.dim, self.eps, self.layer, self.base = dim, eps, layer, base
        self.scale = 1.0 if layer is None else 1.0 / math.sqrt(layer)
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if base == "ln" else None

    @classmethod
    def placement_kwargs(cls, family: str, replaced: nn.Module, layer: int | None = None) -> dict[str, object]:
        out: dict[str, object] = {"layer": layer}
        if type(replaced).__name__.endswith("RMSNorm"):
            out["base"] = "rms"
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.base == "ln":
            y = nn.functional.layer_norm(x, (self.dim,), self.weight, self.bias, self.eps)
        else:
            y = rms_norm(x, self.eps, self.weight)
        return y * self.scale

    @torch.no_grad()
    def deploy_form(self) -> nn.Module:
        """The same function as one LayerNorm (RMSNorm) whose affine carries the scale."""
        if self.base == "ln":
            ln = nn.LayerNorm(self.dim, eps=self.eps, device=self.weight.device, dtype=self.weight.dtype)
            ln.weight.copy_(self.weight.double() * self.scale)
            ln.bias.copy_(self.bias.double() * self.scale)  # type: ignore[union-attr]
            return ln.eval()
        rms = RMSNorm(self.dim, eps=self.eps).to(device=self.weight.device, dtype=self.weight.dtype)
        rms.weight.copy_(self.weight.double() * self.scale)  # type: ignore[union-attr]
        return rms.eval()

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}, layer={self.layer}, scale={self.scale:.6g}, base={self.base}"
