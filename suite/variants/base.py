"""The norm contract, as a base class plugins may (but need not) inherit from.

The harness reads these class attributes with ``norm_trait`` so a plugin that does not
subclass :class:`Norm` still works with the defaults, and calls the hooks through the
module-level helpers below (``budget_kwargs``, ``placement_kwargs``, ``check_placement``...).
Which form of the keyword hooks a norm implements is declared (``hooks``), never guessed from
its signature: 1 (the default) is the form of :class:`Norm`; 0 the shorter form of the first
plugins, ``budget_kwargs(total_steps)`` and ``placement_kwargs(family, replaced)``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn


@dataclass(frozen=True, kw_only=True)
class TrainingContext:
    """What a norm may want to know about the run before training starts."""

    steps: int                 # optimizer steps of the run
    family: str = "vision"     # "vision" | "detection" | "lm" (the task's)
    world_size: int = 1        # processes training the cell (DDP)
    sync_bn: bool = False      # --sync-bn: batch statistics averaged over the processes


class Norm(nn.Module):
    """Base for a channels-last normalization layer ``Cls(dim, *, eps=..., **kw)``."""

    #: bump when behaviour changes; rows record it
    version = "1"
    #: eval form is a per-channel affine map ``a * x + b`` (``affine_form``) that deploy folds
    foldable = False
    #: eval form is ``a * core(x) + b`` with ``core`` element-wise (``pointwise_form``): deploy folds
    #: ``a, b`` into the next linear layer and keeps ``core`` alone
    pointwise = False
    #: LayerNorm-like: inside ``create_model`` it inherits the eps of the LayerNorm it replaces
    ln_like = False
    #: False only for the baseline that keeps the model's own norm modules
    replaces_model_norm = True
    #: the published values of keywords that ``budget_kwargs`` rescales (rows and the leaderboard
    #: say when a cell ran with other values)
    reference_kwargs: Mapping[str, object] = {}
    #: the form of ``budget_kwargs``/``placement_kwargs`` this class implements (module docstring)
    hooks = 1

    @classmethod
    def budget_kwargs(cls, total_steps: int, family: str = "vision") -> dict[str, object]:
        """Keyword arguments derived from a run's optimizer-step budget (default none)."""
        return {}

    @classmethod
    def before_training(cls, model: nn.Module, ctx: TrainingContext) -> None:
        """Hook run once on the built model before training (default: nothing)."""

    @classmethod
    def after_training(cls, model: nn.Module, batches: Iterable[Any], forward: Callable[[Any], Any]) -> None:
        """Hook run once after training, before evaluation (default: nothing).

        ``batches`` iterates training batches; ``forward(batch)`` runs the model on one.
        """

    @classmethod
    def placement_kwargs(cls, family: str, replaced: nn.Module, layer: int | None = None) -> dict[str, object]:
        """Keyword arguments for one placement.

        ``family`` is "vision" or "lm", ``replaced`` the module this norm takes the place of, and
        ``layer`` the 1-based index of the block whose residual-stream input the norm reads (as the
        architecture adapter reports it), None for norms outside blocks (final, patch-embed) and for
        norms that do not read the stream (per-head query/key norms, sub-layer output norms).
        """
        return {}

    @classmethod
    def check_placement(cls, placement: str) -> None:
        """Raise ``suite.errors.NotApplicable`` (with the reason) if the norm cannot go ``@placement``."""

    def affine_form(self) -> tuple[torch.Tensor, torch.Tensor]:
        """For foldable norms: ``(a, b)`` with eval output ``a * x + b`` per channel."""
        raise NotImplementedError(f"{type(self).__name__} is not foldable")

    def pointwise_form(self) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
        """For point-wise norms: ``(core, a, b)`` with eval output ``a * core(x) + b`` per channel."""
        raise NotImplementedError(f"{type(self).__name__} is not point-wise")

    def fuse(self) -> nn.Module:
        """The norm's own inference form (timm's ``reparameterize_model`` puts it in the norm's place).

        ``deploy_form()`` where the norm has one, a :class:`ChannelAffine` for a foldable norm (one
        multiply-add; inside a normbench model the model-level deploy then folds it into the next
        linear layer), the norm itself otherwise.
        """
        return inference_form(self)


class ChannelAffine(nn.Module):
    """``a * x + b`` per channel: a foldable norm's eval form, standing on its own."""

    foldable = True
    a: torch.Tensor
    b: torch.Tensor

    def __init__(self, a: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("a", a.detach().clone())
        self.register_buffer("b", b.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.a.to(x.dtype) + self.b.to(x.dtype)

    def affine_form(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.a, self.b

    def extra_repr(self) -> str:
        return str(self.a.numel())


_DEFAULTS = {name: getattr(Norm, name)
             for name in ("version", "foldable", "pointwise", "ln_like", "replaces_model_norm", "hooks")}


def norm_trait(cls: type, name: str) -> Any:
    return getattr(cls, name, _DEFAULTS[name])


@torch.no_grad()
def inference_form(module: nn.Module) -> nn.Module:
    """What a norm module computes in eval mode, as the smallest module on its own (see ``Norm.fuse``)."""
    deploy_form = getattr(module, "deploy_form", None)
    if callable(deploy_form):
        return deploy_form()
    affine = getattr(module, "affine_form", None)
    if norm_trait(type(module), "foldable") and callable(affine) and not isinstance(module, ChannelAffine):
        a, b = affine()
        return ChannelAffine(a, b)
    return module


def budget_kwargs(cls: type, total_steps: int, family: str = "vision") -> dict[str, object]:
    """The norm's keyword arguments derived from a run's step budget ({} if it has none)."""
    fn = getattr(cls, "budget_kwargs", None)
    if not callable(fn):
        return {}
    return dict(fn(total_steps, family=family) if norm_trait(cls, "hooks") >= 1 else fn(total_steps))


def before_training(cls: type, model: nn.Module, ctx: TrainingContext) -> None:
    fn = getattr(cls, "before_training", None)
    if callable(fn):
        fn(model, ctx)


def after_training(cls: type, model: nn.Module, batches: Iterable[Any], forward: Callable[[Any], Any]) -> None:
    fn = getattr(cls, "after_training", None)
    if callable(fn):
        fn(model, batches, forward)


def placement_kwargs(cls: type, family: str, replaced: nn.Module, layer: int | None = None) -> dict[str, object]:
    """The norm's keywords for one placement (``hooks = 0``: the hook takes ``(family, replaced)``)."""
    fn = getattr(cls, "placement_kwargs", None)
    if not callable(fn):
        return {}
    return dict(fn(family, replaced, layer=layer) if norm_trait(cls, "hooks") >= 1 else fn(family, replaced))


def check_placement(cls: type, placement: str) -> None:
    """Ask the norm whether it can go ``@placement``; it raises ``NotApplicable`` with the reason if not."""
    fn = getattr(cls, "check_placement", None)
    if callable(fn):
        fn(placement)
