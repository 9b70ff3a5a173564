"""Every registered norm, parametrized from the registry: a dropped-in file is tested with no edits."""
from __future__ import annotations

import pytest
import torch

from suite import create_model, create_norm, deploy
from suite.models.deploy import deploy_error
from suite.variants import NORMS
from suite.variants.base import budget_kwargs

NORM_NAMES = NORMS.names()
TINY_VIT = dict(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2, num_classes=5)


@pytest.mark.parametrize("name", NORM_NAMES)
def test_shape_finite_gradients_and_state_dict(name: str) -> None:
    torch.manual_seed(0)
    norm = create_norm(name, 16).train()
    x = torch.randn(4, 7, 16, requires_grad=True)
    y = norm(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for p in norm.parameters():
        assert p.grad is None or torch.isfinite(p.grad).all()
    clone = create_norm(name, 16)
    clone.load_state_dict(norm.state_dict(), strict=True)
    norm.eval(), clone.eval()
    torch.testing.assert_close(clone(x), norm(x))


@pytest.mark.parametrize("name", NORM_NAMES)
def test_swaps_into_a_tiny_vit_trains_and_deploys(name: str) -> None:
    torch.manual_seed(0)
    norm_cls = NORMS.get(name)
    model = create_model("vit_tiny_patch16_224", name, variant_kwargs=budget_kwargs(norm_cls, 5), **TINY_VIT)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 5, (8,))
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    deployed = deploy(model)
    assert deployed is not model and model.training is False
    assert deploy_error(model, deployed, x) <= 1e-5


@pytest.mark.parametrize("name", NORM_NAMES)
def test_swaps_into_a_tiny_gpt2_and_trains(name: str) -> None:
    torch.manual_seed(0)
    norm_cls = NORMS.get(name)
    model = create_model("gpt2-tiny", name, variant_kwargs=budget_kwargs(norm_cls, 5))
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    ids = torch.randint(0, 512, (4, 16))
    for _ in range(3):
        loss = model(ids, labels=ids).loss
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    assert deploy_error(model, deploy(model), ids) <= 1e-5
