"""pytest-benchmark: forward + backward of every registered norm at ViT-S shapes.

``make bench`` (or ``pytest benchmarks --benchmark-only``) runs them; compare with
``--benchmark-group-by=param:shape``. Train mode, float32, [batch, 197 tokens, 384 channels]
(ViT-S/16 at 224 px). These are micro-benchmarks of the training-form layers; what
inference costs is measured on deployed models by ``run_suite.py deploy-bench``.
"""
from __future__ import annotations

import pytest
import torch

from suite import create_norm
from suite.variants import NORMS

SHAPES = {"vits-b8": (8, 197, 384), "vits-b1": (1, 197, 384)}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", NORMS.names())
def test_norm_forward_backward(benchmark, name: str, shape: str) -> None:
    torch.manual_seed(0)
    norm = create_norm(name, SHAPES[shape][-1]).train()
    x = torch.randn(*SHAPES[shape], requires_grad=True)
    dy = torch.randn(*SHAPES[shape])

    def step() -> None:
        norm(x).backward(dy)
        x.grad = None
        for p in norm.parameters():
            p.grad = None

    benchmark.group = shape
    benchmark(step)
