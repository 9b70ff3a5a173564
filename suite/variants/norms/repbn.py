"""``repbn``: re-parameterized BatchNorm, ``RepBN(x) = BN(x) + eta * x`` (SLAB, Guo et al., ICML 2024).

``eta`` is one learnable scalar (init 1 for vision). For the language-model placement the
paper initialises eta, the BN weight and the BN bias to 0 (``eta_init``, ``bn_weight_init``,
``bn_bias_init``; the LM task passes them through ``placement_kwargs``). Eval form
``a * x + b`` with ``a = g / sqrt(rv + eps) + eta``, ``b = beta - g * rm / sqrt(rv + eps)``.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from suite.variants import register_norm
from suite.variants.base import Norm, TrainingContext
from suite.variants.tokenbn import TokenBatchNorm, set_sync

LM_INIT = {"eta_init": 0.0, "bn_weight_init": 0.0, "bn_bias_init": 0.0}


@register_norm("repbn")
class RepBN(Norm):
    """RepBN: BatchNorm over tokens plus a learnable scalar eta times the input; folded at deploy."""

    version = "1"
    foldable = True
    ln_like = False
    replaces_model_norm = True

    @classmethod
    def before_training(cls, model: nn.Module, ctx: TrainingContext) -> None:
        set_sync(model, ctx.sync_bn)  # --sync-bn: statistics over every process of a DDP cell

    def __init__(self, dim: int, *, eps: float = 1e-5, momentum: float | None = 0.1, eta_init: float = 1.0,
                 bn_weight_init: float = 1.0, bn_bias_init: float = 0.0) -> None:
        super().__init__()
        self.bn = TokenBatchNorm(dim, eps=eps, momentum=momentum)
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.constant_(self.bn.bias, bn_bias_init)
        self.eta = nn.Parameter(torch.tensor(float(eta_init)))

    @classmethod
    def placement_kwargs(cls, family: str, replaced: nn.Module, layer: int | None = None) -> dict[str, object]:
        return dict(LM_INIT) if family == "lm" else {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x) + self.eta * x

    def affine_form(self) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self.bn.affine_form()
        return a + self.eta, b
