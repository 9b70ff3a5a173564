"""Deploy folding for every foldable variant on every supported family."""
from __future__ import annotations

import pytest
import torch

from suite import create_model, deploy
from suite.models.deploy import count_norm_modules, deploy_error, is_foldable
from suite.variants import NORMS
from suite.variants.base import norm_trait

FOLDABLE = [n for n, c in NORMS.items() if norm_trait(c, "foldable")]


def vit(pool: str, **extra) -> tuple:
    kw = dict(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2, num_classes=5, global_pool=pool, **extra)
    return "vit_tiny_patch16_224", kw, lambda b: torch.randn(b, 3, 16, 16)


FAMILIES = {
    "deit-cls": vit("token"),
    "vit-avg-fcnorm-layerscale": vit("avg", init_values=0.3),
    "deit-distilled": ("deit_tiny_distilled_patch16_224", dict(img_size=16, patch_size=4, embed_dim=32, depth=2,
                                                              num_heads=2, num_classes=5),
                       lambda b: torch.randn(b, 3, 16, 16)),
    "swin": ("swin_tiny_patch4_window7_224", dict(img_size=56, embed_dim=16, depths=(1, 1), num_heads=(1, 2),
                                                  window_size=7, num_classes=5), lambda b: torch.randn(b, 3, 56, 56)),
    "gpt2": ("gpt2-tiny", {}, lambda b: torch.randint(0, 512, (b, 12))),
    "llama": ("llama-tiny", {}, lambda b: torch.randint(0, 512, (b, 12))),
}


def randomize_norms(model: torch.nn.Module) -> None:
    """Move every norm parameter off its init (the LM placement starts RepBN at zero)."""
    with torch.no_grad():
        for m in model.modules():
            if is_foldable(m):
                for _, p in m.named_parameters():
                    p.copy_(torch.empty_like(p).uniform_(0.5, 1.5) if p.dim() else torch.tensor(0.8))


def logits(out) -> torch.Tensor:
    return out.logits if hasattr(out, "logits") else out


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("variant", FOLDABLE)
def test_deployed_equals_eval_and_no_norm_remains(family: str, variant: str) -> None:
    name, kw, make = FAMILIES[family]
    torch.manual_seed(0)
    model = create_model(name, variant, variant_kwargs={"total_steps": 3} if variant == "prepbn" else {}, **kw)
    randomize_norms(model)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    for _ in range(5):  # a few steps: running statistics, schedules and counters move
        loss = logits(model(make(4))).float().pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    deployed = deploy(model)
    x = make(3)
    assert deploy_error(model, deployed, x) <= 1e-5
    assert count_norm_modules(deployed) == 0
    assert count_norm_modules(model) > 0  # the input model is untouched
    assert not any(m.training for m in deployed.modules())


def test_swin_padding_is_refused_not_silently_wrong() -> None:
    model = create_model("swin_tiny_patch4_window7_224", "bn", img_size=40, embed_dim=16, depths=(1,), num_heads=(1,),
                         window_size=7, num_classes=5).eval()
    with pytest.raises(NotImplementedError, match="divisible"):
        deploy(model)


def test_patch_embed_norm_after_a_conv_keeps_the_conv_bias_term() -> None:
    from suite.models.fold import fold_after_conv
    conv = torch.nn.Conv2d(3, 4, 2, stride=2).double()
    a, b = torch.rand(4, dtype=torch.float64) + 0.5, torch.randn(4, dtype=torch.float64)
    x = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    expected = conv(x) * a[:, None, None] + b[:, None, None]
    torch.testing.assert_close(fold_after_conv(conv, a, b)(x), expected)


def test_non_foldable_variants_deploy_as_themselves() -> None:
    # (point-wise norms such as dyt fold their affine and keep a core: tests/test_new_variants.py)
    for variant in ("ln", "rms", "lns"):
        model = create_model(*FAMILIES["deit-cls"][:1], variant, **FAMILIES["deit-cls"][1]).eval()
        deployed = deploy(model)
        assert count_norm_modules(deployed) == count_norm_modules(model) == 5
