"""Variant registries: normalization layers and attention mechanisms.

A variant name is ``norm`` or ``norm+attention`` (``prepbn+sla``). A norm is a class
``Cls(dim, *, eps=..., **kw)`` acting on channels-last tokens ``[..., dim]``; its class
attributes and hooks (see :class:`suite.variants.base.Norm`) tell the harness how to treat it.

The contract (this module, ``base``, ``masking``, ``tokenbn``, ``rmsnorm``) may import only the
core (``suite.errors``, ``registry``, ``jsonio``, ``env``). The plugins (``norms/``,
``attention/``, one file each) may also import ``suite.models``: a plugin owns its special
cases (its surgery, its deploy rewrite) and the harness asks it through hooks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch.nn as nn

from suite.errors import UsageError
from suite.registry import Registry

NORMS = Registry("norm", "suite.variants.norms", "normbench.norms")
ATTENTION = Registry("attention", "suite.variants.attention", "normbench.attention")
register_norm = NORMS.register
register_attention = ATTENTION.register


def create_norm(name: str, dim: int, **kwargs: Any) -> nn.Module:
    """Build the registered norm ``name`` for channels-last inputs ``[..., dim]``."""
    return NORMS.get(name)(dim, **kwargs)


@dataclass(frozen=True)
class Variant:
    """A parsed variant name: a norm and, optionally, an attention mechanism."""

    norm: str
    attention: str | None = None

    @property
    def name(self) -> str:
        return self.norm if self.attention is None else f"{self.norm}+{self.attention}"

    @property
    def norm_cls(self) -> type:
        return NORMS.get(self.norm)

    def versions(self) -> dict[str, str]:
        out = {"norm": str(getattr(self.norm_cls, "version", "1"))}
        if self.attention is not None:
            out["attention"] = str(getattr(ATTENTION.get(self.attention), "version", "1"))
        return out


def parse_variant(text: str) -> Variant:
    """``"ln"`` -> Variant("ln"); ``"prepbn+sla"`` -> Variant("prepbn", "sla").

    A lone attention name (``"sla"``) means the model's own norm with that attention.
    Unknown names raise :class:`UsageError` listing the known ones and the closest match.
    """
    parts = text.split("+")
    if any(not p.strip() for p in parts) or len(parts) > 2:
        raise UsageError(f"malformed variant {text!r}: use 'norm' or 'norm+attention', e.g. 'prepbn+sla'")
    parts = [p.strip() for p in parts]
    if len(parts) == 1:
        if parts[0] not in NORMS and parts[0] in ATTENTION:
            return Variant("ln", parts[0])
        NORMS.get(parts[0])  # raises with the list of known norms
        return Variant(parts[0])
    NORMS.get(parts[0])
    ATTENTION.get(parts[1])
    return Variant(parts[0], parts[1])


def known_variant_names() -> list[str]:
    return NORMS.names() + [f"ln+{a}" for a in ATTENTION.names()]
