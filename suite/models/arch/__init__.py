"""Architecture adapters: where the norms, their consumers and the stream producers sit.

Model surgery, deploy folding and the Pre-LN conversions are written once against this
small interface (``base``); each supported family (timm ViT/DeiT, timm Swin, HF GPT-2, HF
LLaMA) describes itself in one file. A model that contains a supported family as a
submodule (a detector's backbone) is handled through that submodule.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch.nn as nn

from suite.errors import NotApplicable
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

__all__ = [
    "OUTPUT_NORM",
    "QUERY_MAPS",
    "SUPPORTED",
    "Adapter",
    "AttentionModule",
    "AttentionSite",
    "FoldSite",
    "HeadNormSite",
    "NotConvertible",
    "OutputSite",
    "Producer",
    "adapted_parts",
    "adapters",
    "find_adapter",
    "has_module",
    "is_norm_slot",
    "sites_of",
]

#: the families whose adapters describe sub-layer outputs, per-head query/key slots and attention modules
SUPPORTED = "timm ViT/DeiT, HF GPT-2, HF LLaMA"
T = TypeVar("T")


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


def sites_of(model: nn.Module, plugin: str, describe: Callable[[Adapter, nn.Module], list[T]],
             why: str = "") -> tuple[list[T], Adapter]:
    """What ``describe(adapter, model)`` lists for ``model`` (its adapter's sites for a plugin's surgery),
    and the adapter; ``NotApplicable`` naming ``plugin`` where there is no adapter, where it lists
    nothing, or where it raises ``NotImplementedError`` (its message, then ``why``)."""
    adapter = find_adapter(model)
    try:
        found = describe(adapter, model) if adapter is not None else []
    except NotImplementedError as e:
        raise NotApplicable(f"{plugin} is not applicable: {e}{why}") from None
    if adapter is None or not found:
        what = adapter.name if adapter is not None else type(model).__name__
        raise NotApplicable(f"{plugin} has no surgery for {what} (supported: {SUPPORTED})")
    return found, adapter
