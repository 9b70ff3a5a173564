"""The norm contract, as a base class plugins may (but need not) inherit from.

The harness reads these class attributes with ``norm_trait`` so a plugin that does not
subclass :class:`Norm` still works with the defaults.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn


@dataclass(frozen=True, kw_only=True)
class TrainingContext:
    """What a norm may want to know about the run before training starts."""

    steps: int                 # optimizer steps of the run
    family: str = "vision"     # "vision" | "lm"
    world_size: int = 1        # processes training the cell (DDP)
    sync_bn: bool = False      # --sync-bn: batch statistics averaged over the processes


class Norm(nn.Module):
    """Base for a channels-last normalization layer ``Cls(dim, *, eps=..., **kw)``."""

    #: bump when behaviour changes; rows record it
    version = "1"
    #: eval form is a per-channel affine map ``a * x + b`` (``affine_form``) that deploy folds
    foldable = False
    #: LayerNorm-like: inside ``create_model`` it inherits the eps of the LayerNorm it replaces
    ln_like = False
    #: False only for the baseline that keeps the model's own norm modules
    replaces_model_norm = True

    @classmethod
    def budget_kwargs(cls, total_steps: int, family: str = "vision") -> dict[str, Any]:
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
    def placement_kwargs(cls, family: str, replaced: nn.Module) -> dict[str, Any]:
        """Keyword arguments for a placement: ``family`` is "vision" or "lm", ``replaced`` the old norm."""
        return {}

    def affine_form(self) -> tuple[torch.Tensor, torch.Tensor]:
        """For foldable norms: ``(a, b)`` with eval output ``a * x + b`` per channel."""
        raise NotImplementedError(f"{type(self).__name__} is not foldable")


_DEFAULTS = {name: getattr(Norm, name) for name in ("version", "foldable", "ln_like", "replaces_model_norm")}


def norm_trait(cls: type, name: str) -> Any:
    return getattr(cls, name, _DEFAULTS[name])


def budget_kwargs(cls: type, total_steps: int, family: str = "vision") -> dict[str, Any]:
    """The norm's keyword arguments derived from a run's step budget ({} if it has none)."""
    import inspect
    fn = getattr(cls, "budget_kwargs", None)
    if not callable(fn):
        return {}
    takes_family = "family" in inspect.signature(fn).parameters
    return dict(fn(total_steps, family=family) if takes_family else fn(total_steps))


def before_training(cls: type, model: nn.Module, ctx: TrainingContext) -> None:
    fn = getattr(cls, "before_training", None)
    if callable(fn):
        fn(model, ctx)


def after_training(cls: type, model: nn.Module, batches: Iterable[Any], forward: Callable[[Any], Any]) -> None:
    fn = getattr(cls, "after_training", None)
    if callable(fn):
        fn(model, batches, forward)


def placement_kwargs(cls: type, family: str, replaced: nn.Module) -> dict[str, Any]:
    fn = getattr(cls, "placement_kwargs", None)
    return dict(fn(family, replaced)) if callable(fn) else {}
