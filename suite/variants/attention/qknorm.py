"""``qknorm``: QK-norm, a per-head norm of the queries and the keys before the softmax.

Dehghani et al., "Scaling Vision Transformers to 22 Billion Parameters", ICML 2023 (arXiv
2302.05442) normalize queries and keys with LayerNorm to keep attention logits from growing
(Henry et al., Findings of EMNLP 2020, did it with an L2 norm); Qwen3 does it per head with
RMSNorm (OLMo 2 normalizes the whole query and key vectors instead, over all heads). The placement follows timm's
``Attention(qk_norm=True)`` (``timm/layers/attention.py``): after the qkv projection and the
split into heads, ``q_norm`` and ``k_norm`` act on each head's ``head_dim`` channels (one norm
shared by all heads), then the scaled dot product runs as before.

Crossed with a norm (``rms+qknorm``, ``dyt+qknorm``...), the query and key norms are that
variant's norm class at width ``head_dim``: the plugin adds norms of the model's own kind
(LayerNorm for timm ViT/DeiT and GPT-2, the model's RMSNorm for LLaMA) and the variant's norm
surgery replaces them like every other norm (``ln+qknorm`` keeps LayerNorm). Such a norm gets
no block index (``layer=None``), so ``lns+qknorm`` scales only the stream norms.

Surgery, per architecture (the adapters' ``head_norm_sites``):

- timm ViT/DeiT: the attention's own ``q_norm`` / ``k_norm`` slots (identity by default) get the norms.
- HF GPT-2: the norms become children of ``attn.c_attn`` (``q_norm``, ``k_norm``) and a forward hook
  on ``c_attn`` normalizes the query and key thirds of its output per head; the key cache of
  generation then holds normalized keys, as in the reference placement.
- HF LLaMA: children ``head_norm`` of ``q_proj`` and ``k_proj`` and forward hooks on them; the norms
  act before the rotary embedding (as in Qwen3) and on ``num_key_value_heads`` key heads.
- Swin (window attention without slots), cross-attention GPT-2: ``not-applicable``.
- With ``sla`` (``ln+sla+qknorm``): ``not-applicable``. QK-norm bounds the logits that enter a
  softmax; simplified linear attention has no softmax (a ReLU kernel with its own normaliser),
  so normalizing its queries and keys would be a different, unpublished method.

Deploy: a foldable norm (``bn``, ``repbn``, ``prepbn``, ``un``) in these slots folds into the
projection that produces its input (the affine repeated over the heads); other norms stay.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from suite.models.arch import HeadNormSite, sites_of
from suite.models.surgery import new_model_norm, replace_module
from suite.variants import register_attention

WHY = (". QK-norm normalizes the queries and keys that enter a softmax; a linear attention such as sla has no "
       "softmax logits (a ReLU kernel with its own normaliser), so normalizing its queries and keys would be a "
       "different method")


class HeadNormHook:
    """Forward hook on a projection: normalize output channels ``[offset, offset + heads * head_dim)``
    per head with the projection's child ``slot`` (looked up at call time, so deploy may replace it)."""

    def __init__(self, slot: str, offset: int, heads: int, head_dim: int) -> None:
        self.slot, self.offset, self.heads, self.head_dim = slot, offset, heads, head_dim

    def __call__(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor | None:
        norm = getattr(module, self.slot)
        if isinstance(norm, nn.Identity):
            return None
        lo, hi = self.offset, self.offset + self.heads * self.head_dim
        part = norm(output[..., lo:hi].unflatten(-1, (self.heads, self.head_dim))).flatten(-2)
        if lo == 0 and hi == output.shape[-1]:
            return part
        return torch.cat([output[..., :lo], part, output[..., hi:]], dim=-1)


@register_attention("qknorm")
class QKNorm:
    """QK-norm: per-head norm of queries and keys before the softmax, as timm's qk_norm (Dehghani et al., ICML 2023)."""

    version = "1"
    causal_ok = True
    modifier = True  # changes the model's attention instead of replacing it: combines with a mechanism

    @classmethod
    def apply(cls, model: nn.Module, kwargs: dict) -> dict:
        sites, _ = sites_of(model, "qknorm", lambda a, m: a.head_norm_sites(m), WHY)
        for site in sites:
            _place(model, site)
        return {"attention": "qknorm", "modules": len(sites) // 2, "heads": sites[0].heads,
                "head_dim": sites[0].head_dim, "slots": "native" if sites[0].native else "projection hooks",
                "norm": "the variant's norm at width head_dim"}


def _place(model: nn.Module, site: HeadNormSite) -> None:
    replace_module(model, site.norm, new_model_norm(model, site.head_dim))
    if not site.native:
        parent, _, slot = site.norm.rpartition(".")
        if parent != site.proj:
            raise ValueError(f"{site.norm}: a hooked per-head norm must be a child of its projection {site.proj}")
        model.get_submodule(site.proj).register_forward_hook(HeadNormHook(slot, site.offset, site.heads,
                                                                          site.head_dim))
