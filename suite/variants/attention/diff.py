"""``diff``: Differential attention (Ye et al., "Differential Transformer", ICLR 2025, arXiv 2410.05258).

Reference: ``microsoft/unilm``, ``Diff-Transformer/multihead_diffattn.py``; timm 1.0.31 ships it as
``timm.layers.DiffAttention``. Each of the model's ``h`` heads of width ``D`` becomes one
differential head: its query and key split into two maps of width ``d = D / 2`` and its value
keeps the full width ``2d = D``:

    A = softmax(Q1 K1^T / sqrt(d) + M) - lambda * softmax(Q2 K2^T / sqrt(d) + M)
    O = (1 - lambda_init) * RMSNorm_2d(A V)            (per head, then the heads merge)
    lambda = exp(lq1 . lk1) - exp(lq2 . lk2) + lambda_init,  lambda_init = 0.8 - 0.6 exp(-0.3 l)

with ``l`` the 0-based block index, one lambda per layer (shared by its heads) from four vectors
of width ``d`` drawn from N(0, 0.1), and the per-head RMSNorm (``sub_norm``, learnable scale, eps
1e-5) part of the method: the variant's norm never replaces it, and it stays in the deployed
model (it is not a per-channel affine). The model's projections keep their names and shapes, so
the attention weights of a checkpoint still load; ``h`` stays the model's head count (the paper
halves it to keep the parameter count of a baseline with the same head width; keeping the
projections instead is timm's choice too).

Surgery, per architecture:

- timm ViT/DeiT: each ``Attention`` becomes ``DiffusedAttention``, a subclass of timm's
  ``DiffAttention`` (its lambda parameters, ``lambda_init`` and ``sub_norm``) holding the old
  ``qkv`` and ``proj``. Its forward differs from timm's in two places: the merged width is the
  heads' (timm reshapes to the input width, which a CRMS stream makes ``d - 1``), and a ``gate``
  (the ``gated`` plugin) applies before ``proj`` as in timm's ``Attention``.
- HF GPT-2 and LLaMA (causal): the lambda vectors and ``sub_norm`` become parameters of each
  attention module, and its scores-to-output step runs through the suite's kernel
  (``suite.models.attention``); the KV cache and masks are the model's. The two maps of a GPT-2
  head are the halves of its query/key, as in timm and the reference.
- LLaMA's RoPE rotates channel ``i`` with ``i + D/2``, so halves of a rotated query would mix
  both maps and lose the relative-position property. The reference rotates each map as a vector
  of width ``d`` (``rotary_emb`` over ``2h`` heads of width ``d``). Here map 1 is channels
  ``[0, D/4) + [D/2, 3D/4)`` and map 2 ``[D/4, D/2) + [3D/4, D)`` (each pairs its channels as
  RoPE of width ``d`` does), and a hook hands the attention every other frequency of the
  model's rotary table, laid out per map: each map is rotated as the reference rotates it.
- Swin (window attention), SLA, sigmoid attention: ``not-applicable``.
"""
from __future__ import annotations

import math
from typing import Any, cast

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import Attention, DiffAttention, RmsNorm

from suite.errors import NotApplicable
from suite.models.arch import QUERY_MAPS, AttentionModule
from suite.models.attention import attention_modules, bias_of, repeat_kv, use_kernel
from suite.models.surgery import replace_module
from suite.variants import register_attention

LAMBDA_STD = 0.1
SUB_NORM_EPS = 1e-5


def lambda_init_of(depth: int) -> float:
    """The paper's ``lambda_init`` for the block at 0-based ``depth``."""
    return 0.8 - 0.6 * math.exp(-0.3 * depth)


def differential(q1: torch.Tensor, k1: torch.Tensor, q2: torch.Tensor, k2: torch.Tensor, v: torch.Tensor,
                 lam: torch.Tensor, bias: torch.Tensor | None, dropout: float = 0.0) -> torch.Tensor:
    """``(softmax(q1 k1^T / sqrt(d) + bias) - lam softmax(q2 k2^T / sqrt(d) + bias)) v``: maps ``[B, h, N, d]``,
    values ``[B, h, Nk, 2d]``; two fused softmax attentions, subtracted after the product with V."""
    scale = q1.shape[-1] ** -0.5
    a1 = F.scaled_dot_product_attention(q1, k1, v, attn_mask=bias, dropout_p=dropout, scale=scale)
    a2 = F.scaled_dot_product_attention(q2, k2, v, attn_mask=bias, dropout_p=dropout, scale=scale)
    return a1 - lam.to(a1.dtype) * a2


class DiffusedAttention(DiffAttention):
    """timm's DiffAttention holding a ViT block's own ``qkv`` and ``proj`` (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate: nn.Module | None = None  # set by the ``gated`` plugin (an instance attribute, as in timm)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        b, n, _ = x.shape
        h, d = self.num_heads, self.head_dim
        gate = self.gate(x).sigmoid() if self.gate is not None else None
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k = (t.reshape(b, n, 2 * h, d).transpose(1, 2) for t in (q, k))
        q, k = self.q_norm(q), self.k_norm(k)
        (q1, q2), (k1, k2) = q.unflatten(1, (h, 2)).unbind(2), k.unflatten(1, (h, 2)).unbind(2)
        v = v.reshape(b, n, h, 2 * d).transpose(1, 2)
        bias = attn_mask if attn_mask is not None or not is_causal else bias_of(None, q1, k1, True)
        out = differential(q1, k1, q2, k2, v, self._compute_lambda(), bias, self.attn_drop_p if self.training else 0.)
        out = (self.sub_norm(out) * (1 - self.lambda_init)).transpose(1, 2).reshape(b, n, 2 * h * d)
        out = self.norm(out)
        if gate is not None:
            out = out * gate
        return self.proj_drop(self.proj(out))


def map_channels(width: int, rope: bool, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The channels of a head's query/key that form map 1 and map 2 (see the module docstring)."""
    half, quarter = width // 2, width // 4
    if not rope:
        return torch.arange(half, device=device), torch.arange(half, width, device=device)
    r = torch.arange(quarter, device=device)
    return torch.cat([r, r + half]), torch.cat([r + quarter, r + half + quarter])


