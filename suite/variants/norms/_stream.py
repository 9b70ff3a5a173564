"""Training form shared by ``prerms`` and ``crms`` (Jiang et al., NeurIPS 2023).

The model is trained in the zero-mean form that is equivalent to Pre-LN: every write to the
residual stream is re-centered inside the forward pass, and each stream LayerNorm becomes
an RMSNorm with the same affine and eps (on a zero-mean vector ``LN(x) == RMSNorm(x)``).
The re-centering is a hook at the point where each write joins the stream (the embedding
sum, each branch output before its drop-path): centering the sum of the producers' outputs
is the same as using ``W - mean_out(W)``, ``b - mean(b)``, centered positions and class
tokens, and the parameters themselves (names, init, weight decay) stay those of the LN model,
so the same seed gives the same trajectory up to rounding. Deploy rewrites the trained
model into the equivalent Pre-LN model and converts it exactly (``suite.models.convert``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

from suite.errors import NotApplicable
from suite.models.arch import NotConvertible
from suite.models.surgery import replace_module, swap_norms
from suite.variants.base import Norm
from suite.variants.rmsnorm import rms_norm


class CenterHook:
    """Forward (pre-)hook subtracting the channel mean of the stream write."""

    def __init__(self, pre: bool) -> None:
        self.pre = pre

    def __call__(self, module: nn.Module, inputs: Any, output: Any = None) -> Any:
        if self.pre:
            return (inputs[0] - inputs[0].mean(-1, keepdim=True), *inputs[1:])
        return output - output.mean(-1, keepdim=True)


class StreamRMSNorm(Norm):
    """RMSNorm with the LayerNorm's affine, for a zero-mean stream: ``g * x / rms(x) + beta``."""

    version = "1"
    foldable = False
    ln_like = True
    converter: Callable[[nn.Module], nn.Module]
    registered_name: str  # set by register_norm on the registered subclasses (prerms, crms)

    def __init__(self, dim: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.eps, self.weight) + self.bias

    @classmethod
    def check_placement(cls, placement: str) -> None:
        raise NotApplicable(f"{cls.registered_name}@{placement}: {cls.registered_name} is an exact rewrite of a "
                            "Pre-LN model; its training form and its conversion need every write to the residual "
                            "stream to come from a linear producer that can be re-centred, and the placement "
                            f"{placement!r} moves or adds norms (Peri-LN writes each sub-layer's output through a "
                            "norm), so no exact RMSNorm form exists")

    @classmethod
    def prepare_model(cls, model: nn.Module, kwargs: dict[str, object]) -> None:
        """Swap the stream LayerNorms and center every stream write (replaces the generic swap)."""
        from suite.models.convert import convertible_adapter
        try:
            adapter = convertible_adapter(model)
        except NotConvertible as e:
            raise NotApplicable(f"{cls.registered_name}: {e}") from None
        stream = {s.norm for s in adapter.fold_sites(model) if s.stream}
        swap_norms(model, cls, kwargs, select=lambda name, _: name in stream)
        for name, where in adapter.join_points(model):
            module = model.get_submodule(name)
            if where == "pre":
                module.register_forward_pre_hook(CenterHook(pre=True))
            else:
                module.register_forward_hook(CenterHook(pre=False))

    @classmethod
    def deploy_model(cls, model: nn.Module) -> nn.Module:
        """Convert every Pre-LN part (the model itself, or e.g. a detector's backbone) exactly."""
        from suite.models.arch import adapted_parts
        to_pre_ln(model)
        for prefix, part, adapter in adapted_parts(model):
            if not adapter.convertible:
                continue
            converted = cls.converter(part)
            if not prefix:
                return converted
            replace_module(model, prefix, converted)
        return model

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}, stream centered"


def to_pre_ln(model: nn.Module) -> nn.Module:
    """In place: the Pre-LN model with the same parameters (hooks removed, LayerNorms back)."""
    for module in model.modules():
        for hooks in (module._forward_pre_hooks, module._forward_hooks):
            for key in [k for k, h in hooks.items() if isinstance(h, CenterHook)]:
                del hooks[key]
    for name, module in list(model.named_modules()):
        if isinstance(module, StreamRMSNorm):
            ln = nn.LayerNorm(module.dim, eps=module.eps, device=module.weight.device, dtype=module.weight.dtype)
            with torch.no_grad():
                ln.weight.copy_(module.weight)
                ln.bias.copy_(module.bias)
            replace_module(model, name, ln)
    return model
