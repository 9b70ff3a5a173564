"""``deploy``: the inference form of a trained model, and the check that it is faithful.

The deployed model is a new object (the input is untouched), in eval mode:
1. a norm class with a ``deploy_model`` hook rewrites the whole model (Pre-(C)RMSNorm);
2. every foldable norm (its eval form a per-channel ``a * x + b``) is folded into the linear
   maps next to it, following the architecture adapter, and replaced by ``nn.Identity``; a
   point-wise norm (eval form ``a * core(x) + b``, ``core`` element-wise) has its ``a, b``
   folded into the linear maps that read it and is replaced by ``core``. Norms added by
   placements and attention variants (a sub-layer's output norm, per-head query/key norms) fold
   into the linear map that produces their input (foldable norms only; a point-wise one stays);
3. a module with a ``deploy_form()`` method is replaced by what it returns.
A foldable norm that no rule covers is an error, never silently kept.

``deploy_in_place`` does the same to the model itself; ``attach_reparam`` gives a model the
child module through which timm's ``reparameterize_model`` reaches it.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn as nn

from suite.models.arch import FoldSite, adapted_parts
from suite.models.fold import fold_after, fold_into_consumer
from suite.models.surgery import replace_module
from suite.variants.base import norm_trait


def is_foldable(module: nn.Module) -> bool:
    return bool(norm_trait(type(module), "foldable")) and callable(getattr(module, "affine_form", None))


def is_pointwise(module: nn.Module) -> bool:
    return bool(norm_trait(type(module), "pointwise")) and callable(getattr(module, "pointwise_form", None))


def deploy(model: nn.Module) -> nn.Module:
    """Return the inference form of ``model`` (a copy, eval mode)."""
    return deploy_in_place(copy.deepcopy(model), source=type(model).__name__)


def deploy_in_place(model: nn.Module, source: str | None = None) -> nn.Module:
    """Turn ``model`` itself into its inference form; returns it (or, after a whole-model rewrite, the new model)."""
    out = model.eval()
    hooks: set[type[Any]] = {type(m) for m in out.modules() if callable(getattr(type(m), "deploy_model", None))}
    for cls in sorted(hooks, key=lambda c: c.__name__):
        out = cls.deploy_model(out)
    fold_norms(out)
    for name, module in list(out.named_modules()):
        if name and callable(getattr(module, "deploy_form", None)):
            replace_module(out, name, module.deploy_form())
    left = [n for n, m in out.named_modules() if is_foldable(m)]
    if left:
        raise NotImplementedError(f"no folding rule covers {left[0]} ({type(out.get_submodule(left[0])).__name__}) "
                                  f"in {source or type(model).__name__}")
    return out.eval()


@torch.no_grad()
def fold_norms(model: nn.Module) -> int:
    """Fold every foldable norm, and the affine of every point-wise norm, in place; returns how many."""
    if not any(is_foldable(m) or is_pointwise(m) for m in model.modules()):
        return 0
    folded = 0
    for _, part, adapter in adapted_parts(model):
        if adapter.family == "lm":
            adapter.untie(part)  # the final norm folds into lm_head, which must not move the input embedding
        for site in adapter.fold_sites(part) + adapter.placed_fold_sites(part):
            folded += _fold_site(part, site)
    return folded


def _fold_site(part: nn.Module, site: FoldSite) -> int:
    norm: Any = part.get_submodule(site.norm)  # a norm of the (duck-typed) norm contract
    if is_foldable(norm):
        a, b = norm.affine_form()
        if site.after is not None:
            fold_after(part.get_submodule(site.after), a, b, site.offset, site.groups)
        for c in site.consumers:
            replace_module(part, c, fold_into_consumer(part.get_submodule(c), a, b))
        replace_module(part, site.norm, nn.Identity())
        return 1
    if is_pointwise(norm) and site.consumers and site.after is None:
        # a * core(x) + b: a and b go into what reads the norm; the core stays (nothing linear precedes it)
        core, a, b = norm.pointwise_form()
        for c in site.consumers:
            replace_module(part, c, fold_into_consumer(part.get_submodule(c), a, b))
        replace_module(part, site.norm, core)
        return 1
    return 0


class ReparamHandle(nn.Module):
    """timm's ``reparameterize_model`` calls ``reparameterize()`` on every child module: this child
    of a normbench model answers by deploying its owner in place (the same result as ``suite.deploy``).

    The owner is held outside the module tree (no cycle in ``modules()``, nothing in the state
    dict); ``copy.deepcopy`` and pickling map it to the copied model, so timm's copy-then-fuse works.
    """

    def __init__(self, owner: nn.Module) -> None:
        super().__init__()
        object.__setattr__(self, "owner", owner)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("ReparamHandle is not a layer; it only answers timm's reparameterize_model")

    @torch.no_grad()
    def reparameterize(self) -> None:
        owner: nn.Module = self.__dict__["owner"]
        new = deploy_in_place(owner)
        if new is not owner:  # a whole-model rewrite returned a new model: move it into the owner object
            owner.__dict__.update(new.__dict__)
            for m in owner.children():
                if isinstance(m, ReparamHandle):
                    object.__setattr__(m, "owner", owner)

    def extra_repr(self) -> str:
        return "answers timm.utils.reparameterize_model with suite.deploy, in place"


#: the attribute under which ``create_model`` attaches the handle
REPARAM_CHILD = "normbench_reparam"


def attach_reparam(model: nn.Module) -> nn.Module:
    """Give ``model`` the child through which timm's ``reparameterize_model`` deploys it; returns ``model``."""
    model.add_module(REPARAM_CHILD, ReparamHandle(model))
    return model


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
