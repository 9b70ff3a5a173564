"""``bn``: plain BatchNorm per channel over tokens, the negative control.

The UN and SLAB papers both motivate against it: replacing LN by BN in a Transformer
trains unstably or loses accuracy. Momentum 0.1, eps 1e-5, affine. Foldable at deploy.
"""
from __future__ import annotations

import torch.nn as nn

from suite.variants import register_norm
from suite.variants.base import Norm, TrainingContext
from suite.variants.tokenbn import TokenBatchNorm, set_sync


@register_norm("bn")
class BatchNormTokens(TokenBatchNorm, Norm):
    """BatchNorm over tokens (momentum 0.1, eps 1e-5): the negative control; folded at deploy."""

    version = "1"
    foldable = True
    ln_like = False
    replaces_model_norm = True

    @classmethod
    def before_training(cls, model: nn.Module, ctx: TrainingContext) -> None:
        set_sync(model, ctx.sync_bn)  # --sync-bn: statistics over every process of a DDP cell

    def __init__(self, dim: int, *, eps: float = 1e-5, momentum: float | None = 0.1) -> None:
        super().__init__(dim, eps=eps, momentum=momentum)
