"""Architecture adapters: where the norms, their consumers and the stream producers sit.

Model surgery, deploy folding and the Pre-LN conversions are written once against this
small interface (``base``); each supported family (timm ViT/DeiT, timm Swin, HF GPT-2, HF
LLaMA) describes itself in one file. A model that contains a supported family as a
submodule (a detector's backbone) is handled through that submodule.
"""
from __future__ import annotations

import torch.nn as nn

from suite.models.arch.base import (
    OUTPUT_NORM,
    QUERY_MAPS,
    Adapter,
    AttentionModule,
    AttentionSite,
    FoldSite,
    HeadNormSite,
    NotConvertible,
    OutputSite,
    Producer,
    has_module,
    is_norm_slot,
)
from suite.models.arch.gpt2 import GPT2Adapter
from suite.models.arch.llama import LlamaAdapter
from suite.models.arch.swin import SwinAdapter
from suite.models.arch.vit import ViTAdapter

__all__ = ["OUTPUT_NORM", "QUERY_MAPS", "Adapter", "AttentionModule", "AttentionSite", "FoldSite", "HeadNormSite",
           "NotConvertible", "OutputSite", "Producer", "adapted_parts", "adapters", "find_adapter", "has_module",
           "is_norm_slot"]


def adapters() -> list[Adapter]:
    return [ViTAdapter(), SwinAdapter(), GPT2Adapter(), LlamaAdapter()]


def find_adapter(model: nn.Module) -> Adapter | None:
    return next((a for a in adapters() if a.matches(model)), None)


def adapted_parts(model: nn.Module) -> list[tuple[str, nn.Module, Adapter]]:
    """The outermost submodules (the model itself, or e.g. a detector's backbone) an adapter describes."""
    adapter = find_adapter(model)
    if adapter is not None:
        return [("", model, adapter)]
    found: list[tuple[str, nn.Module, Adapter]] = []
    for name, module in model.named_modules():
        if not name or any(name.startswith(p + ".") for p, _, _ in found):
            continue
        adapter = find_adapter(module)
        if adapter is not None:
            found.append((name, module, adapter))
    return found
