"""Exact Pre-LN -> Pre-RMSNorm / Pre-CRMSNorm conversion (Jiang et al., NeurIPS 2023).

In a Pre-LN Transformer the residual stream is read only by LayerNorms and
``LN(x + c*1) = LN(x)``, so every write to the stream can be re-centered and each LN becomes
an RMSNorm. Steps (METHODS.md): fold each stream LN's affine into the linear maps that read
it; fold LayerScale into its projection; re-center every producer along its output
dimension with ``P = I - 11^T/d``; replace the stream LNs by RMSNorm without affine (same
eps). For CRMSNorm the stream then lives in its first d-1 coordinates: producers keep their
first d-1 output rows, consumers use ``W[:, :d-1] - W[:, d-1:]``, and the norm divides by d.
Arithmetic in float64, cast back once.
"""
from __future__ import annotations

import copy
from typing import Any, cast

import torch
import torch.nn as nn

from suite.models.arch import Adapter, NotConvertible, Producer, find_adapter
from suite.models.fold import carry_attachments, conv1d_type, fold_into_consumer
from suite.models.surgery import replace_module
from suite.variants.rmsnorm import CRMSNorm, RMSNorm


def convert_ln_to_rms(model: nn.Module) -> nn.Module:
    """A new model computing the same function with RMSNorm on a zero-mean stream."""
    return _convert(model, compress=False)


def convert_ln_to_crms(model: nn.Module) -> nn.Module:
    """A new model computing the same function with CRMSNorm on a stream of width d-1."""
    return _convert(model, compress=True)


def _convert(model: nn.Module, compress: bool) -> nn.Module:
    adapter = find_adapter(model)
    if adapter is None or not adapter.convertible:
        what = adapter.name if adapter else type(model).__name__
        raise NotConvertible(f"{what}: the exact Pre-LN conversions support timm ViT/DeiT and HF GPT-2 "
                             "(Pre-LN stacks whose residual stream is read only by LayerNorms)")
    adapter.check_pre_ln(model)
    out = copy.deepcopy(model).eval()
    adapter.untie(out)
    sites = [s for s in adapter.fold_sites(out) if s.stream]
    width = {cast(nn.LayerNorm, out.get_submodule(s.norm)).normalized_shape[-1] for s in sites}  # LayerNorms (Pre-LN)
    if len(width) != 1:
        raise NotConvertible(f"stream LayerNorms have different widths {sorted(width)}")
    d = width.pop()
    with torch.no_grad():
        for s in sites:
            ln = cast(nn.LayerNorm, out.get_submodule(s.norm))
            a = ln.weight if ln.weight is not None else torch.ones(d)
            b = ln.bias if ln.bias is not None else torch.zeros(d)
            for c in s.consumers:
                layer = fold_into_consumer(out.get_submodule(c), a, b)
                replace_module(out, c, _compress_consumer(layer, d) if compress else layer)
            norm = CRMSNorm(d, ln.eps) if compress else RMSNorm(d, eps=ln.eps, elementwise_affine=False)
            replace_module(out, s.norm, norm)
        for p in adapter.producers(out):
            _center_producer(out, p)
            if compress:
                _truncate_producer(out, p, d - 1)
    return out


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent, _, attr = name.rpartition(".")
    return (model.get_submodule(parent) if parent else model), attr


@torch.no_grad()
def _center_producer(model: nn.Module, p: Producer) -> None:
    if p.kind == "param":
        owner, attr = _owner(model, p.name)
        t = getattr(owner, attr).double()
        getattr(owner, attr).copy_(t - t.mean(-1, keepdim=True))
        return
    layer: Any = model.get_submodule(p.name)  # a Linear, Conv2d, HF Conv1D or Embedding (by p.kind)
    w = layer.weight.double()
    out_dim = {"linear": 0, "conv": 0, "conv1d": 1, "embedding": 1}[p.kind]
    bias = layer.bias.double() if getattr(layer, "bias", None) is not None else None
    if p.layer_scale is not None:  # y = gamma * (W x + b): fold gamma into W and b first
        gamma = cast(torch.Tensor, model.get_submodule(p.layer_scale).gamma).double()
        w = w * gamma.reshape(-1, *[1] * (w.dim() - 1)) if out_dim == 0 else w * gamma
        bias = None if bias is None else bias * gamma
        replace_module(model, p.layer_scale, nn.Identity())
    layer.weight.copy_(w - w.mean(out_dim, keepdim=True))
    if bias is not None:
        layer.bias.copy_(bias - bias.mean())


