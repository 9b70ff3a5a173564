"""What the attention plugins share: kernels inside HF transformers models, masks, grouped keys.

A transformers attention module computes its queries, keys and values (with RoPE and the KV cache
where the model has them), calls the function its config's ``_attn_implementation`` names, then
merges the heads and applies its output projection. The suite registers one implementation,
``normbench``, in ``AttentionInterface``; it calls the kernel object stored on the module
(``normbench_kernel``), so each plugin (``diff``, ``sigmoid``) brings the scores-to-output step
and the model keeps its projections, its cache and its names. The masks for ``normbench`` are the
eager ones (a float mask, 0 where a key is visible and the dtype's minimum where not).
"""
from __future__ import annotations

from typing import Any, Protocol

import torch
import torch.nn as nn

IMPLEMENTATION = "normbench"
KERNEL_ATTR = "normbench_kernel"


class Kernel(Protocol):
    """``(module, q [B,H,Nq,D], k [B,Hkv,Nk,D], v [B,Hkv,Nk,Dv], bias, dropout) -> out [B,Nq,H,Dv]``; ``bias``
    is the additive mask of :func:`bias_of` (or None), ``dropout`` the attention-weight dropout (0 in eval)."""

    def __call__(self, module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                 bias: torch.Tensor | None, dropout: float) -> torch.Tensor: ...


def _dispatch(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
              attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
              **kwargs: Any) -> tuple[torch.Tensor, None]:
    # ``scaling`` is the model's softmax scale; each kernel takes the scale its paper defines
    kernel = getattr(module, KERNEL_ATTR, None)
    if kernel is None:
        raise RuntimeError(f"{type(module).__name__} runs attention {IMPLEMENTATION!r} but has no kernel")
    bias = bias_of(attention_mask, query, key, bool(getattr(module, "is_causal", True)))
    return kernel(module, query, key, value, bias, dropout if module.training else 0.0), None


def register() -> None:
    """Register ``normbench`` with transformers (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask
    AttentionInterface.register(IMPLEMENTATION, _dispatch)
    ALL_MASK_ATTENTION_FUNCTIONS.register(IMPLEMENTATION, eager_mask)


def use_kernel(model: nn.Module, module_path: str, kernel: Kernel) -> None:
    """Run the attention of ``model.get_submodule(module_path)`` through ``kernel``."""
    register()
    model.get_submodule(module_path).__dict__[KERNEL_ATTR] = kernel  # a plain attribute, not a child module
    config = getattr(model, "config", None)
    if config is None:
        raise ValueError(f"{type(model).__name__} has no transformers config to select the attention with")
    config._attn_implementation = IMPLEMENTATION


def bias_of(mask: torch.Tensor | None, query: torch.Tensor, key: torch.Tensor, causal: bool) -> torch.Tensor | None:
    """An additive float mask ``[B or 1, 1, Nq, Nk]`` (0 visible, the dtype's minimum hidden), or None.

    transformers hands over the eager mask; where it gives none for a causal module, the causal
    mask is built here with the queries as the last ``Nq`` positions of the ``Nk`` keys (the KV cache)."""
    if mask is not None:
        if mask.dtype == torch.bool:
            return torch.zeros((), dtype=query.dtype, device=query.device).masked_fill(
                ~mask, torch.finfo(query.dtype).min).expand(mask.shape)
        return mask.to(query.dtype)
    nq, nk = query.shape[-2], key.shape[-2]
    if not causal or nq == 1:
        return None
    visible = torch.ones(nq, nk, dtype=torch.bool, device=query.device).tril(nk - nq)
    return torch.zeros(nq, nk, dtype=query.dtype, device=query.device).masked_fill(
        ~visible, torch.finfo(query.dtype).min)[None, None]


def repeat_kv(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``[B, Hkv, N, D]`` -> ``[B, heads, N, D]`` (grouped-query attention: each key head serves heads/Hkv queries)."""
    groups = heads // x.shape[1]
    return x if groups == 1 else x.repeat_interleave(groups, dim=1)


def attention_modules(model: nn.Module, plugin: str, why: str = "") -> tuple[list[Any], bool]:
    """The model's self-attention modules (``suite.models.arch.AttentionModule``) and whether it is a
    causal LM; ``NotApplicable`` naming ``plugin`` (and ``why``) where its adapter has none."""
    from suite.models.arch import sites_of
    modules, adapter = sites_of(model, plugin, lambda a, m: a.attention_modules(m), why)
    return modules, adapter.family == "lm"
