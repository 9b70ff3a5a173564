"""The adapter interface: what an architecture family tells surgery, folding and the conversions."""
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


def is_norm_slot(module: nn.Module) -> bool:
    """False for an empty slot (``nn.Identity``), True for anything that normalizes."""
    return not isinstance(module, nn.Identity)
