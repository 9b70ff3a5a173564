"""``create_model``: a timm model (or a named LM config) with a variant swapped in."""
from __future__ import annotations

from typing import Any

import timm
import torch.nn as nn

from suite.errors import UsageError
from suite.surgery import swap_norms
from suite.variants import Variant, parse_variant

SUPPORTED_TIMM_PREFIXES = ("vit_", "deit_", "deit3_", "swin_")


def create_model(name: str, variant: str | Variant = "ln", *,
                 variant_kwargs: dict[str, Any] | None = None, **model_kwargs: Any) -> nn.Module:
    """Build ``name`` (timm ViT/DeiT/Swin, kwargs pass through to timm) with ``variant``.

    ``variant_kwargs`` go to the norm's constructor (e.g. ``{"total_steps": 1000}``).
    The model is randomly initialised (no weights are downloaded).
    """
    v = variant if isinstance(variant, Variant) else parse_variant(variant)
    if not name.startswith(SUPPORTED_TIMM_PREFIXES) or not timm.is_model(name):
        raise UsageError(f"unsupported model {name!r}: use a timm ViT/DeiT/Swin name "
                         f"(e.g. vit_tiny_patch16_224, deit_small_patch16_224, swin_tiny_patch4_window7_224)")
    if v.attention not in (None, "softmax"):
        from suite.variants import ATTENTION
        ATTENTION.get(v.attention)  # validates; attention surgery arrives with its registry entries
        raise UsageError(f"attention {v.attention!r} cannot be applied to {name!r} yet")
    model = timm.create_model(name, pretrained=False, **model_kwargs)
    swap_norms(model, v.norm_cls, variant_kwargs)
    model.normbench_variant = v.name  # type: ignore[attr-defined]
    return model


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
