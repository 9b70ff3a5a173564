"""``deploy``: the inference form of a trained model, and the check that it is faithful.

The deployed model is a new object (the input is untouched), in eval mode. Norms whose
eval form is a per-channel affine map are folded into adjacent linear maps by the
architecture-specific folding rules; a module with a ``deploy_form()`` method is replaced by
what it returns (identity norms become ``nn.Identity``).
"""
from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn as nn

from suite.surgery import replace_module
from suite.variants.base import norm_trait


def deploy(model: nn.Module) -> nn.Module:
    """Return the inference form of ``model`` (a copy, eval mode)."""
    out = copy.deepcopy(model).eval()
    for name, module in list(out.named_modules()):
        if name and callable(getattr(module, "deploy_form", None)):
            replace_module(out, name, module.deploy_form())
    unfolded = [n for n, m in out.named_modules() if norm_trait(type(m), "foldable") and hasattr(m, "affine_form")]
    if unfolded:
        raise NotImplementedError(f"no folding rule for {unfolded[0]} in {type(model).__name__}")
    return out


@torch.inference_mode()
def deploy_error(reference: nn.Module, deployed: nn.Module, inputs: Any) -> float:
    """Max relative error ``max|y_dep - y_ref| / max|y_ref|`` of deployed vs eval-form outputs."""
    was_training = reference.training
    reference.eval()
    try:
        ref = _as_tensor(reference(inputs)).float()
        dep = _as_tensor(deployed(inputs)).float()
    finally:
        reference.train(was_training)
    if ref.shape != dep.shape:
        raise RuntimeError(f"deployed output shape {tuple(dep.shape)} != eval output {tuple(ref.shape)}")
    scale = ref.abs().max().clamp_min(torch.finfo(torch.float32).tiny)
    return float((dep - ref).abs().max() / scale)


def _as_tensor(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, (tuple, list)):
        return out[0]
    raise TypeError(f"cannot compare model outputs of type {type(out).__name__}")
