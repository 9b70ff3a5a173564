"""``softmax``: the model's own attention, run through fused scaled-dot-product attention."""
from __future__ import annotations

from typing import Any, cast

import torch.nn as nn

from suite.variants import register_attention


@register_attention("softmax")
class SoftmaxAttention:
    """The model's own softmax attention, through F.scaled_dot_product_attention (the baseline)."""

    version = "1"
    causal_ok = True

    @classmethod
    def apply(cls, model: nn.Module, kwargs: dict) -> dict:
        """Make sure every timm attention module takes the fused SDPA path; returns what it did."""
        fused = 0
        for m in model.modules():
            if hasattr(m, "fused_attn"):
                cast(Any, m).fused_attn = True  # a bool: Module.__setattr__ is typed for tensors and modules
                fused += 1
        return {"attention": "softmax", "fused_modules": fused}
