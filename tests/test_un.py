"""Unified Normalization against a straightforward float64 re-implementation of METHODS.md.

The reference below is written from the specification alone and does not call the
production code. Over 25 steps it crosses the warm-up, uses the window, meets an outlier
step that the filter must skip, and runs past the ratio warm-up so r is clamped.
"""
from __future__ import annotations

import torch

from suite import create_norm
from suite.variants.masking import token_mask
from suite.variants.norms.un import UnifiedNorm

F64 = torch.float64


class ReferenceUN:
    def __init__(self, c: int, window: int, warmup: int, momentum: float, eps: float, r_warmup: int) -> None:
        self.c, self.w, self.warmup, self.m, self.eps, self.r_warmup = c, window, warmup, momentum, eps, r_warmup
        self.g, self.beta = torch.ones(c, dtype=F64), torch.zeros(c, dtype=F64)
        self.running_var, self.ema_gz = torch.ones(c, dtype=F64), torch.zeros(c, dtype=F64)
        self.buf_x2, self.buf_gz = torch.zeros(window, c, dtype=F64), torch.zeros(window, c, dtype=F64)
        self.t, self.skips = 0, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.c)
        self.t += 1
        t, w = self.t, self.w
        s = (rows ** 2).mean(dim=0)
        v = torch.sqrt(self.buf_x2).reshape(-1).var(unbiased=True)
        self.buf_x2[t % w] = s
        skip = False
        if t >= self.warmup and t > w:
            am = self.buf_x2.mean(dim=0)
            gm = torch.exp(torch.log(self.buf_x2).mean(dim=0))
            if torch.any(am - gm > w * v):
                skip = True
                self.buf_x2[t % w] = self.running_var.clone()
        if t <= w or t < self.warmup or skip:
            sigma2 = s
        else:
            sigma2 = torch.exp(torch.log(self.buf_x2).mean(dim=0))
        if t <= max(self.r_warmup, self.warmup) or skip:
            r = torch.ones(self.c, dtype=F64)
        else:
            r = torch.clamp(torch.sqrt(sigma2 + self.eps) / torch.sqrt(self.running_var + self.eps), 0.2, 5.0)
        z = x / torch.sqrt(sigma2 + self.eps)
        self.running_var = self.m * self.running_var + (1 - self.m) * sigma2
        self.saved = (z, r, sigma2, skip)
        self.skips.append(skip)
        return self.g * z + self.beta

    def backward(self, dy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z, r, sigma2, skip = self.saved
        t, w = self.t, self.w
        gd = dy * self.g * r
        gz = (gd * z).reshape(-1, self.c).mean(dim=0)
        self.buf_gz[t % w] = self.ema_gz.clone() if skip else gz
        if t <= w or t < self.warmup or skip:
            mean_gz = gz
        else:
            mean_gz = self.buf_gz.mean(dim=0)
        self.ema_gz = self.m * self.ema_gz + (1 - self.m) * mean_gz
        psi = mean_gz if skip else self.ema_gz
        dx = (gd - psi * z) / torch.sqrt(sigma2 + self.eps)
        dg = (dy * r * z).reshape(-1, self.c).sum(dim=0)
        return dx, dg


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def test_un_matches_the_reference_forward_and_backward_step_by_step() -> None:
    c, steps, outlier_step = 8, 25, 15
    kw = dict(window_size=4, warmup_iters=6, momentum=0.9, eps=1e-5, r_warmup=9)
    un = create_norm("un", c, outlier_filtration=True, **kw).double().train()
    ref = ReferenceUN(c, 4, 6, 0.9, 1e-5, 9)
    gen = torch.Generator().manual_seed(0)
    scales = torch.linspace(0.5, 2.0, c, dtype=F64)
    for step in range(1, steps + 1):
        x = torch.randn(3, 5, c, generator=gen, dtype=F64) * scales * (1 + 0.1 * step)
        if step == outlier_step:
            x = x * 30.0
        dy = torch.randn(3, 5, c, generator=gen, dtype=F64)
        xp = x.clone().requires_grad_(True)
        y = un(xp)
        y.backward(dy)
        y_ref = ref.forward(x)
        dx_ref, dg_ref = ref.backward(dy)
        assert rel(y.detach(), y_ref) <= 1e-6, f"forward differs at step {step}"
        assert rel(xp.grad, dx_ref) <= 1e-6, f"input gradient differs at step {step}"
        assert rel(un.weight.grad, dg_ref) <= 1e-6, f"weight gradient differs at step {step}"
        un.weight.grad = un.bias.grad = None
    assert ref.skips[outlier_step - 1] and sum(ref.skips) == 1  # the filter skipped exactly the outlier
    torch.testing.assert_close(un.running_var, ref.running_var, rtol=1e-9, atol=0)
    torch.testing.assert_close(un.ema_gz, ref.ema_gz, rtol=1e-9, atol=1e-12)
    assert int(un.t) == steps


def test_un_eval_is_the_running_variance_affine_map() -> None:
    un = create_norm("un", 6, warmup_iters=2).double().train()
    for _ in range(5):
        un(torch.randn(4, 7, 6, dtype=F64) * 3)
    with torch.no_grad():
        un.weight.uniform_(0.5, 1.5)
        un.bias.uniform_(-1, 1)
    un.eval()
    x = torch.randn(2, 7, 6, dtype=F64)
    expected = un.weight * x / torch.sqrt(un.running_var + un.eps) + un.bias
    t_before = int(un.t)
    torch.testing.assert_close(un(x), expected, rtol=1e-12, atol=1e-12)
    assert int(un.t) == t_before  # eval never advances the schedule


def test_un_statistics_skip_padding_tokens() -> None:
    un = create_norm("un", 4).double().train()
    x = torch.randn(2, 6, 4, dtype=F64)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 3:] = False
    x_padded = x.clone()
    x_padded[1, 3:] = 1e3  # garbage in the padding must not reach the statistics
    with token_mask(mask):
        y = un(x_padded)
    s = x[mask].pow(2).mean(0)
    torch.testing.assert_close(y[mask], (x / torch.sqrt(s + un.eps))[mask])


def test_un_defaults_and_keywords() -> None:
    un = create_norm("un", 4)
    assert (un.window_size, un.warmup_iters, un.momentum, un.eps, un.outlier_filtration) == (4, 4000, 0.9, 1e-5, True)
    custom = create_norm("un", 4, window_size=8, warmup_iters=10, outlier_filtration=False, momentum=0.5, eps=1e-3)
    assert (custom.window_size, custom.warmup_iters, custom.momentum, custom.eps) == (8, 10, 0.5, 1e-3)
    assert custom.buf_x2.shape == (8, 4) and not custom.outlier_filtration


def test_budget_rule_keeps_the_reference_warmups_capped_at_a_fifth_of_the_run() -> None:
    un = UnifiedNorm
    assert un.budget_kwargs(375_300) == {"warmup_iters": 4000, "r_warmup": 1000}  # a paper-length run
    assert un.budget_kwargs(1000) == {"warmup_iters": 200, "r_warmup": 200}  # the smoke imagenet run
    assert un.budget_kwargs(10_000) == {"warmup_iters": 2000, "r_warmup": 1000}
