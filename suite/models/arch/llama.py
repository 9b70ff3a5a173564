"""HF LLaMA (``LlamaForCausalLM``): RMSNorm before attention and MLP, final norm, lm_head."""
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
    OutputSite,
    has_module,
)


class LlamaAdapter(Adapter):
    name = "HF LLaMA"
    family = "lm"

    def matches(self, model: nn.Module) -> bool:
        from transformers import LlamaForCausalLM
        return isinstance(model, LlamaForCausalLM)

    def fold_sites(self, model: nn.Module) -> list[FoldSite]:
        sites = []
        for i in range(len(model.model.layers)):
            p = f"model.layers.{i}"
            gate = (f"{p}.self_attn.gate",) if has_module(model, f"{p}.self_attn.gate") else ()
            sites += [FoldSite(f"{p}.input_layernorm", (*(f"{p}.self_attn.{n}_proj" for n in "qkv"), *gate)),
                      FoldSite(f"{p}.post_attention_layernorm", (f"{p}.mlp.gate_proj", f"{p}.mlp.up_proj"))]
        return sites + [FoldSite("model.norm", ("lm_head",))]

    def attention_modules(self, model: nn.Module) -> list[AttentionModule]:
        cfg = model.config
        return [AttentionModule(f"model.layers.{i}.self_attn", i, cfg.num_attention_heads, cfg.num_key_value_heads,
                                layer.self_attn.head_dim, f"model.layers.{i}.self_attn.q_proj",
                                f"model.layers.{i}.self_attn.o_proj", cfg.hidden_size, rope=True,
                                context=cfg.max_position_embeddings) for i, layer in enumerate(model.model.layers)]

    def norm_layers(self, model: nn.Module) -> dict[str, int]:
        return {f"model.layers.{i}.{n}": i + 1 for i in range(len(model.model.layers))
                for n in ("input_layernorm", "post_attention_layernorm")}

    def output_sites(self, model: nn.Module) -> list[OutputSite]:
        # LlamaDecoderLayer: self_attn(...) returns (output, weights), ending in o_proj; the MLP ends in down_proj
        d = model.config.hidden_size
        out = []
        for i in range(len(model.model.layers)):
            p = f"model.layers.{i}"
            out += [OutputSite(f"{p}.self_attn", f"{p}.self_attn.o_proj", d, i + 1, tuple_output=True),
                    OutputSite(f"{p}.mlp", f"{p}.mlp.down_proj", d, i + 1)]
        return out

    def head_norm_sites(self, model: nn.Module) -> list[HeadNormSite]:
        # q_proj / k_proj outputs are viewed head-major as [..., heads, head_dim] before RoPE; the norms
        # go on the projections' outputs, so they act before the rotary embedding (as in Qwen3)
        cfg = model.config
        heads, kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        out = []
        for i, layer in enumerate(model.model.layers):
            p, hd = f"model.layers.{i}.self_attn", layer.self_attn.head_dim
            if getattr(layer.self_attn, QUERY_MAPS, 1) != 1:
                raise NotImplementedError(f"{p} runs differential attention, whose two rotary maps per head are not "
                                          "contiguous channel groups a per-head norm could act on")
            out += [HeadNormSite(f"{p}.q_proj.head_norm", f"{p}.q_proj", 0, heads, hd, native=False),
                    HeadNormSite(f"{p}.k_proj.head_norm", f"{p}.k_proj", 0, kv_heads, hd, native=False)]
        return out

    def untie(self, model: nn.Module) -> None:
        if model.lm_head.weight is model.model.embed_tokens.weight:
            model.lm_head.weight = nn.Parameter(cast(torch.Tensor, model.model.embed_tokens.weight).detach().clone())
        model.config.tie_word_embeddings = False
