"""prerms/crms train on the same trajectory as ln from the same seed (float64, 50 steps)."""
from __future__ import annotations

import pytest
import torch

from suite import create_model, deploy
from suite.models.deploy import deploy_error
from suite.sweep.train import create_optimizer_v2

STEPS = 50
VIT = dict(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2, num_classes=5)


def losses(name: str, variant: str, kwargs: dict, make_batch) -> tuple[list[float], torch.nn.Module]:
    torch.manual_seed(0)
    model = create_model(name, variant, **kwargs).double()
    opt = create_optimizer_v2(model, "adamw", lr=3e-3, weight_decay=0.05)  # the suite's param groups
    gen = torch.Generator().manual_seed(1)
    data = [make_batch(gen) for _ in range(4)]  # a small fixed set, cycled, so the loss can fall
    out = []
    for step in range(STEPS):
        x, y = data[step % len(data)]
        pred = model(x)
        logits = pred.logits if hasattr(pred, "logits") else pred
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        out.append(loss.item())
    return out, model


CASES = {
    "vit": ("vit_tiny_patch16_224", VIT, lambda g: (torch.randn(8, 3, 16, 16, generator=g, dtype=torch.float64),
                                                   torch.randint(0, 5, (8,), generator=g))),
    "vit-avg-layerscale": ("vit_tiny_patch16_224", dict(VIT, global_pool="avg", init_values=0.5),
                           lambda g: (torch.randn(8, 3, 16, 16, generator=g, dtype=torch.float64),
                                      torch.randint(0, 5, (8,), generator=g))),
    "gpt2": ("gpt2-tiny", {}, lambda g: (lambda t: (t, t))(torch.randint(0, 512, (4, 12), generator=g))),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("variant", ["prerms", "crms"])
def test_same_loss_curve_as_ln(case: str, variant: str) -> None:
    name, kwargs, make = CASES[case]
    ref, _ = losses(name, "ln", kwargs, make)
    got, model = losses(name, variant, kwargs, make)
    rel = max(abs(a - b) / abs(b) for a, b in zip(got, ref))
    assert rel <= 1e-4, f"max relative loss difference {rel:.2e}"
    assert ref[-1] < ref[0]  # it did train
    model.eval()
    x = make(torch.Generator().manual_seed(2))[0]
    assert deploy_error(model, deploy(model), x) <= 1e-10  # and deploys exactly (float64)
