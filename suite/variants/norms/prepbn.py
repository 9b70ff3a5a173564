"""``prepbn``: progressive re-parameterized BatchNorm (SLAB, Guo et al., ICML 2024).

Training: ``y = lam * LN(x) + (1 - lam) * RepBN(x)``. After an optional LN-only warm-up
of ``warmup_steps`` training forwards (only the LN branch runs; BN sees no data), the k-th
training forward uses ``lam_k = max(0, 1 - (k - 1) / total_steps)``: the first is pure LN,
from the (total_steps + 1)-th on it is pure RepBN, and both branches run on every forward in
between so BN's running statistics accumulate from the first. The counter is a buffer (it
is saved with the model). Eval mode is always RepBN alone, a per-channel affine map.

After training, ``after_training`` recalibrates the BN statistics: parameters frozen, the
model in eval mode except the BN layers, ``recalibration_batches`` training batches, no
optimizer step, counters untouched. For the LLaMA placement the LN branch is the model's
RMSNorm (``base="rms"``) and eta and the BN affine start at 0 (``placement_kwargs``).

Budget rule (``budget_kwargs``): the reference DeiT/Swin schedule moves from LN to RepBN
over 60k of ~375k optimizer steps (300 epochs at batch 1024, 1251 steps an epoch), so a vision
run sets ``total_steps = round(steps * 60000 / 375300)`` (16% of its own budget). For the
language-model placement the paper gives no short-run schedule; the suite's budget study chose
an LN-only warm-up of 10% of the run (``warmup_steps``) and ``total_steps`` = 40% of it. For
detection (a task of family ``detection``) the move takes the whole run: SLAB's detection code
fine-tunes with ``step`` = 300k, longer than its 12- or 36-epoch schedules, and the suite's coco
study (``results/reference/budget-sensitivity-coco``) found 16% 20 box mAP below LN, 100% level.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn as nn

from suite.variants import register_norm
from suite.variants.base import Norm, TrainingContext
from suite.variants.norms.repbn import LM_INIT, RepBN
from suite.variants.rmsnorm import RMSNorm
from suite.variants.tokenbn import set_sync

REFERENCE_TOTAL_STEPS = 60_000
REFERENCE_RUN_STEPS = 375_300
LM_WARMUP_FRACTION = 0.1
#: language models: the move to RepBN takes 40% of the run (budget study: perplexity 12.7 vs 13.9 with
#: the vision share of 16%, 3 seeds on the smoke wikitext task; results/reference/budget-sensitivity)
LM_TOTAL_FRACTION = 0.4
#: detection: the move to RepBN takes the whole run (coco study, 2 seeds: box mAP 22.8 at 16%, 30.1 at 40%,
#: 42.5 at 100% against 42.9 for ln; results/reference/budget-sensitivity-coco)
DETECTION_TOTAL_FRACTION = 1.0


@register_norm("prepbn")
class PRepBN(Norm):
    """Progressive LN -> RepBN (linear lambda schedule, optional LN-only warm-up); eval is RepBN, folded."""

    version = "1"
    foldable = True
    ln_like = True  # the LN branch keeps the eps of the LayerNorm it replaces
    reference_kwargs: dict[str, int] = {"total_steps": REFERENCE_TOTAL_STEPS}  # the reference DeiT/Swin schedule
    num_forwards: torch.Tensor  # buffer (registered in __init__)

    @classmethod
    def before_training(cls, model: nn.Module, ctx: TrainingContext) -> None:
        set_sync(model, ctx.sync_bn)  # --sync-bn: statistics over every process of a DDP cell

    def __init__(self, dim: int, *, eps: float = 1e-6, total_steps: int = REFERENCE_TOTAL_STEPS,
                 warmup_steps: int = 0, base: str = "ln", bn_eps: float = 1e-5, momentum: float | None = 0.1,
                 eta_init: float = 1.0, bn_weight_init: float = 1.0, bn_bias_init: float = 0.0,
                 recalibration_batches: int = 100) -> None:
        super().__init__()
        if base not in ("ln", "rms"):
            raise ValueError(f"prepbn base must be 'ln' or 'rms', got {base!r}")
        if total_steps < 1 or warmup_steps < 0:
            raise ValueError("prepbn needs total_steps >= 1 and warmup_steps >= 0")
        self.norm = nn.LayerNorm(dim, eps=eps) if base == "ln" else RMSNorm(dim, eps=eps)
        self.repbn = RepBN(dim, eps=bn_eps, momentum=momentum, eta_init=eta_init,
                           bn_weight_init=bn_weight_init, bn_bias_init=bn_bias_init)
        self.total_steps, self.warmup_steps, self.base = total_steps, warmup_steps, base
        self.recalibration_batches = recalibration_batches
        self.register_buffer("num_forwards", torch.zeros((), dtype=torch.long))  # training forwards so far
        self.recalibrating = False

    @classmethod
    def budget_kwargs(cls, total_steps: int, family: str = "vision") -> dict[str, object]:
        if family == "lm":  # LN(RMSNorm)-only warm-up for 10% of the run, then 40% of it to move to RepBN
            return {"total_steps": max(1, round(LM_TOTAL_FRACTION * total_steps)),
                    "warmup_steps": max(1, round(LM_WARMUP_FRACTION * total_steps))}
        if family == "detection":
            return {"total_steps": max(1, round(DETECTION_TOTAL_FRACTION * total_steps))}
        return {"total_steps": max(1, round(total_steps * REFERENCE_TOTAL_STEPS / REFERENCE_RUN_STEPS))}

    @classmethod
    def placement_kwargs(cls, family: str, replaced: nn.Module, layer: int | None = None) -> dict[str, object]:
        out: dict[str, object] = dict(LM_INIT) if family == "lm" else {}
        if type(replaced).__name__.endswith("RMSNorm"):
            out["base"] = "rms"
        return out

    def lam(self) -> float:
        """The weight of the LN branch for the next training forward."""
        k = int(self.num_forwards) + 1 - self.warmup_steps
        return 1.0 if k < 1 else max(0.0, 1.0 - (k - 1) / self.total_steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.recalibrating:  # BN in train mode on the batch, counters untouched
            return self.repbn.bn(x) + self.repbn.eta * x
        if not self.training:
            return self.repbn(x)
        lam = self.lam()
        in_warmup = int(self.num_forwards) < self.warmup_steps
        self.num_forwards += 1
        if in_warmup:
            return self.norm(x)
        if lam == 0.0:
            return self.repbn(x)
        return lam * self.norm(x) + (1.0 - lam) * self.repbn(x)

    def affine_form(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.repbn.affine_form()

    @classmethod
    @torch.no_grad()
    def after_training(cls, model: nn.Module, batches: Iterable[Any], forward: Callable[[Any], Any]) -> None:
        recalibrate(model, batches, forward)

    def extra_repr(self) -> str:
        return f"base={self.base}, total_steps={self.total_steps}, warmup_steps={self.warmup_steps}"


@torch.no_grad()
def recalibrate(model: nn.Module, batches: Iterable[Any], forward: Callable[[Any], Any]) -> int:
    """Re-estimate every PRepBN's BN statistics on training batches; returns batches used.

    ``forward(batch)`` runs the model on one training batch (the task knows its format).
    """
    layers = [m for m in model.modules() if isinstance(m, PRepBN)]
    if not layers:
        return 0
    n = max(m.recalibration_batches for m in layers)
    if n <= 0:
        return 0
    was_training = model.training
    model.eval()
    saved = []
    for m in layers:
        bn = m.repbn.bn
        saved.append(bn.momentum)
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the recalibration batches
        bn.train()
        m.recalibrating = True
    try:
        it = iter(batches)
        for _ in range(n):
            forward(next(it))
    finally:
        for m, momentum in zip(layers, saved):
            m.recalibrating = False
            m.repbn.bn.momentum = momentum
            m.repbn.bn.eval()
        model.train(was_training)
    return n

