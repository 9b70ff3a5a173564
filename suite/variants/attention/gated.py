"""``gated``: Gated attention (Qiu et al., "Gated Attention for Large Language Models: Non-linearity,
Sparsity, and Attention-Sink-Free", NeurIPS 2025, arXiv 2505.06708; reference ``qiuzh20/gated_attention``).

The variant built is the paper's best one: position G1 (the attention output of each head, before
the heads merge into the output projection), elementwise (one gate per channel of every head,
so head-specific), multiplicative, with a sigmoid:

    Y = W_o ( [softmax(Q_j K_j^T / sqrt(D)) V_j]_j  *  sigmoid(X W_g + b_g) )

where ``X`` is the attention's input (the block input after its norm), the same input as the
query. The reference builds ``W_g`` as extra output rows of the query projection (``q_proj``
twice as wide); here it is a separate ``gate`` linear map of the same shape and initialisation
(timm ViT: truncated normal, std 0.02; HF: normal with the config's ``initializer_range``), with a
bias exactly when the query projection has one, so ``qkv`` / ``c_attn`` / ``q_proj`` keep their
shapes and a checkpoint's attention weights still load. The gate reads the stream norm's output,
so it is one of that norm's consumers: a foldable norm folds into it and the CRMS rewrite
compresses it like the query projection.

A modifier: it composes with the model's softmax attention, ``diff`` and ``sigmoid`` (the gate
multiplies each head's output, whatever produced it) and with ``qknorm``.

Surgery: timm ViT/DeiT attention modules have a ``gate`` slot of their own (timm's
``Attention(gated=True)`` applies ``x * sigmoid(gate(input))`` before ``proj``), which the
plugin fills. HF GPT-2 and LLaMA get a child ``gate`` on each attention module, a forward
pre-hook on the module that computes the gate from its input, and a forward pre-hook on the
output projection (``c_proj`` / ``o_proj``) that multiplies its input by it. ``sla`` (no gate
slot; a linear attention is not what the paper gates) and Swin: ``not-applicable``.
"""
from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn as nn
from timm.layers import Attention

from suite.errors import NotApplicable
from suite.models.arch import AttentionModule
from suite.models.attention import attention_modules
from suite.variants import register_attention
from suite.variants.attention.diff import DiffusedAttention

VALUE = "_normbench_gate"  # where the attention's pre-hook leaves the gate for the output projection
WHY = (". Gated attention multiplies the per-head output of a softmax-style attention before its output projection "
       "(the paper's G1); simplified linear attention (sla) has no gate slot")


class ComputeGate:
    """Forward pre-hook on an HF attention module: ``sigmoid(gate(hidden_states))`` for its output projection."""

    def __init__(self, out_proj: str) -> None:
        self.out_proj = out_proj

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        x = args[0] if args else kwargs["hidden_states"]
        module.get_submodule(self.out_proj).__dict__[VALUE] = torch.sigmoid(cast(nn.Module, module.gate)(x))


class ApplyGate:
    """Forward pre-hook on the output projection: multiply its input (the merged heads) by the gate."""

    def __call__(self, module: nn.Module, args: tuple) -> tuple:
        gate = module.__dict__.pop(VALUE, None)
        if gate is None:
            raise RuntimeError("gated: the output projection ran without its attention computing the gate")
        return (args[0] * gate.to(args[0].dtype), *args[1:])


@register_attention("gated")
class Gated:
    """Gated attention: each head's output times sigmoid(X W_g), before proj (Qiu et al., NeurIPS 2025)."""

    version = "1"
    causal_ok = True
    modifier = True

    @classmethod
    def apply(cls, model: nn.Module, kwargs: dict) -> dict:
        modules, hf = attention_modules(model, "gated", WHY)
        for m in modules:
            (_hf if hf else _timm)(model, m)
        return {"attention": "gated", "modules": len(modules), "position": "G1 (each head's output, before the "
                "output projection)", "granularity": "elementwise, head-specific", "activation": "sigmoid",
                "gate_shape": [modules[0].width, modules[0].heads * modules[0].head_dim]}


def _linear(m: AttentionModule, bias: bool, ref: torch.Tensor) -> nn.Linear:
    return nn.Linear(m.width, m.heads * m.head_dim, bias=bias, device=ref.device, dtype=ref.dtype)


def _timm(model: nn.Module, m: AttentionModule) -> None:
    from timm.models.vision_transformer import init_weights_vit_timm
    attn = model.get_submodule(m.path)
    if not isinstance(attn, (Attention, DiffusedAttention)):
        raise NotApplicable(f"gated: {m.path} is {type(attn).__name__}, which has no gate slot")
    gate = _linear(m, attn.qkv.bias is not None, attn.qkv.weight)
    init_weights_vit_timm(gate)
    attn.gate = gate


def _hf(model: nn.Module, m: AttentionModule) -> None:
    attn = model.get_submodule(m.path)
    query = model.get_submodule(m.query_proj)
    gate = _linear(m, getattr(query, "bias", None) is not None, cast(torch.Tensor, query.weight))
    nn.init.normal_(gate.weight, mean=0.0, std=float(getattr(model.config, "initializer_range", 0.02)))
    if gate.bias is not None:
        nn.init.zeros_(gate.bias)
    attn.gate = gate
    out_proj = m.out_proj.removeprefix(m.path + ".")
    attn.register_forward_pre_hook(ComputeGate(out_proj), with_kwargs=True)
    model.get_submodule(m.out_proj).register_forward_pre_hook(ApplyGate())
