"""HF LLaMA (``LlamaForCausalLM``): RMSNorm before attention and MLP, final norm, lm_head."""
from __future__ import annotations

import torch.nn as nn

from suite.models.arch.base import Adapter, FoldSite


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
            sites += [FoldSite(f"{p}.input_layernorm", tuple(f"{p}.self_attn.{n}_proj" for n in "qkv")),
                      FoldSite(f"{p}.post_attention_layernorm", (f"{p}.mlp.gate_proj", f"{p}.mlp.up_proj"))]
        return sites + [FoldSite("model.norm", ("lm_head",))]

    def untie(self, model: nn.Module) -> None:
        if model.lm_head.weight is model.model.embed_tokens.weight:
            model.lm_head.weight = nn.Parameter(model.model.embed_tokens.weight.detach().clone())
        model.config.tie_word_embeddings = False
