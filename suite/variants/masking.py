"""Which tokens are real: a context the batch-statistics norms read.

Language-model batches can carry padding. A task sets the mask around its forward pass
(``with token_mask(attention_mask): model(...)``); BN-family norms and UN then take their
per-channel statistics over the real tokens only. Without a mask every position counts.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

_MASK: ContextVar[torch.Tensor | None] = ContextVar("normbench_token_mask", default=None)


@contextmanager
def token_mask(mask: torch.Tensor | None) -> Iterator[None]:
    """``mask``: bool/0-1 tensor over the leading (token) dims of the norm inputs, True = real."""
    token = _MASK.set(None if mask is None else mask.bool())
    try:
        yield
    finally:
        _MASK.reset(token)


def real_tokens(x: torch.Tensor) -> torch.Tensor:
    """``x [..., C]`` -> ``[M, C]``: the rows of the real tokens (all rows without a mask)."""
    flat = x.reshape(-1, x.shape[-1])
    mask = _MASK.get()
    if mask is None or mask.numel() != flat.shape[0]:
        return flat  # no mask, or a tensor the mask does not describe (e.g. pooled features)
    return flat[mask.reshape(-1).to(flat.device)]
