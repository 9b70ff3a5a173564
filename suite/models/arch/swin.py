"""timm SwinTransformer: block norms, PatchMerging norm, patch-embed norm (after its conv), final norm."""
from __future__ import annotations

from typing import Any

import torch.nn as nn

from suite.models.arch.base import Adapter, AttentionSite, FoldSite, is_norm_slot


class SwinAdapter(Adapter):
    name = "timm Swin"
    family = "vision"

    def matches(self, model: nn.Module) -> bool:
        from timm.models.swin_transformer import SwinTransformer
        return isinstance(model, SwinTransformer)

    def fold_sites(self, model: nn.Module) -> list[FoldSite]:
        sites = []
        if is_norm_slot(model.patch_embed.norm):
            sites.append(FoldSite("patch_embed.norm", after="patch_embed.proj", stream=False))
        for s, stage in enumerate(model.layers):
            if is_norm_slot(getattr(stage.downsample, "norm", nn.Identity())):
                sites.append(FoldSite(f"layers.{s}.downsample.norm", (f"layers.{s}.downsample.reduction",)))
            for b, blk in enumerate(stage.blocks):
                p = f"layers.{s}.blocks.{b}"
                h, w = blk.input_resolution if hasattr(blk, "input_resolution") else (0, 0)
                if not getattr(blk, "global_attention", False) and (h % blk.window_size[0] or w % blk.window_size[1]):
                    # the block pads after norm1 (windowed attention only; a block whose attention
                    # was made global says so with ``global_attention``); a folded bias would leak
                    # into the padded tokens
                    raise NotImplementedError(f"{p}: resolution {h}x{w} is padded to the window "
                                              f"{tuple(blk.window_size)}; use an input size divisible by it")
                sites.append(FoldSite(f"{p}.norm1", (f"{p}.attn.qkv",)))
                sites.append(FoldSite(f"{p}.norm2", (f"{p}.mlp.fc1",)))
        if is_norm_slot(model.norm):
            pool: Any = getattr(model.head, "global_pool", None)
            if pool is None or pool.pool_type not in ("avg", ""):
                raise NotImplementedError("the final norm folds into the head only through average pooling")
            sites.append(FoldSite("norm", ("head.fc",)))
        return sites

    def norm_layers(self, model: nn.Module) -> dict[str, int]:
        out, k = {}, 0
        for s, stage in enumerate(model.layers):
            for b in range(len(stage.blocks)):
                k += 1
                out.update({f"layers.{s}.blocks.{b}.norm1": k, f"layers.{s}.blocks.{b}.norm2": k})
        return out

    def attention_sites(self, model: nn.Module) -> list[AttentionSite]:
        return [AttentionSite(f"layers.{s}.blocks.{b}", tuple(blk.input_resolution), stage=s, windowed=True)
                for s, stage in enumerate(model.layers) for b, blk in enumerate(stage.blocks)]
