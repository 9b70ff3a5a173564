"""Test-only norm plugins (loaded through NORMBENCH_PLUGINS): some raise, one gives NaN, one cannot export."""
from __future__ import annotations

import os

import torch
import torch.nn as nn

from suite import register_norm


@register_norm("boom")
class Boom(nn.Module):
    """Test plugin: raises inside the cell (the sweep must record an error row and go on)."""

    def __init__(self, dim: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom from the test plugin")


@register_norm("rankboom")
class RankBoom(nn.Module):
    """Test plugin: LayerNorm that raises in training on rank 1 of a DDP cell (rank 0 then waits for it)."""

    def __init__(self, dim: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and os.environ.get("RANK") == "1":
            raise RuntimeError("rank 1 fails in training (test plugin)")
        return self.norm(x)


@register_norm("nanorm")
class NaNNorm(nn.Module):
    """Test plugin: outputs NaN, so training must stop as `diverged`."""

    def __init__(self, dim: int, *, eps: float = 1e-6) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * float("nan")


@torch.library.custom_op("normbench_test::scaled_rms", mutates_args=())
def _scaled_rms(x: torch.Tensor, eps: float) -> torch.Tensor:
    """An operator ONNX has no translation for: torch.compile calls it opaquely, export fails."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


@_scaled_rms.register_fake
def _(x: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.empty_like(x)


def _scaled_rms_backward(ctx, grad: torch.Tensor):
    (x,) = ctx.saved_tensors
    with torch.enable_grad():
        x = x.detach().requires_grad_()
        y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + ctx.eps)
        (gx,) = torch.autograd.grad(y, x, grad)
    return gx, None


def _scaled_rms_setup(ctx, inputs, output) -> None:
    ctx.save_for_backward(inputs[0])
    ctx.eps = inputs[1]


_scaled_rms.register_autograd(_scaled_rms_backward, setup_context=_scaled_rms_setup)


@register_norm("noexport")
class NoExport(nn.Module):
    """Test plugin: an RMS norm through a custom operator that ONNX export cannot translate."""

    def __init__(self, dim: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _scaled_rms(x, self.eps) * self.weight