@torch.no_grad()
def _truncate_producer(model: nn.Module, p: Producer, k: int) -> None:
    """Keep the first ``k`` output coordinates of a producer (the CRMS stream)."""
    if p.kind == "param":
        owner, attr = _owner(model, p.name)
        setattr(owner, attr, nn.Parameter(getattr(owner, attr)[..., :k].clone()))
        return
    layer: Any = model.get_submodule(p.name)  # a Linear, Conv2d, HF Conv1D or Embedding (by p.kind)
    new: Any  # the same kind of layer, k outputs wide
    if p.kind == "linear":
        new = nn.Linear(layer.in_features, k, bias=layer.bias is not None, dtype=layer.weight.dtype)
        new.weight.copy_(layer.weight[:k])
    elif p.kind == "conv":
        new = nn.Conv2d(layer.in_channels, k, layer.kernel_size, layer.stride, layer.padding, layer.dilation,
                        layer.groups, bias=layer.bias is not None, dtype=layer.weight.dtype)
        new.weight.copy_(layer.weight[:k])
    elif p.kind == "conv1d":
        conv1d = conv1d_type()
        assert conv1d is not None  # a Conv1D producer comes from a transformers model
        new = conv1d(k, layer.weight.shape[0])
        new = new.to(layer.weight.dtype)
        new.weight.copy_(layer.weight[:, :k])
    else:  # embedding
        new = nn.Embedding(layer.num_embeddings, k, padding_idx=layer.padding_idx, dtype=layer.weight.dtype)
        new.weight.copy_(layer.weight[:, :k])
    if getattr(layer, "bias", None) is not None and p.kind != "embedding":
        new.bias.copy_(layer.bias[:k])
    replace_module(model, p.name, carry_attachments(layer, new.to(layer.weight.device)))


@torch.no_grad()
def _compress_consumer(layer: nn.Module, d: int) -> nn.Module:
    """A consumer of the d-1 stored coordinates: the dropped last one is minus their sum."""
    if isinstance(layer, nn.Linear):
        w = layer.weight.double()
        new = nn.Linear(d - 1, layer.out_features, bias=layer.bias is not None, dtype=layer.weight.dtype,
                        device=layer.weight.device)
        new.weight.copy_(w[:, :d - 1] - w[:, d - 1:d])
        if layer.bias is not None:
            new.bias.copy_(layer.bias)
        return carry_attachments(layer, new)
    w = cast(torch.Tensor, layer.weight).double()  # HF Conv1D [in, out]
    conv1d = conv1d_type()
    assert conv1d is not None  # not a Linear: a transformers Conv1D
    new = conv1d(w.shape[1], d - 1).to(device=layer.weight.device, dtype=layer.weight.dtype)
    new.weight.copy_(w[:d - 1] - w[d - 1:d])
    new.bias.copy_(layer.bias)
    return carry_attachments(layer, new)


def convertible_adapter(model: nn.Module) -> Adapter:
    """The adapter of a model that the conversions support, or ``NotConvertible`` saying why not."""
    adapter = find_adapter(model)
    if adapter is None or not adapter.convertible:
        raise NotConvertible(f"{adapter.name if adapter else type(model).__name__} is not supported: "
                             "Pre-RMSNorm/CRMSNorm need a Pre-LN timm ViT/DeiT or HF GPT-2")
    adapter.check_pre_ln(model)
    return adapter
