"""timm VisionTransformer (ViT, DeiT, DeiT distilled): cls token or average pooling, LayerScale."""
from __future__ import annotations

import torch.nn as nn

from suite.models.arch.base import (
    Adapter,
    AttentionModule,
    AttentionSite,
    FoldSite,
    HeadNormSite,
    NotConvertible,
    OutputSite,
    Producer,
    is_norm_slot,
)

LINEAR_POOLS = ("token", "avg", "")


class ViTAdapter(Adapter):
    name = "timm ViT/DeiT"
    family = "vision"
    convertible = True

    def matches(self, model: nn.Module) -> bool:
        from timm.models.vision_transformer import VisionTransformer
        return isinstance(model, VisionTransformer)

    def heads(self, model: nn.Module) -> tuple[str, ...]:
        names = ("head", "head_dist")
        return tuple(n for n in names if isinstance(getattr(model, n, None), nn.Linear))

    def fold_sites(self, model: nn.Module) -> list[FoldSite]:
        sites = []
        for i, blk in enumerate(model.blocks):
            if not hasattr(blk.attn, "qkv") or not hasattr(blk.mlp, "fc1"):
                raise NotImplementedError(f"blocks.{i}: folding needs attn.qkv and mlp.fc1 ({type(blk).__name__})")
            gate = (f"blocks.{i}.attn.gate",) if isinstance(getattr(blk.attn, "gate", None), nn.Linear) else ()
            sites += [FoldSite(f"blocks.{i}.norm1", (f"blocks.{i}.attn.qkv", *gate)),
                      FoldSite(f"blocks.{i}.norm2", (f"blocks.{i}.mlp.fc1",))]
        final = [n for n in ("norm", "fc_norm") if is_norm_slot(getattr(model, n))]
        if final:
            if len(final) > 1 or model.attn_pool is not None or model.global_pool not in LINEAR_POOLS:
                raise NotImplementedError(f"cannot fold the final norm through pooling {model.global_pool!r} "
                                          f"(attention pool: {model.attn_pool is not None}, norms: {final})")
            sites.append(FoldSite(final[0], self.heads(model)))
        if is_norm_slot(model.patch_embed.norm):
            sites.append(FoldSite("patch_embed.norm", after="patch_embed.proj", stream=False))
        if is_norm_slot(model.norm_pre):
            raise NotImplementedError("norm_pre (a norm that writes the stream) cannot be folded")
        return sites

    def producers(self, model: nn.Module) -> list[Producer]:
        out = [Producer("patch_embed.proj", "conv")]
        out += [Producer(n, "param") for n in ("pos_embed", "cls_token", "reg_token", "dist_token")
                if getattr(model, n, None) is not None]
        for i, blk in enumerate(model.blocks):
            out.append(Producer(f"blocks.{i}.attn.proj", "linear",
                                f"blocks.{i}.ls1" if not isinstance(blk.ls1, nn.Identity) else None))
            out.append(Producer(f"blocks.{i}.mlp.fc2", "linear",
                                f"blocks.{i}.ls2" if not isinstance(blk.ls2, nn.Identity) else None))
        return out

    def join_points(self, model: nn.Module) -> list[tuple[str, str]]:
        # the embedding sum enters pos_drop; each branch enters its drop-path; centering there
        # equals centering the producers' weights (drop-path scales a whole sample, keeping the mean 0)
        out = [("pos_drop", "pre")]
        for i in range(len(model.blocks)):
            out += [(f"blocks.{i}.drop_path1", "pre"), (f"blocks.{i}.drop_path2", "pre")]
        return out

    def attention_sites(self, model: nn.Module) -> list[AttentionSite]:
        grid = tuple(model.patch_embed.grid_size)
        return [AttentionSite(f"blocks.{i}", grid, prefix_tokens=model.num_prefix_tokens)
                for i in range(len(model.blocks))]

    def attention_modules(self, model: nn.Module) -> list[AttentionModule]:
        from timm.layers import Attention, DiffAttention
        out = []
        for i, blk in enumerate(model.blocks):
            attn, p = blk.attn, f"blocks.{i}.attn"
            if not isinstance(attn, (Attention, DiffAttention)):
                raise NotImplementedError(f"{p} is {type(attn).__name__}, not timm's Attention")
            width = attn.qkv.out_features // 3
            heads = width // (2 * attn.head_dim) if isinstance(attn, DiffAttention) else attn.num_heads
            out.append(AttentionModule(p, i, heads, heads, width // heads, f"{p}.qkv", f"{p}.proj",
                                       attn.qkv.in_features))
        return out

    def norm_layers(self, model: nn.Module) -> dict[str, int]:
        return {f"blocks.{i}.{n}": i + 1 for i in range(len(model.blocks)) for n in ("norm1", "norm2")}

    def output_sites(self, model: nn.Module) -> list[OutputSite]:
        # the attention output enters ls1 -> drop_path1 -> residual add; the MLP output ls2 -> drop_path2
        from timm.models.vision_transformer import Block
        out = []
        for i, blk in enumerate(model.blocks):
            p = f"blocks.{i}"
            if type(blk) is not Block or not isinstance(getattr(blk.attn, "proj", None), nn.Linear) \
                    or not isinstance(getattr(blk.mlp, "fc2", None), nn.Linear):
                raise NotImplementedError(f"{p} is {type(blk).__name__} ({type(blk.attn).__name__}, "
                                          f"{type(blk.mlp).__name__}): sub-layer outputs are known for Pre-LN "
                                          "Blocks whose attention ends in proj and whose MLP ends in fc2")
            out += [OutputSite(f"{p}.attn", f"{p}.attn.proj", blk.attn.proj.out_features, i + 1),
                    OutputSite(f"{p}.mlp", f"{p}.mlp.fc2", blk.mlp.fc2.out_features, i + 1)]
        return out

    def head_norm_sites(self, model: nn.Module) -> list[HeadNormSite]:
        # timm Attention: qkv -> [B, N, 3, heads, head_dim]; q_norm / k_norm act on the head_dim axis
        out = []
        for i, blk in enumerate(model.blocks):
            attn, p = blk.attn, f"blocks.{i}.attn"
            if not (hasattr(attn, "q_norm") and hasattr(attn, "k_norm") and isinstance(getattr(attn, "qkv", None),
                                                                                       nn.Linear)):
                raise NotImplementedError(f"{p} is {type(attn).__name__}, which has no per-head query/key norm slots")
            width = attn.qkv.out_features // 3  # differential attention: twice the heads at half the width
            heads = width // attn.head_dim
            out += [HeadNormSite(f"{p}.q_norm", f"{p}.qkv", 0, heads, attn.head_dim, native=True),
                    HeadNormSite(f"{p}.k_norm", f"{p}.qkv", width, heads, attn.head_dim, native=True)]
        return out

    def check_pre_ln(self, model: nn.Module) -> None:
        from timm.models.vision_transformer import Block
        for i, blk in enumerate(model.blocks):
            if type(blk) is not Block:
                raise NotConvertible(f"blocks.{i} is {type(blk).__name__}, not a Pre-LN Block "
                                     "(Post-LN or parallel blocks read the stream without a LayerNorm)")
            if not (isinstance(blk.norm1, nn.LayerNorm) and isinstance(blk.norm2, nn.LayerNorm)):
                raise NotConvertible(f"blocks.{i}: the stream is read by {type(blk.norm1).__name__}, not LayerNorm")
        if is_norm_slot(model.norm_pre) or is_norm_slot(model.patch_embed.norm):
            raise NotConvertible("a norm before the blocks (norm_pre / patch_embed.norm) writes the stream itself")
        if model.attn_pool is not None or model.global_pool not in LINEAR_POOLS:
            raise NotConvertible(f"pooling {model.global_pool!r} between the final LayerNorm and the head "
                                 "is not linear")
        final = [n for n in ("norm", "fc_norm") if is_norm_slot(getattr(model, n))]
        if len(final) != 1 or not isinstance(getattr(model, final[0]), nn.LayerNorm):
            raise NotConvertible(f"expected one final LayerNorm (norm or fc_norm), found {final}")
        self.fold_sites(model)
