"""BatchNorm over tokens: per-channel statistics over every (batch, token) position.

Shared by ``bn``, ``repbn`` and ``prepbn``. Inputs are channels-last ``[..., C]``. In
training the statistics come from the real tokens only (see ``suite.variants.masking``);
running statistics follow the PyTorch convention (unbiased running variance, momentum 0.1,
or a cumulative average when ``momentum`` is None). Eval is the per-channel affine map
``affine_form()``, which deploy folds into the adjacent linear layer.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn as nn

from suite.variants.masking import real_tokens


def sync_enabled() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def set_sync(model: nn.Module, sync: bool) -> int:
    """Turn cross-process statistics on or off in every token BatchNorm of ``model``; returns how many."""
    layers = [m for m in model.modules() if isinstance(m, TokenBatchNorm)]
    for m in layers:
        m.sync = sync
    return len(layers)


class TokenBatchNorm(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` applied to channels-last tokens, padding excluded from statistics."""

    #: average the batch statistics over all processes (set by ``--sync-bn`` in multi-process runs)
    sync = False
    # buffers: BatchNorm types them Optional, but a token BatchNorm always tracks running statistics
    running_mean: torch.Tensor
    running_var: torch.Tensor
    num_batches_tracked: torch.Tensor

    def __init__(self, dim: int, *, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True) -> None:
        super().__init__(dim, eps=eps, momentum=momentum, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            a, b = self.affine_form()
            return x * a.to(x.dtype) + b.to(x.dtype)
        rows = real_tokens(x)
        if self.sync and sync_enabled():
            return self._synced(x, rows)
        if rows.shape[0] == x.reshape(-1, x.shape[-1]).shape[0]:
            return super().forward(x.reshape(-1, x.shape[-1])).reshape(x.shape)
        # padding present: statistics (and running updates) from the real rows, applied to all
        mean, var = rows.mean(0), rows.var(0, unbiased=False)
        self._update_running(mean, rows.var(0, unbiased=True) if rows.shape[0] > 1 else var)
        y = (x - mean) * torch.rsqrt(var + self.eps)
        return y * self.weight + self.bias if self.affine else y

    def _synced(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Statistics over the real tokens of every process (sum, sum of squares, count)."""
        from torch.distributed.nn.functional import all_reduce  # autograd-aware: exact SyncBN gradients
        stats = torch.cat([rows.sum(0), rows.pow(2).sum(0), rows.new_tensor([rows.shape[0]])])
        total = all_reduce(stats)
        c = rows.shape[1]
        n = total[-1]
        mean = total[:c] / n
        var = (total[c:2 * c] / n - mean.pow(2)).clamp_min(0)
        self._update_running(mean.detach(), (var * n / (n - 1).clamp_min(1)).detach())
        y = (x - mean) * torch.rsqrt(var + self.eps)
        return y * self.weight + self.bias if self.affine else y

    @torch.no_grad()
    def _update_running(self, mean: torch.Tensor, var_unbiased: torch.Tensor) -> None:
        if not self.track_running_stats:
            return
        self.num_batches_tracked += 1
        m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), m)
        self.running_var.lerp_(var_unbiased.to(self.running_var.dtype), m)

    def affine_form(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Eval output ``a * x + b`` per channel, from the running statistics."""
        inv = torch.rsqrt(self.running_var + self.eps)
        w = self.weight if self.affine else torch.ones_like(inv)
        b = self.bias if self.affine else torch.zeros_like(inv)
        return w * inv, b - w * self.running_mean * inv
