"""HF GPT-2 (``GPT2LMHeadModel``): Pre-LN, ``Conv1D`` layers storing ``[in, out]``, tied embeddings."""
from __future__ import annotations

from typing import cast

import torch
import torch.nn as nn

from suite.models.arch.base import (
    QUERY_MAPS,
    Adapter,
    AttentionModule,
    FoldSite,
    HeadNormSite,
    NotConvertible,
    OutputSite,
    Producer,
    has_module,
)


class GPT2Adapter(Adapter):
    name = "HF GPT-2"
    family = "lm"
    convertible = True

    def matches(self, model: nn.Module) -> bool:
        from transformers import GPT2LMHeadModel
        return isinstance(model, GPT2LMHeadModel)

    def fold_sites(self, model: nn.Module) -> list[FoldSite]:
        sites = []
        for i in range(len(model.transformer.h)):
            p = f"transformer.h.{i}"
            gate = (f"{p}.attn.gate",) if has_module(model, f"{p}.attn.gate") else ()
            sites += [FoldSite(f"{p}.ln_1", (f"{p}.attn.c_attn", *gate)), FoldSite(f"{p}.ln_2", (f"{p}.mlp.c_fc",))]
        return sites + [FoldSite("transformer.ln_f", ("lm_head",))]

    def producers(self, model: nn.Module) -> list[Producer]:
        out = [Producer("transformer.wte", "embedding"), Producer("transformer.wpe", "embedding")]
        for i in range(len(model.transformer.h)):
            p = f"transformer.h.{i}"
            out += [Producer(f"{p}.attn.c_proj", "conv1d"), Producer(f"{p}.mlp.c_proj", "conv1d")]
        return out

    def join_points(self, model: nn.Module) -> list[tuple[str, str]]:
        out = [("transformer.drop", "pre")]
        for i in range(len(model.transformer.h)):
            out += [(f"transformer.h.{i}.attn.resid_dropout", "post"), (f"transformer.h.{i}.mlp.dropout", "post")]
        return out

    def attention_modules(self, model: nn.Module) -> list[AttentionModule]:
        self._no_cross_attention(model)
        cfg = model.config
        return [AttentionModule(f"transformer.h.{i}.attn", i, blk.attn.num_heads, blk.attn.num_heads,
                                blk.attn.head_dim, f"transformer.h.{i}.attn.c_attn", f"transformer.h.{i}.attn.c_proj",
                                cfg.hidden_size, context=cfg.n_positions) for i, blk in enumerate(model.transformer.h)]

    def norm_layers(self, model: nn.Module) -> dict[str, int]:
        return {f"transformer.h.{i}.{n}": i + 1 for i in range(len(model.transformer.h)) for n in ("ln_1", "ln_2")}

    def output_sites(self, model: nn.Module) -> list[OutputSite]:
        # GPT2Block: attn(...) returns (output, weights) and the output is added to the residual;
        # the attention ends in c_proj -> resid_dropout, the MLP in c_proj -> dropout
        self._no_cross_attention(model)
        d = model.config.hidden_size
        out = []
        for i in range(len(model.transformer.h)):
            p = f"transformer.h.{i}"
            out += [OutputSite(f"{p}.attn", f"{p}.attn.c_proj", d, i + 1, tuple_output=True),
                    OutputSite(f"{p}.mlp", f"{p}.mlp.c_proj", d, i + 1)]
        return out

    def head_norm_sites(self, model: nn.Module) -> list[HeadNormSite]:
        # c_attn -> [q | k | v], each [B, N, heads * head_dim] viewed head-major as [B, N, heads, head_dim]
        self._no_cross_attention(model)
        out = []
        for i, blk in enumerate(model.transformer.h):
            a, p = blk.attn, f"transformer.h.{i}.attn.c_attn"
            maps = int(getattr(a, QUERY_MAPS, 1))  # differential attention: two maps per head, each its own norm
            heads, width = a.num_heads * maps, a.head_dim // maps
            out += [HeadNormSite(f"{p}.q_norm", p, 0, heads, width, native=False),
                    HeadNormSite(f"{p}.k_norm", p, a.embed_dim, heads, width, native=False)]
        return out

    def _no_cross_attention(self, model: nn.Module) -> None:
        if getattr(model.config, "add_cross_attention", False):
            raise NotImplementedError("GPT-2 with cross-attention: its blocks have a third sub-layer this suite "
                                      "does not describe")

    def check_pre_ln(self, model: nn.Module) -> None:
        if getattr(model.config, "add_cross_attention", False):
            raise NotConvertible("GPT-2 with cross-attention reads an encoder stream without a LayerNorm")
        for name, _ in model.named_modules():
            if name.endswith(("ln_1", "ln_2", "ln_f")) and not isinstance(model.get_submodule(name), nn.LayerNorm):
                raise NotConvertible(f"{name} is {type(model.get_submodule(name)).__name__}, not LayerNorm")

    def untie(self, model: nn.Module) -> None:
        if model.lm_head.weight is model.transformer.wte.weight:
            model.lm_head.weight = nn.Parameter(cast(torch.Tensor, model.transformer.wte.weight).detach().clone())
        model.config.tie_word_embeddings = False
