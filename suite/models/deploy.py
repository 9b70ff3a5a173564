"""``deploy``: the inference form of a trained model, and the check that it is faithful.

The deployed model is a new object (the input is untouched), in eval mode:
1. a norm class with a ``deploy_model`` hook rewrites the whole model (Pre-(C)RMSNorm);
2. every foldable norm (its eval form a per-channel ``a * x + b``) is folded into the linear
   maps next to it, following the architecture adapter, and replaced by ``nn.Identity``;
3. a module with a ``deploy_form()`` method is replaced by what it returns.
A foldable norm that no rule covers is an error, never silently kept.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn as nn

from suite.models.arch import adapted_parts
from suite.models.fold import fold_after_conv, fold_into_consumer
from suite.models.surgery import replace_module
from suite.variants.base import norm_trait


def is_foldable(module: nn.Module) -> bool:
    return bool(norm_trait(type(module), "foldable")) and callable(getattr(module, "affine_form", None))


def deploy(model: nn.Module) -> nn.Module:
    """Return the inference form of ``model`` (a copy, eval mode)."""
    out = copy.deepcopy(model).eval()
    hooks = {type(m) for m in out.modules() if callable(getattr(type(m), "deploy_model", None))}
    for cls in sorted(hooks, key=lambda c: c.__name__):
        out = cls.deploy_model(out)
    fold_norms(out)
    for name, module in list(out.named_modules()):
        if name and callable(getattr(module, "deploy_form", None)):
            replace_module(out, name, module.deploy_form())
    left = [n for n, m in out.named_modules() if is_foldable(m)]
    if left:
        raise NotImplementedError(f"no folding rule covers {left[0]} ({type(out.get_submodule(left[0])).__name__}) "
                                  f"in {type(model).__name__}")
    return out.eval()


@torch.no_grad()
def fold_norms(model: nn.Module) -> int:
    """Fold every foldable norm in place; returns how many were folded."""
    if not any(is_foldable(m) for m in model.modules()):
        return 0
    folded = 0
    for _, part, adapter in adapted_parts(model):
        if adapter.family == "lm":
            adapter.untie(part)  # the final norm folds into lm_head, which must not move the input embedding
        for site in adapter.fold_sites(part):
            norm = part.get_submodule(site.norm)
            if not is_foldable(norm):
                continue
            a, b = norm.affine_form()
            if site.after is not None:
                fold_after_conv(part.get_submodule(site.after), a, b)
            for c in site.consumers:
                replace_module(part, c, fold_into_consumer(part.get_submodule(c), a, b))
            replace_module(part, site.norm, nn.Identity())
            folded += 1
    return folded


def count_norm_modules(model: nn.Module) -> int:
    """Normalization modules in a model: stock LN/RMSNorm/BatchNorm/GroupNorm and registered norms."""
    from suite.variants import NORMS
    registered = tuple(c for _, c in NORMS.items() if isinstance(c, type))
    stock = (nn.LayerNorm, nn.RMSNorm, nn.modules.batchnorm._BatchNorm, nn.GroupNorm)
    return sum(1 for m in model.modules()
               if isinstance(m, stock + registered) or type(m).__name__.endswith(("RMSNorm", "CRMSNorm")))


@torch.inference_mode()
def deploy_error(reference: nn.Module, deployed: nn.Module, inputs: Any) -> float:
    """Max relative error ``max|y_dep - y_ref| / max|y_ref|`` of deployed vs eval-form outputs."""
    was_training = reference.training
    reference.eval()
    try:
        refs, deps = _tensors(reference(inputs)), _tensors(deployed(inputs))
    finally:
        reference.train(was_training)
    if [r.shape for r in refs] != [d.shape for d in deps]:
        raise RuntimeError(f"deployed output shapes {[tuple(d.shape) for d in deps]} != eval "
                           f"{[tuple(r.shape) for r in refs]}")
    worst = 0.0
    for ref, dep in zip(refs, deps):  # each output (e.g. pyramid level) against its own scale
        ref, dep = ref.double(), dep.double()
        scale = ref.abs().max().clamp_min(torch.finfo(torch.float64).tiny)
        worst = max(worst, float((dep - ref).abs().max() / scale))
    return worst


def _tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if hasattr(out, "logits"):
        return [out.logits]
    if isinstance(out, dict):
        return [t for v in out.values() for t in _tensors(v)]
    if isinstance(out, (tuple, list)):
        return _tensors(out[0])
    raise TypeError(f"cannot compare model outputs of type {type(out).__name__}")
