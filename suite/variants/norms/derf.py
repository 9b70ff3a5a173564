"""``derf``: Dynamic erf, ``y = g * erf(alpha * x + s) + b`` (Chen, Lu, Zhu, Sun, Liu, "Stronger
Normalization-Free Transformers", arXiv 2512.10938; code: ``zlab-princeton/Derf``).

A point-wise replacement for a normalization layer: two learnable scalars inside the erf
(a scale ``alpha`` and a shift ``s``) and a per-channel affine ``g, b`` outside it.

Initial values, from the reference code (``zlab-princeton/Derf``):

- ``alpha = 0.5``, ``s = 0``, ``g = 1``, ``b = 0`` for vision (``ViT/dynamic_erf.py``: every LayerNorm
  of the timm ViT is replaced, the final one included; the same defaults in the DiT and DNA code);
- for the GPT-2 language model (``language model/model_derf.patch`` on nanoGPT) the code gives the
  attention pre-norm, the MLP pre-norm and the final norm each their own ``alpha`` initial value
  (``attn_alpha_init_value``, ``ffn_alpha_init_value``, ``dec_alpha_init_value``); all three
  default to 1.0 there, and ``s`` to 0. The suite uses ``alpha = 1.0`` for every norm of a
  language model (``placement_kwargs``; ``--set derf.alpha_init=...`` overrides).

Not taken over: the same GPT-2 patch also multiplies the embedding sum by a learnable scalar
initialised at ``sqrt(d_model)``; that changes the model outside its norms and is not part of
this variant (the suite's ``dyt`` does not do it either).

Deploy: the eval form is ``g * core(x) + b`` with the element-wise ``core(x) = erf(alpha * x + s)``,
so ``g, b`` fold into the next linear layer and the core stays (``pointwise_form``).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from suite.variants import register_norm
from suite.variants.base import Norm

#: the GPT-2 reference patch's default alpha for every norm of the language model
LM_ALPHA_INIT = 1.0


class ErfCore(nn.Module):
    """``erf(alpha * x + s)``: what is left of Derf once its affine is folded away."""

    def __init__(self, alpha: torch.Tensor, shift: torch.Tensor) -> None:
        super().__init__()
        self.alpha = nn.Parameter(alpha.detach().clone())
        self.shift = nn.Parameter(shift.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.erf(torch.addcmul(self.shift, self.alpha, x))


@register_norm("derf")
class Derf(Norm):
    """Dynamic erf g * erf(alpha * x + s) + b, scalars alpha (init 0.5), s (0) (Chen et al., arXiv 2512.10938)."""

    version = "1"
    pointwise = True

    def __init__(self, dim: int, *, alpha_init: float = 0.5, shift_init: float = 0.0, eps: float | None = None) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(float(alpha_init)))
        self.shift = nn.Parameter(torch.tensor(float(shift_init)))
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    @classmethod
    def placement_kwargs(cls, family: str, replaced: nn.Module, layer: int | None = None) -> dict[str, object]:
        return {"alpha_init": LM_ALPHA_INIT} if family == "lm" else {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * torch.erf(self.alpha * x + self.shift) + self.bias

    def pointwise_form(self) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
        return ErfCore(self.alpha, self.shift), self.weight, self.bias

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}"
