"""timm SwinTransformer: block norms, PatchMerging norm, patch-embed norm (after its conv), final norm."""
from __future__ import annotations

import torch.nn as nn

from suite.arch import Adapter, FoldSite, is_norm_slot

SLA_STAGES = (0, 1)  # SLAB-Swin: global SLA in stages 1-2, window softmax in stages 3-4


def _sla_block_class() -> type:
    from timm.models.swin_transformer import SwinTransformerBlock

    class SwinSLABlock(SwinTransformerBlock):
        """A Swin block whose attention runs globally over the stage map (no windows, no shift)."""

        def _attn(self, x):  # type: ignore[override]
            b, h, w, c = x.shape
            return self.attn(x.reshape(b, h * w, c)).reshape(b, h, w, c)

    SwinSLABlock.__module__ = __name__
    SwinSLABlock.__qualname__ = "SwinSLABlock"
    return SwinSLABlock


SwinSLABlock = _sla_block_class()


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
                if not isinstance(blk, SwinSLABlock) and (h % blk.window_size[0] or w % blk.window_size[1]):
                    # the block pads after norm1; a folded bias would leak into the padded tokens
                    raise NotImplementedError(f"{p}: resolution {h}x{w} is padded to the window "
                                              f"{tuple(blk.window_size)}; use an input size divisible by it")
                sites.append(FoldSite(f"{p}.norm1", (f"{p}.attn.qkv",)))
                sites.append(FoldSite(f"{p}.norm2", (f"{p}.mlp.fc1",)))
        if is_norm_slot(model.norm):
            if getattr(model.head, "global_pool", None) is None or model.head.global_pool.pool_type not in ("avg", ""):
                raise NotImplementedError("the final norm folds into the head only through average pooling")
            sites.append(FoldSite("norm", ("head.fc",)))
        return sites

    def apply_sla(self, model: nn.Module, **kwargs: object) -> dict:
        """SLAB-Swin: stages 1-2 get global SLA over the stage map; stages 3-4 keep window softmax."""
        from suite.variants.attention.sla import SimplifiedLinearAttention
        replaced = 0
        for s in SLA_STAGES:
            if s >= len(model.layers):
                continue
            for blk in model.layers[s].blocks:
                old = blk.attn
                dim = old.qkv.in_features
                blk.attn = SimplifiedLinearAttention(dim, old.num_heads, tuple(blk.input_resolution),
                                                     qkv_bias=old.qkv.bias is not None).to(old.qkv.weight.device)
                blk.__class__ = SwinSLABlock
                replaced += 1
        return {"attention": "sla", "blocks": replaced, "stages": [s + 1 for s in SLA_STAGES if s < len(model.layers)],
                "convention": "slab-swin (global SLA in stages 1-2, window softmax in 3-4)"}
