"""Every registered norm, attention variant and placement, parametrized from the registries: a
dropped-in file is tested with no edits."""
from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from suite import create_model, create_norm, deploy
from suite.errors import NotApplicable
from suite.models.deploy import deploy_error
from suite.variants import ATTENTION, NORMS, PLACEMENTS, parse_variant
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


def train_steps(model: torch.nn.Module, loss_fn: Callable[[], torch.Tensor], steps: int = 3) -> None:
    """A few AdamW steps, each loss finite, then eval mode."""
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    for _ in range(steps):
        loss = loss_fn()
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


@pytest.mark.parametrize("name", NORM_NAMES)
def test_swaps_into_a_tiny_vit_trains_and_deploys(name: str) -> None:
    torch.manual_seed(0)
    norm_cls = NORMS.get(name)
    model = create_model("vit_tiny_patch16_224", name, variant_kwargs=budget_kwargs(norm_cls, 5), **TINY_VIT)
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 5, (8,))
    train_steps(model, lambda: torch.nn.functional.cross_entropy(model(x), y))
    deployed = deploy(model)
    assert deployed is not model and model.training is False
    assert deploy_error(model, deployed, x) <= 1e-5


@pytest.mark.parametrize("name", NORM_NAMES)
def test_swaps_into_a_tiny_gpt2_and_trains(name: str) -> None:
    torch.manual_seed(0)
    norm_cls = NORMS.get(name)
    model = create_model("gpt2-tiny", name, variant_kwargs=budget_kwargs(norm_cls, 5))
    ids = torch.randint(0, 512, (4, 16))
    train_steps(model, lambda: model(ids, labels=ids).loss)
    assert deploy_error(model, deploy(model), ids) <= 1e-5


# -- attention variants and placements, parametrized from their registries ---------------------------------------
FAMILY_MODELS = {
    "vit": ("vit_tiny_patch16_224", TINY_VIT, lambda: torch.randn(8, 3, 16, 16)),
    "gpt2": ("gpt2-tiny", {}, lambda: torch.randint(0, 512, (4, 16))),
}
#: modifier attentions and placements are crossed with every norm ("any norm crossed with it")
CROSSED = [f"+{a}" for a in ATTENTION.names() if getattr(ATTENTION.get(a), "modifier", False)] + \
          [f"@{p}" for p in PLACEMENTS.names()]


def trains_and_deploys(model_name: str, variant: str, kw: dict, make: Callable[[], torch.Tensor]) -> None:
    """Build (a not-applicable combination skips with its reason), train three steps, check the deploy."""
    torch.manual_seed(0)
    v = parse_variant(variant)
    try:
        model = create_model(model_name, v, variant_kwargs=budget_kwargs(v.norm_cls, 5), **kw)
    except NotApplicable as e:
        pytest.skip(f"not-applicable: {e}")

    def loss() -> torch.Tensor:
        x = make()
        out = model(x, labels=x) if model_name.startswith("gpt2") else model(x)
        return out.loss if hasattr(out, "loss") else out.float().pow(2).mean()

    train_steps(model, loss)
    deployed = deploy(model)
    assert deploy_error(model, deployed, make()) <= 1e-5


@pytest.mark.parametrize("family", FAMILY_MODELS)
@pytest.mark.parametrize("attention", ATTENTION.names())
def test_every_attention_variant_trains_and_deploys(attention: str, family: str) -> None:
    name, kw, make = FAMILY_MODELS[family]
    trains_and_deploys(name, f"ln+{attention}", kw, make)


@pytest.mark.parametrize("family", FAMILY_MODELS)
@pytest.mark.parametrize("placement", PLACEMENTS.names())
def test_every_placement_trains_and_deploys(placement: str, family: str) -> None:
    name, kw, make = FAMILY_MODELS[family]
    trains_and_deploys(name, f"ln@{placement}", kw, make)


@pytest.mark.parametrize("family", FAMILY_MODELS)
@pytest.mark.parametrize("suffix", CROSSED)
@pytest.mark.parametrize("norm", NORM_NAMES)
def test_every_norm_crossed_with_modifiers_and_placements(norm: str, suffix: str, family: str) -> None:
    name, kw, make = FAMILY_MODELS[family]
    trains_and_deploys(name, f"{norm}{suffix}", kw, make)
