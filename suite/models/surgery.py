"""Model surgery: find the normalization modules of a timm/HF model and swap them.

Walk the module tree, build new modules, set them in place of the old ones. The model's
own norms are recognised by type: ``nn.LayerNorm`` (timm, HF GPT-2) and any module whose
class name ends in ``RMSNorm`` (HF LLaMA). Swapping never touches other modules, so the
rest of the model keeps the initialisation it got from its seed. Placements and attention
variants that add norms (``new_model_norm``) add the model's own kind, so the variant's norm
then replaces them like any other.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import torch.nn as nn

from suite.variants.base import norm_trait, placement_kwargs


def is_model_norm(module: nn.Module) -> bool:
    """True for the stock normalization modules of the supported model families."""
    return isinstance(module, nn.LayerNorm) or type(module).__name__.endswith("RMSNorm")


def norm_dim_eps(module: nn.Module) -> tuple[int, float | None]:
    """Channel count and eps of a stock norm module."""
    if isinstance(module, nn.LayerNorm):
        return int(module.normalized_shape[-1]), float(module.eps)
    weight = getattr(module, "weight", None)
    eps = getattr(module, "variance_epsilon", getattr(module, "eps", None))
    if weight is None:
        raise TypeError(f"cannot tell the width of {type(module).__name__}: it has no weight")
    return int(weight.shape[0]), None if eps is None else float(eps)


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def find_model_norms(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if name and is_model_norm(m)]


def new_model_norm(model: nn.Module, dim: int) -> nn.Module:
    """A new norm of the model's own kind (its LayerNorm or RMSNorm class, eps, device, dtype) at width ``dim``."""
    names = find_model_norms(model)
    if not names:
        raise ValueError(f"{type(model).__name__} has no LayerNorm/RMSNorm of its own to copy")
    old = model.get_submodule(names[0])
    _, eps = norm_dim_eps(old)
    if isinstance(old, nn.LayerNorm):
        new: nn.Module = nn.LayerNorm(dim, eps=old.eps, elementwise_affine=old.elementwise_affine,
                                      bias=old.bias is not None)
    else:  # HF RMSNorm classes take (hidden_size, eps)
        new = type(old)(dim, eps=eps) if eps is not None else type(old)(dim)
    ref = next(old.parameters(), None)
    return new if ref is None else new.to(device=ref.device, dtype=ref.dtype)


def block_layers(model: nn.Module) -> dict[str, int]:
    """Every norm that reads the residual stream at a block's input -> its 1-based block index (adapters)."""
    from suite.models.arch import adapted_parts
    out = {}
    for prefix, part, adapter in adapted_parts(model):
        out.update({f"{prefix}.{n}" if prefix else n: k for n, k in adapter.norm_layers(part).items()})
    return out


def swap_norms(model: nn.Module, norm_cls: type, kwargs: Mapping[str, object] | None = None,
               select: Callable[[str, nn.Module], bool] | None = None, family: str | None = None) -> list[str]:
    """Replace the model's own norms with ``norm_cls``; returns the names replaced.

    LN-like norms inherit the eps of the module they replace (METHODS.md) unless ``eps``
    is given explicitly in ``kwargs``; others keep their own default. The norm's
    ``placement_kwargs(family, replaced, layer=...)`` (e.g. the LM initialisation of RepBN, the
    depth of LayerNorm Scaling) come first, explicit ``kwargs`` override them; ``layer`` is the
    1-based block index the architecture adapter reports for the norm, None outside blocks.
    """
    kwargs = dict(kwargs or {})
    if not norm_trait(norm_cls, "replaces_model_norm"):
        return []
    if family is None:
        from suite.models.arch import adapted_parts
        parts = adapted_parts(model)
        family = parts[0][2].family if parts else "vision"
    layers = block_layers(model)
    replaced = []
    for name in find_model_norms(model):
        old = model.get_submodule(name)
        if select is not None and not select(name, old):
            continue
        dim, eps = norm_dim_eps(old)
        kw = {**placement_kwargs(norm_cls, family, old, layer=layers.get(name)), **kwargs}
        if norm_trait(norm_cls, "ln_like") and eps is not None:
            kw.setdefault("eps", eps)
        new = norm_cls(dim, **kw)
        ref = next(old.parameters(), None)
        if ref is not None:
            new = new.to(device=ref.device, dtype=ref.dtype)
        replace_module(model, name, new)
        replaced.append(name)
    return replaced