def rotary_index(width: int, device: torch.device) -> torch.Tensor:
    """Where each channel of the per-map rotary table comes from in the model's table ``cat(f, f)``:
    channel ``c`` of either map takes frequency ``2 * (c mod D/4)`` (every other one)."""
    return 2 * (torch.arange(width, device=device) % (width // 2) % (width // 4))


class PerMapRotary:
    """Forward pre-hook on a LLaMA attention: hand it the rotary table of width ``D/2`` for each map."""

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
        if "position_embeddings" in kwargs:
            cos, sin = kwargs["position_embeddings"]
            idx = rotary_index(cos.shape[-1], cos.device)
            kwargs = {**kwargs, "position_embeddings": (cos[..., idx], sin[..., idx])}
        elif len(args) > 1:
            cos, sin = args[1]
            idx = rotary_index(cos.shape[-1], cos.device)
            args = (args[0], (cos[..., idx], sin[..., idx]), *args[2:])
        return args, kwargs


class DiffKernel:
    """The HF kernel: the differential step on the model's (rotated, cached) queries, keys and values."""

    def __init__(self, rope: bool) -> None:
        self.rope = rope

    def __call__(self, module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                 bias: torch.Tensor | None, dropout: float) -> torch.Tensor:
        heads = query.shape[1]
        key, value = repeat_kv(key, heads), repeat_kv(value, heads)
        m1, m2 = map_channels(query.shape[-1], self.rope, query.device)
        lam = hf_lambda(module)
        out = differential(query[..., m1], key[..., m1], query[..., m2], key[..., m2], value, lam, bias, dropout)
        return (cast(nn.Module, module.sub_norm)(out) * (1 - cast(float, module.lambda_init))).transpose(1, 2)


def hf_lambda(module: nn.Module) -> torch.Tensor:
    p = cast(dict[str, torch.Tensor], dict(module.named_parameters(recurse=False)))
    return (torch.exp((p["lambda_q1"] * p["lambda_k1"]).sum().float())
            - torch.exp((p["lambda_q2"] * p["lambda_k2"]).sum().float()) + cast(float, module.lambda_init))


@register_attention("diff")
class Diff:
    """Differential attention: two softmax maps minus a learned lambda, per-head RMSNorm (Ye et al., ICLR 2025)."""

    version = "1"
    causal_ok = True

    @classmethod
    def apply(cls, model: nn.Module, kwargs: dict) -> dict:
        modules, hf = attention_modules(model, "diff")
        if modules[0].head_dim % (4 if modules[0].rope else 2):
            raise NotApplicable(f"diff needs a head width divisible by {4 if modules[0].rope else 2} "
                                f"(two maps{' of rotary pairs' if modules[0].rope else ''}), got {modules[0].head_dim}")
        for m in modules:
            (_hf if hf else _timm)(model, m)
        return {"attention": "diff", "modules": len(modules), "heads": modules[0].heads,
                "map_width": modules[0].head_dim // 2,
                "lambda_init": [round(lambda_init_of(m.depth), 6) for m in modules],
                "implementation": "suite kernel in the model's attention" if hf else "timm DiffAttention",
                "maps": "rotary pairs, per-map RoPE" if modules[0].rope else "query/key halves"}


def _timm(model: nn.Module, m: AttentionModule) -> None:
    found = model.get_submodule(m.path)
    if type(found) is not Attention:
        raise NotApplicable(f"diff replaces timm's softmax Attention; {m.path} is {type(found).__name__}")
    old = cast(Attention, found)
    ref = old.qkv.weight
    new = DiffusedAttention(m.width, m.heads, qkv_bias=old.qkv.bias is not None, depth=m.depth)
    new = new.to(ref.device, ref.dtype)
    new.qkv, new.proj, new.attn_drop, new.proj_drop = old.qkv, old.proj, old.attn_drop, old.proj_drop
    new.attn_drop_p = old.attn_drop.p
    replace_module(model, m.path, new)


def _hf(model: nn.Module, m: AttentionModule) -> None:
    attn = model.get_submodule(m.path)
    ref = next(attn.parameters())
    half = m.head_dim // 2
    for name in ("lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2"):
        p = nn.Parameter(torch.empty(half, device=ref.device, dtype=torch.float32))
        nn.init.normal_(p, mean=0.0, std=LAMBDA_STD)
        attn.register_parameter(name, p)
    attn.sub_norm = RmsNorm(m.head_dim, eps=SUB_NORM_EPS).to(ref.device, ref.dtype)
    attn.__dict__["lambda_init"] = lambda_init_of(m.depth)  # a float, as in timm's DiffAttention
    setattr(attn, QUERY_MAPS, 2)
    if m.rope:
        attn.register_forward_pre_hook(PerMapRotary(), with_kwargs=True)
    use_kernel(model, m.path, DiffKernel(m.rope))
