"""``sla``: Simplified Linear Attention (SLAB, Guo et al., ICML 2024, arXiv 2405.11582).

For ``x [B, N, C]``, h heads of width d = C/h: ``q, k, v = x W_qkv + b``; ``k += P`` (a
learnable positional term ``[1, N, C]``, init 0, so N is fixed by the input size);
``q, k = relu(q), relu(k)`` with no 1/sqrt(d) scaling; per head, in float32 even under
autocast, ``z_i = 1 / (q_i . sum_j k_j + 1e-6)`` and ``O = z * (Q (K^T V))`` when N > d, else
``z * ((Q K^T) V)`` (the same numbers, the cheaper order); plus a local term: V of each head
as a sqrt(N) x sqrt(N) map through a 5x5 depthwise conv (pad 2, groups = d) whose weights
are shared across heads; then heads merge and the output projection. Cost O(N d^2).

It is non-causal (every token sums over all keys), so the suite refuses it for causal
language models instead of running a model that sees the future. Tokens that are not on
the spatial grid (a ViT's class/register tokens) get the global term only.
"""
from __future__ import annotations

import math
from typing import Any, cast

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.swin_transformer import SwinTransformerBlock

from suite.errors import NotApplicable
from suite.models.arch import AttentionSite
from suite.variants import register_attention


class SimplifiedLinearAttention(nn.Module):
    """SLA over ``prefix + grid[0] * grid[1]`` tokens with ``num_heads`` heads."""

    def __init__(self, dim: int, num_heads: int, grid: tuple[int, int], *, prefix_tokens: int = 0,
                 qkv_bias: bool = True, kernel_size: int = 5, eps: float = 1e-6) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.grid, self.prefix_tokens, self.eps = tuple(grid), prefix_tokens, eps
        self.order = "auto"  # "auto" (the cheaper), "kv_first" = Q (K^T V), "qk_first" = (Q K^T) V
        self.num_tokens = prefix_tokens + grid[0] * grid[1]
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.pos = nn.Parameter(torch.zeros(1, self.num_tokens, dim))
        self.dwc = nn.Conv2d(self.head_dim, self.head_dim, kernel_size, padding=kernel_size // 2, groups=self.head_dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        b, n, _ = x.shape
        if n != self.num_tokens:
            raise ValueError(f"SLA was built for {self.num_tokens} tokens (its positional term fixes N), got {n}")
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        k = k + self.pos
        heads = (b, n, self.num_heads, self.head_dim)
        q, k, v = (t.reshape(heads).transpose(1, 2) for t in (F.relu(q), F.relu(k), v))  # [B, h, N, d]
        out = self.global_term(q, k, v).to(v.dtype) + self.local_term(v)
        return self.proj(out.transpose(1, 2).reshape(b, n, self.dim))  # not c: a CRMS stream is d-1 wide

    def global_term(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=q.device.type, enabled=False):
            dt = torch.promote_types(q.dtype, torch.float32)
            q, k, v = q.to(dt), k.to(dt), v.to(dt)
            z = 1.0 / (q @ k.sum(dim=2, keepdim=True).transpose(-2, -1) + self.eps)  # [B, h, N, 1]
            kv_first = q.shape[2] > q.shape[3] if self.order == "auto" else self.order == "kv_first"
            if kv_first:
                return z * (q @ (k.transpose(-2, -1) @ v))
            return z * ((q @ k.transpose(-2, -1)) @ v)

    def local_term(self, v: torch.Tensor) -> torch.Tensor:
        b, h, _, d = v.shape
        gh, gw = self.grid
        spatial = v[:, :, self.prefix_tokens:].reshape(b * h, gh, gw, d).permute(0, 3, 1, 2)
        local = self.dwc(spatial).permute(0, 2, 3, 1).reshape(b, h, gh * gw, d)
        return F.pad(local, (0, 0, self.prefix_tokens, 0))  # prefix tokens: no local term

    def extra_repr(self) -> str:
        return f"dim={self.dim}, heads={self.num_heads}, grid={self.grid}, prefix={self.prefix_tokens}"


#: SLAB-Swin: global SLA in stages 1-2, window softmax in stages 3-4 (0-based stage indices)
SWIN_SLA_STAGES = (0, 1)


class SwinSLABlock(SwinTransformerBlock):
    """A Swin block whose attention runs globally over the stage map (no windows, no shift)."""

    global_attention = True  # the adapter's fold check: no window padding happens in this block

    def _attn(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        return self.attn(x.reshape(b, h * w, c)).reshape(b, h, w, c)


@register_attention("sla")
class SLA:
    """Simplified linear attention (ReLU kernel, positional term on K, 5x5 depthwise conv on V); SLAB."""

    version = "1"
    causal_ok = False

    @classmethod
    def adjust_model_kwargs(cls, name: str, model_kwargs: dict[str, object],
                            attention_kwargs: dict[str, object]) -> dict[str, object]:
        """``slab_convention=True``: build a ViT/DeiT the SLAB-DeiT way (average pooling, no class token)."""
        if attention_kwargs.pop("slab_convention", False) and name.startswith(("vit_", "deit")):
            return {**model_kwargs, "class_token": False, "global_pool": "avg"}
        return model_kwargs

    @classmethod
    def apply(cls, model: nn.Module, kwargs: dict) -> dict:
        from suite.models.arch import find_adapter
        adapter = find_adapter(model)
        if adapter is not None and adapter.family == "lm":
            raise NotApplicable("sla is not applicable to causal language models: its global term sums over "
                                "all keys (future tokens included) and this suite has no causal prefix-sum form")
        sites = adapter.attention_sites(model) if adapter is not None else []
        if not sites:
            raise NotApplicable(f"sla has no surgery for {type(model).__name__} (supported: timm ViT/DeiT, Swin)")
        if sites[0].windowed:
            return _swin(model, sites)
        for site in sites:  # ViT/DeiT: every block, prefix tokens get the global term only
            _replace(model, site)
        convention = "slab-deit (average pooling, no class token)" if not model.has_class_token else "model"
        return {"attention": "sla", "blocks": len(sites), "grid": list(sites[0].grid),
                "prefix_tokens": sites[0].prefix_tokens, "pooling": model.global_pool, "convention": convention}


def _replace(model: nn.Module, site: AttentionSite) -> nn.Module:
    block = model.get_submodule(site.block)
    old = getattr(block, site.attn)
    new = SimplifiedLinearAttention(old.qkv.in_features, old.num_heads, site.grid, prefix_tokens=site.prefix_tokens,
                                    qkv_bias=old.qkv.bias is not None).to(old.qkv.weight.device)
    setattr(block, site.attn, new)
    return block


def _swin(model: nn.Module, sites: list[AttentionSite]) -> dict:
    """SLAB-Swin: stages 1-2 get global SLA over the stage map; stages 3-4 keep window softmax."""
    chosen = [s for s in sites if s.stage in SWIN_SLA_STAGES]
    for site in chosen:
        _replace(model, site).__class__ = SwinSLABlock
    stages = sorted({cast(int, s.stage) for s in sites})  # every Swin site has its stage
    return {"attention": "sla", "blocks": len(chosen), "stages": [s + 1 for s in SWIN_SLA_STAGES if s in stages],
            "convention": "slab-swin (global SLA in stages 1-2, window softmax in 3-4)"}


def grid_of(n: int) -> tuple[int, int]:
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f"{n} tokens do not form a square grid")
    return side, side
