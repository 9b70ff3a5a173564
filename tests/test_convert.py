"""Exact Pre-LN -> Pre-RMSNorm / Pre-CRMSNorm conversions."""
from __future__ import annotations

import pytest
import timm
import torch
import torch.nn as nn

from suite import convert_ln_to_crms, convert_ln_to_rms, create_model
from suite.models.arch import NotConvertible
from suite.models.deploy import deploy_error
from suite.variants.rmsnorm import CRMSNorm, RMSNorm


def perturb_ln(model: nn.Module) -> nn.Module:
    """Random LN affine (and LayerScale) so folding has something to do."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.copy_(1 + 0.3 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
            if hasattr(m, "gamma") and isinstance(m.gamma, nn.Parameter):
                m.gamma.copy_(0.5 + 0.3 * torch.randn(m.gamma.shape, generator=g))
        for name in ("pos_embed", "cls_token", "dist_token"):  # timm inits some of these to zero
            p = getattr(model, name, None)
            if isinstance(p, nn.Parameter):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
    return model.eval()


MODELS = {
    "deit": (lambda: timm.create_model("deit_tiny_patch16_224", img_size=32, num_classes=7),
             lambda: torch.randn(2, 3, 32, 32)),
    "deit-distilled": (lambda: timm.create_model("deit_tiny_distilled_patch16_224", img_size=32, num_classes=7),
                       lambda: torch.randn(2, 3, 32, 32)),
    "vit-avg-layerscale": (lambda: timm.create_model("vit_small_patch16_224", img_size=32, depth=4, global_pool="avg",
                                                     init_values=0.1, num_classes=7, qkv_bias=False),
                           lambda: torch.randn(2, 3, 32, 32)),
    "gpt2-tied": (lambda: create_model("gpt2-tiny", "ln"), lambda: torch.randint(0, 512, (2, 16))),
}


def out(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    y = model(x)
    return y.logits if hasattr(y, "logits") else y


@pytest.mark.parametrize("convert", [convert_ln_to_rms, convert_ln_to_crms], ids=["rms", "crms"])
@pytest.mark.parametrize("which", MODELS)
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)], ids=["fp32", "fp64"])
def test_conversion_is_exact(which: str, convert, dtype: torch.dtype, tol: float) -> None:
    build, make = MODELS[which]
    torch.manual_seed(0)
    model = perturb_ln(build()).to(dtype)
    x = make()
    x = x.to(dtype) if x.is_floating_point() else x
    converted = convert(model)
    assert deploy_error(model, converted, x) <= tol
    assert not any(isinstance(m, nn.LayerNorm) for m in converted.modules())
    assert any(isinstance(m, nn.LayerNorm) for m in model.modules())  # the input is untouched


def test_crms_really_runs_at_width_d_minus_1() -> None:
    vit = convert_ln_to_crms(perturb_ln(MODELS["deit"][0]()))
    assert vit.patch_embed.proj.out_channels == 191 and vit.pos_embed.shape[-1] == 191
    assert vit.blocks[0].attn.qkv.in_features == 191 and vit.blocks[0].attn.proj.out_features == 191
    assert vit.head.in_features == 191 and isinstance(vit.blocks[0].norm1, CRMSNorm)
    gpt = create_model("gpt2-tiny", "ln").eval()
    small = convert_ln_to_crms(gpt)
    assert small.transformer.wte.embedding_dim == 63 and small.lm_head.in_features == 63
    assert small.lm_head.weight is not small.transformer.wte.weight  # untied
    assert gpt.lm_head.weight is gpt.transformer.wte.weight          # the original stays tied
    hidden = small.transformer(torch.randint(0, 512, (1, 5))).last_hidden_state
    assert hidden.shape[-1] == 63


def test_rms_form_has_a_zero_mean_stream_and_no_affine() -> None:
    vit = convert_ln_to_rms(perturb_ln(MODELS["deit"][0]()))
    norm = vit.blocks[0].norm1
    assert isinstance(norm, RMSNorm) and norm.weight is None and norm.eps == 1e-6
    stream = vit.blocks(vit._pos_embed(vit.patch_embed(torch.randn(1, 3, 32, 32))))
    assert stream.mean(-1).abs().max() < 1e-5 * stream.abs().max()


@pytest.mark.parametrize("build, why", [
    (lambda: timm.create_model("vit_tiny_patch16_224", img_size=32,
                               block_fn=timm.models.vision_transformer.ResPostBlock),
     "not a Pre-LN Block"),
    (lambda: timm.create_model("vit_tiny_patch16_224", img_size=32, global_pool="max", fc_norm=False),
     "not linear"),
    (lambda: timm.create_model("vit_tiny_patch16_224", img_size=32, pre_norm=True), "writes the stream"),
    (lambda: timm.create_model("swin_tiny_patch4_window7_224", img_size=56, depths=(1,), num_heads=(1,), embed_dim=16),
     "support timm ViT/DeiT and HF GPT-2"),
    (lambda: create_model("llama-tiny", "ln"), "support timm ViT/DeiT and HF GPT-2"),
])
def test_unsupported_models_say_why(build, why: str) -> None:
    with pytest.raises(NotConvertible, match=why):
        convert_ln_to_rms(build())
