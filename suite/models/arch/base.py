"""The adapter interface: what an architecture family tells surgery, folding and the conversions."""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

#: the child that holds a sub-layer's output norm (a placement plugin adds it, and a hook of its own applies it)
OUTPUT_NORM = "out_norm"
#: an HF attention module's attribute: how many query/key maps each head holds (differential attention: 2)
QUERY_MAPS = "normbench_query_maps"


@dataclass(frozen=True)
class FoldSite:
    """A norm and the linear maps its per-channel affine eval form folds into."""

    norm: str
    consumers: tuple[str, ...] = ()   # Linear / HF Conv1D layers that read the norm's output
    after: str | None = None          # a conv/linear whose output the norm normalizes (fold on its output side)
    stream: bool = True               # reads the residual stream (a Pre-LN conversion applies)
    offset: int = 0                   # with ``after``: the first output channel of ``after`` the norm reads
    groups: int = 1                   # with ``after``: consecutive groups (heads) the norm's affine repeats over


@dataclass(frozen=True)
class OutputSite:
    """A sub-layer (attention or MLP) whose output joins the residual stream."""

    module: str                       # path of the sub-layer module
    last: str                         # its last linear map: the module's output is this map's output (eval mode)
    width: int                        # channels of the output
    layer: int                        # 1-based index of the block the sub-layer is in
    tuple_output: bool = False        # the module returns a tuple whose first element is the output (HF attention)


@dataclass(frozen=True)
class HeadNormSite:
    """Where a per-head query or key norm sits in one attention module."""

    norm: str                         # path of the norm slot
    proj: str                         # the projection whose output carries the queries (keys)
    offset: int                       # first channel of the queries (keys) in the projection's output
    heads: int                        # heads (key heads for keys under grouped-query attention)
    head_dim: int
    native: bool                      # True: the module's own forward applies the slot (timm q_norm/k_norm);
                                      # False: the slot is a child of ``proj`` and a forward hook applies it


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


@dataclass(frozen=True)
class AttentionModule:
    """One self-attention module and its projections (for the attention plugins that keep the model's
    projections and change what happens between them: ``diff``, ``gated``, ``sigmoid``)."""

    path: str                         # the attention module
    depth: int                        # 0-based index of its block
    heads: int                        # query heads
    kv_heads: int                     # key/value heads (fewer under grouped-query attention)
    head_dim: int
    query_proj: str                   # the projection whose output holds the queries (timm qkv, GPT-2 c_attn)
    out_proj: str                     # the output projection: the heads' merged output is its input
    width: int                        # channels of the block input the attention reads
    rope: bool = False                # queries and keys are rotated (RoPE) before the scores
    context: int | None = None        # the longest sequence the model was built for (causal LMs)


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

    def attention_modules(self, model: nn.Module) -> list[AttentionModule]:
        """Every self-attention module with its projections (default: none; raise ``NotImplementedError``
        naming a module the attention plugins cannot handle)."""
        return []

    def norm_layers(self, model: nn.Module) -> dict[str, int]:
        """Norms that read the residual stream at a block's sub-layer inputs -> 1-based block index."""
        return {}

    def output_sites(self, model: nn.Module) -> list[OutputSite]:
        """Every sub-layer whose output joins the residual stream (default: none; raise to say why)."""
        return []

    def head_norm_sites(self, model: nn.Module) -> list[HeadNormSite]:
        """Per-head query and key norm slots of every attention module (default: none; raise
        ``NotImplementedError`` naming an attention module that has no such slot)."""
        return []

    def placed_fold_sites(self, model: nn.Module) -> list[FoldSite]:
        """Fold sites of the norms that placements and attention variants add, where present: a sub-layer's
        output norm (into its last linear map) and per-head query/key norms (into their projection)."""
        sites = []
        try:
            outputs = self.output_sites(model)
        except NotImplementedError:
            outputs = []
        for s in outputs:
            name = f"{s.module}.{OUTPUT_NORM}"
            if has_module(model, name):
                sites.append(FoldSite(name, after=s.last, stream=False))
        try:
            heads = self.head_norm_sites(model)
        except NotImplementedError:
            heads = []
        for h in heads:
            if has_module(model, h.norm) and is_norm_slot(model.get_submodule(h.norm)):
                sites.append(FoldSite(h.norm, after=h.proj, stream=False, offset=h.offset, groups=h.heads))
        return sites

    def check_pre_ln(self, model: nn.Module) -> None:
        """Raise ``NotConvertible`` saying why the model is not a supported Pre-LN stack."""
        raise NotConvertible(f"{self.name} models are not supported by the Pre-LN conversions "
                             "(supported: timm ViT/DeiT and HF GPT-2)")

    def untie(self, model: nn.Module) -> None:
        """Give tied input/output embeddings their own weights (no-op by default)."""


class NotConvertible(ValueError):
    """The model is not a Pre-LN stack the exact conversions support; the message says why."""


def has_module(model: nn.Module, name: str) -> bool:
    try:
        model.get_submodule(name)
    except AttributeError:
        return False
    return True


def is_norm_slot(module: nn.Module) -> bool:
    """False for an empty slot (``nn.Identity``), True for anything that normalizes."""
    return not isinstance(module, nn.Identity)
