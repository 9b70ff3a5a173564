"""Variant registries: normalization layers, attention mechanisms and norm placements.

A variant name is ``norm[+attention...][@placement]``: ``ln``, ``prepbn+sla``, ``rms+qknorm``,
``ln@peri``, ``dyt+qknorm@peri``. A norm is a class ``Cls(dim, *, eps=..., **kw)`` acting on
channels-last tokens ``[..., dim]``; its class attributes and hooks (see
:class:`suite.variants.base.Norm`) tell the harness how to treat it. An attention plugin either
replaces the model's attention (a mechanism: ``sla``, ``softmax``) or modifies it (``modifier =
True``: ``qknorm``); a variant has at most one mechanism and any modifiers after it. A placement
plugin moves or adds norms (``peri``); without one the model keeps its own (Pre-LN) placement.

The contract (this module, ``base``, ``masking``, ``tokenbn``, ``rmsnorm``) may import only the
core (``suite.errors``, ``registry``, ``jsonio``, ``env``). The plugins (``norms/``,
``attention/``, ``placements/``, one file each) may also import ``suite.models``: a plugin owns
its special cases (its surgery, its deploy rewrite) and the harness asks it through hooks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch.nn as nn

from suite.errors import UsageError
from suite.registry import Registry

NORMS = Registry("norm", "suite.variants.norms", "normbench.norms")
ATTENTION = Registry("attention", "suite.variants.attention", "normbench.attention")
PLACEMENTS = Registry("placement", "suite.variants.placements", "normbench.placements")
register_norm = NORMS.register
register_attention = ATTENTION.register
register_placement = PLACEMENTS.register

#: the variants a sweep crosses when ``--variants`` is not given: the baseline and the three methods
DEFAULT_SWEEP = ("ln", "un", "prepbn", "crms")
SYNTAX = "'norm[+attention][@placement]', e.g. 'prepbn+sla', 'rms+qknorm' or 'ln@peri'"


def create_norm(name: str, dim: int, **kwargs: Any) -> nn.Module:
    """Build the registered norm ``name`` for channels-last inputs ``[..., dim]``."""
    return NORMS.get(name)(dim, **kwargs)


@dataclass(frozen=True)
class Variant:
    """A parsed variant name: a norm, optionally attention plugins (``+``-joined) and a placement."""

    norm: str
    attention: str | None = None
    placement: str | None = None

    @property
    def name(self) -> str:
        out = self.norm if self.attention is None else f"{self.norm}+{self.attention}"
        return out if self.placement is None else f"{out}@{self.placement}"

    @property
    def attentions(self) -> tuple[str, ...]:
        """The attention plugins in the order they are applied (the mechanism first)."""
        return tuple(self.attention.split("+")) if self.attention else ()

    @property
    def norm_cls(self) -> type:
        return NORMS.get(self.norm)

    def versions(self) -> dict[str, str]:
        out = {"norm": str(getattr(self.norm_cls, "version", "1"))}
        if self.attention is not None:
            out["attention"] = "+".join(str(getattr(ATTENTION.get(a), "version", "1")) for a in self.attentions)
        if self.placement is not None:
            out["placement"] = str(getattr(PLACEMENTS.get(self.placement), "version", "1"))
        return out


def is_modifier(attention: str) -> bool:
    """True for an attention plugin that modifies the model's attention instead of replacing it."""
    return bool(getattr(ATTENTION.get(attention), "modifier", False))


def parse_variant(text: str) -> Variant:
    """Parse ``norm[+attention...][@placement]``: ``"prepbn+sla"`` -> Variant("prepbn", "sla"), ``"rms@peri"`` ->
    Variant("rms", None, "peri").

    A lone attention name (``"sla"``, ``"qknorm@peri"``) means the model's own norm with that
    attention. Attention plugins are put in canonical order (the mechanism, then the modifiers in
    alphabetical order), so ``ln+qknorm+sla`` is ``ln+sla+qknorm`` and ``ln+qknorm+gated`` is
    ``ln+gated+qknorm``. Unknown names raise :class:`UsageError` listing the
    known ones and the closest match.
    """
    body, at, placement = text.partition("@")
    parts = [p.strip() for p in body.split("+")]
    if any(not p for p in parts) or (at and (not placement.strip() or "@" in placement)):
        raise UsageError(f"malformed variant {text!r}: use {SYNTAX}")
    place = placement.strip() or None
    if place is not None:
        PLACEMENTS.get(place)  # raises with the list of known placements
    if len(parts) == 1 and parts[0] not in NORMS and parts[0] in ATTENTION:
        parts = ["ln", parts[0]]
    NORMS.get(parts[0])  # raises with the list of known norms
    attentions = parts[1:]
    for a in attentions:
        ATTENTION.get(a)
    if len(set(attentions)) != len(attentions):
        raise UsageError(f"malformed variant {text!r}: an attention plugin is named twice")
    mechanisms = [a for a in attentions if not is_modifier(a)]
    if len(mechanisms) > 1:
        raise UsageError(f"variant {text!r} names two attention mechanisms ({', '.join(mechanisms)}); "
                         f"give at most one, plus modifiers such as qknorm")
    ordered = mechanisms + sorted(a for a in attentions if is_modifier(a))  # one name per combination
    return Variant(parts[0], "+".join(ordered) or None, place)


def known_variant_names() -> list[str]:
    return NORMS.names() + [f"ln+{a}" for a in ATTENTION.names()] + [f"ln@{p}" for p in PLACEMENTS.names()]
