"""Architecture adapters: where the norms, their consumers and the stream producers sit.

Model surgery, deploy folding and the Pre-LN conversions are written once against this
small interface; each supported family (timm ViT/DeiT, timm Swin, HF GPT-2, HF LLaMA)
describes itself in one file. A model that contains a supported family as a submodule (a
detector's backbone) is handled through that submodule.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn


@dataclass(frozen=True)
class FoldSite:
    """A norm and the linear maps its per-channel affine eval form folds into."""

    norm: str
    consumers: tuple[str, ...] = ()   # Linear / HF Conv1D layers that read the norm's output
    after: str | None = None          # a conv whose output the norm normalizes (fold on its output side)
    stream: bool = True               # reads the residual stream (a Pre-LN conversion applies)


@dataclass(frozen=True)
class Producer:
    """A layer or parameter that writes into the residual stream."""

    name: str
    kind: str                         # linear | conv | conv1d | embedding | param
    layer_scale: str | None = None    # LayerScale applied to this producer's output, folded first


@dataclass(frozen=True)
class AttentionSite:
    """A block's attention module and the token layout it sees (for attention-variant surgery)."""

    block: str                        # path of the block that owns the attention module
    grid: tuple[int, int]             # the spatial token grid (rows, columns)
    attn: str = "attn"                # the block's attribute holding the attention module
    prefix_tokens: int = 0            # tokens before the grid (class, register, distillation tokens)
    stage: int | None = None          # hierarchical models: the stage (0-based) the block is in
    windowed: bool = False            # the attention runs inside local windows (Swin)


class Adapter:
    name = ""
    family = "vision"                 # vision | lm
    convertible = False               # supports the exact Pre-LN -> Pre-(C)RMSNorm conversion

    def matches(self, model: nn.Module) -> bool:
        raise NotImplementedError

    def fold_sites(self, model: nn.Module) -> list[FoldSite]:
        raise NotImplementedError

    def producers(self, model: nn.Module) -> list[Producer]:
        raise NotImplementedError(f"{self.name} has no Pre-LN conversion")

    def join_points(self, model: nn.Module) -> list[tuple[str, str]]:
        """(module, "pre"|"post"): where each stream write is complete, for the centered training form."""
        raise NotImplementedError(f"{self.name} has no Pre-LN conversion")

    def attention_sites(self, model: nn.Module) -> list[AttentionSite]:
        """Every attention module an attention variant may replace (default: none)."""
        return []

    def check_pre_ln(self, model: nn.Module) -> None:
        """Raise ``NotConvertible`` saying why the model is not a supported Pre-LN stack."""
        raise NotConvertible(f"{self.name} models are not supported by the Pre-LN conversions "
                             "(supported: timm ViT/DeiT and HF GPT-2)")

    def untie(self, model: nn.Module) -> None:
        """Give tied input/output embeddings their own weights (no-op by default)."""


class NotConvertible(ValueError):
    """The model is not a Pre-LN stack the exact conversions support; the message says why."""


def adapters() -> list[Adapter]:
    from suite.models.arch.gpt2 import GPT2Adapter
    from suite.models.arch.llama import LlamaAdapter
    from suite.models.arch.swin import SwinAdapter
    from suite.models.arch.vit import ViTAdapter
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


def is_norm_slot(module: nn.Module) -> bool:
    """False for an empty slot (``nn.Identity``), True for anything that normalizes."""
    return not isinstance(module, nn.Identity)
