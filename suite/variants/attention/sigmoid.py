"""``sigmoid``: Sigmoid attention (Ramapuram et al., "Theory, Analysis, and Best Practices for Sigmoid
Self-Attention", ICLR 2025, arXiv 2409.04431; reference ``apple/ml-sigmoid-attention``).

The row-wise softmax becomes an element-wise sigmoid with a constant bias:

    O = sigmoid(Q K^T / sqrt(D) + b + M) V,    b = -log(n)

with ``M`` the mask (the dtype's minimum where a key is hidden, so its weight is exactly 0). The
bias makes each weight about ``1/n`` at initialisation, so a row's weights start near the sum of 1
a softmax has, without normalizing them. ``n`` is the sequence length:

- non-causal (ViT/DeiT): the number of keys the query sees, prefix tokens included;
- causal LMs: the model's context (``n_positions`` for GPT-2, ``max_position_embeddings`` for
  LLaMA, the training window length in this suite's profiles), one constant for every query
  position and for generation with a cache. The paper sets ``b`` from the sequence length as one
  constant per model; its reference's causal configurations also pass a single bias per model
  (the Tiny-Shakespeare example uses -10), not one per query row.

The paper also relies on QK-norm (or LayerScale) for stable training at scale: compose it with
``sigmoid+qknorm``. The model's projections, heads and names are kept (no new parameters).

Surgery: timm ViT/DeiT ``Attention`` modules become ``SigmoidAttention`` (a subclass that keeps
every child, ``q_norm``/``k_norm`` and timm's ``gate`` included); HF GPT-2 and LLaMA run their
scores-to-output step through the suite's kernel (``suite.models.attention``), keeping the KV
cache and masks. Swin, SLA, differential attention: ``not-applicable``.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import Attention

from suite.errors import NotApplicable
from suite.models.attention import attention_modules, bias_of, repeat_kv, use_kernel
from suite.variants import register_attention


def sigmoid_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, n: int, bias: torch.Tensor | None,
                      dropout: float = 0.0) -> torch.Tensor:
    """``sigmoid(q k^T / sqrt(D) - log(n) + bias) v`` over ``[B, h, N, D]`` heads."""
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5 - math.log(n)
    if bias is not None:
        scores = scores + bias
    weights = torch.sigmoid(scores)
    if dropout:
        weights = F.dropout(weights, dropout)
    return weights @ v


class SigmoidAttention(Attention):
    """timm's Attention with the sigmoid kernel in place of the softmax (``n`` = the number of keys)."""

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        b, n, _ = x.shape
        gate = self.gate(x).sigmoid() if self.gate is not None else None
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        if attn_mask is not None:
            bias = bias_of(attn_mask, q, k, False)
        else:
            bias = bias_of(None, q, k, True) if is_causal else None
        out = sigmoid_attention(q, k, v, n, bias, self.attn_drop.p if self.training else 0.0)
        out = self.norm(out.transpose(1, 2).reshape(b, n, self.attn_dim))
        if gate is not None:
            out = out * gate
        return self.proj_drop(self.proj(out))


class SigmoidKernel:
    """The HF kernel: sigmoid attention with ``n`` the model's context."""

    def __init__(self, context: int) -> None:
        self.context = context

    def __call__(self, module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                 bias: torch.Tensor | None, dropout: float) -> torch.Tensor:
        heads = query.shape[1]
        out = sigmoid_attention(query, repeat_kv(key, heads), repeat_kv(value, heads), self.context, bias, dropout)
        return out.transpose(1, 2)


@register_attention("sigmoid")
class Sigmoid:
    """Sigmoid attention: sigmoid(QK^T/sqrt(d) - log n) V, no row normalisation (Ramapuram et al., ICLR 2025)."""

    version = "1"
    causal_ok = True

    @classmethod
    def apply(cls, model: nn.Module, kwargs: dict) -> dict:
        modules, causal = attention_modules(model, "sigmoid")
        for m in modules:
            attn = model.get_submodule(m.path)
            if causal:
                if m.context is None:
                    raise NotApplicable(f"sigmoid: {m.path} has no context length to set b = -log(n) from")
                use_kernel(model, m.path, SigmoidKernel(m.context))
            elif type(attn) is Attention:
                attn.__class__ = SigmoidAttention
            else:
                raise NotApplicable(f"sigmoid replaces timm's softmax Attention; {m.path} is {type(attn).__name__}")
        n = f"{modules[0].context} (the model's context)" if causal else "the number of keys"
        return {"attention": "sigmoid", "modules": len(modules), "bias": f"-log(n), n = {n}"}
