"""Derf, LayerNorm Scaling, QK-norm, Peri-LN, point-wise folding and timm's reparameterize_model.

Formulas are checked in float64 against straightforward re-implementations written here (Python's
``math.erf``, LayerNorm from its mean and variance, attention from its definition), not against
the suite's own helpers.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from suite import create_model, create_norm, deploy, parse_variant
from suite.errors import NotApplicable
from suite.models.arch import OUTPUT_NORM
from suite.models.deploy import count_norm_modules, deploy_error, is_foldable, is_pointwise
from suite.variants import NORMS, Variant
from suite.variants.base import ChannelAffine, placement_kwargs

TINY_VIT = dict(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2, num_classes=5)
FAMILIES = {
    "deit": ("deit_tiny_patch16_224", TINY_VIT, lambda b: torch.randn(b, 3, 16, 16)),
    "gpt2": ("gpt2-tiny", {}, lambda b: torch.randint(0, 512, (b, 12))),
    "llama": ("llama-tiny", {}, lambda b: torch.randint(0, 512, (b, 12))),
}


def logits(out: object) -> torch.Tensor:
    return out.logits if hasattr(out, "logits") else out  # type: ignore[attr-defined, return-value]


def layer_norm(x: torch.Tensor, g: torch.Tensor, b: torch.Tensor | None, eps: float) -> torch.Tensor:
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    y = (x - mu) / torch.sqrt(var + eps) * g
    return y if b is None else y + b


def randomize(model: nn.Module) -> None:
    """Move every norm-like parameter (and q/k/out norms) off its initial value."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or "ln_" in name or p.dim() == 0:
                p.copy_(torch.empty(p.shape, dtype=p.dtype).uniform_(0.5, 1.5, generator=gen) if p.dim()
                        else torch.tensor(0.7, dtype=p.dtype))


def train_steps(model: nn.Module, make, steps: int = 3) -> None:
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    for _ in range(steps):
        loss = logits(model(make(4))).float().pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


# -- the formulas, float64 ----------------------------------------------------------------------------------------
def test_derf_formula_float64() -> None:
    norm = create_norm("derf", 7).double()
    assert float(norm.alpha.detach()) == 0.5 and float(norm.shift.detach()) == 0.0  # reference initial values
    with torch.no_grad():
        norm.alpha.fill_(0.8)
        norm.shift.fill_(-0.3)
        norm.weight.copy_(torch.linspace(0.5, 2.0, 7, dtype=torch.float64))
        norm.bias.copy_(torch.linspace(-1.0, 1.0, 7, dtype=torch.float64))
    x = torch.randn(3, 5, 7, dtype=torch.float64) * 3
    g, b = norm.weight.detach().numpy(), norm.bias.detach().numpy()
    erf = np.vectorize(math.erf)
    expected = g * erf(0.8 * x.numpy() - 0.3) + b
    np.testing.assert_allclose(norm(x).detach().numpy(), expected, rtol=1e-13, atol=1e-13)
    core, a, c = norm.pointwise_form()
    np.testing.assert_allclose((core(x) * a + c).detach().numpy(), expected, rtol=1e-13, atol=1e-13)


def test_derf_language_model_initial_alpha_follows_the_gpt2_reference() -> None:
    model = create_model("gpt2-tiny", "derf")
    alphas = {float(m.alpha) for m in model.modules() if type(m).__name__ == "Derf"}
    assert alphas == {1.0}
    vit = create_model("vit_tiny_patch16_224", "derf", **TINY_VIT)
    assert {float(m.alpha) for m in vit.modules() if type(m).__name__ == "Derf"} == {0.5}


@pytest.mark.parametrize("base", ["ln", "rms"])
def test_lns_formula_float64(base: str) -> None:
    norm = create_norm("lns", 6, layer=4, base=base, eps=1e-5).double()
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 1.5, 6, dtype=torch.float64))
        if norm.bias is not None:
            norm.bias.copy_(torch.linspace(-0.2, 0.3, 6, dtype=torch.float64))
    x = torch.randn(2, 3, 6, dtype=torch.float64) * 2 + 1
    if base == "ln":
        expected = layer_norm(x, norm.weight.detach(), norm.bias.detach(), 1e-5) / 2.0  # 1/sqrt(4)
    else:
        expected = x / torch.sqrt((x ** 2).mean(-1, keepdim=True) + 1e-5) * norm.weight.detach() / 2.0
    torch.testing.assert_close(norm(x), expected, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(norm.deploy_form()(x), expected, rtol=1e-13, atol=1e-13)
    assert create_norm("lns", 6).scale == 1.0  # outside a block: unscaled


def test_lns_takes_its_depth_from_the_adapter() -> None:
    gpt2 = create_model("gpt2-tiny", "lns")
    h = gpt2.transformer.h
    assert (h[0].ln_1.layer, h[0].ln_2.layer, h[1].ln_1.layer, h[1].ln_2.layer) == (1, 1, 2, 2)
    assert gpt2.transformer.ln_f.layer is None and gpt2.transformer.ln_f.scale == 1.0  # the final norm: unscaled
    assert h[1].ln_2.scale == pytest.approx(1 / math.sqrt(2)) and h[0].ln_1.eps == 1e-5
    vit = create_model("vit_tiny_patch16_224", "lns", **TINY_VIT)
    assert [b.norm1.layer for b in vit.blocks] == [1, 2] and vit.norm.layer is None
    llama = create_model("llama-tiny", "lns")
    assert llama.model.layers[1].input_layernorm.base == "rms" and llama.model.layers[1].input_layernorm.layer == 2


def test_a_two_argument_placement_hook_still_works_where_it_is_declared() -> None:
    class Old:
        hooks = 0   # the first plugins' form, declared: the harness never reads a hook's signature

        @classmethod
        def placement_kwargs(cls, family: str, replaced: nn.Module) -> dict:
            return {"family": family}

    assert placement_kwargs(Old, "lm", nn.Identity(), layer=3) == {"family": "lm"}
    assert placement_kwargs(NORMS.get("lns"), "vision", nn.LayerNorm(4), layer=3)["layer"] == 3


def _randomize_qk(attn_norms: list[nn.Module]) -> None:
    with torch.no_grad():
        for i, n in enumerate(attn_norms):
            n.weight.copy_(torch.linspace(0.5, 1.5, n.weight.numel(), dtype=n.weight.dtype) + 0.1 * i)
            n.bias.copy_(torch.linspace(-0.5, 0.5, n.bias.numel(), dtype=n.bias.dtype) * (i + 1))


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
    """Softmax attention from its definition; q, k, v [B, h, N, d]."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        n = q.shape[-2]
        scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    return scores.softmax(-1) @ v


def test_qknorm_per_head_in_a_vit_float64() -> None:
    model = create_model("vit_tiny_patch16_224", "ln+qknorm", **TINY_VIT).double().eval()
    attn = model.blocks[0].attn
    _randomize_qk([attn.q_norm, attn.k_norm])
    x = torch.randn(2, 17, 32, dtype=torch.float64)
    h, d = attn.num_heads, attn.head_dim
    qkv = x @ attn.qkv.weight.T + attn.qkv.bias
    q, k, v = (t.reshape(2, 17, h, d).transpose(1, 2) for t in qkv.split(32, -1))
    q = layer_norm(q, attn.q_norm.weight, attn.q_norm.bias, attn.q_norm.eps)  # per head, over head_dim
    k = layer_norm(k, attn.k_norm.weight, attn.k_norm.bias, attn.k_norm.eps)
    o = _attention(q, k, v, causal=False).transpose(1, 2).reshape(2, 17, 32)
    expected = o @ attn.proj.weight.T + attn.proj.bias
    with torch.no_grad():
        torch.testing.assert_close(attn(x), expected, rtol=1e-10, atol=1e-12)
    assert attn.q_norm.weight.shape == (16,)


def test_qknorm_per_head_in_gpt2_float64() -> None:
    model = create_model("gpt2-tiny", "ln+qknorm").double().eval()
    attn = model.transformer.h[1].attn
    c_attn = attn.c_attn
    _randomize_qk([c_attn.q_norm, c_attn.k_norm])
    x = torch.randn(2, 6, 64, dtype=torch.float64)
    h, d = attn.num_heads, attn.head_dim
    qkv = x @ c_attn.weight + c_attn.bias  # HF Conv1D: [in, out]
    q, k, v = (t.reshape(2, 6, h, d) for t in qkv.split(64, -1))
    q = layer_norm(q, c_attn.q_norm.weight, c_attn.q_norm.bias, c_attn.q_norm.eps).transpose(1, 2)
    k = layer_norm(k, c_attn.k_norm.weight, c_attn.k_norm.bias, c_attn.k_norm.eps).transpose(1, 2)
    o = _attention(q, k, v.transpose(1, 2), causal=True).transpose(1, 2).reshape(2, 6, 64)
    expected = o @ attn.c_proj.weight + attn.c_proj.bias
    with torch.no_grad():
        torch.testing.assert_close(attn(x)[0], expected, rtol=1e-10, atol=1e-12)


def test_peri_block_output_vit_float64() -> None:
    model = create_model("vit_tiny_patch16_224", "ln@peri", init_values=0.5, **TINY_VIT).double().eval()
    randomize(model)
    blk = model.blocks[1]
    x = torch.randn(2, 17, 32, dtype=torch.float64)
    a_out, m_out = getattr(blk.attn, OUTPUT_NORM), getattr(blk.mlp, OUTPUT_NORM)
    with torch.no_grad():
        raw_attn = type(blk.attn).forward  # the sub-layers without the placement's hook
        raw_mlp = type(blk.mlp).forward
        h = layer_norm(x, blk.norm1.weight, blk.norm1.bias, blk.norm1.eps)
        y = x + blk.ls1.gamma * layer_norm(raw_attn(blk.attn, h), a_out.weight, a_out.bias, a_out.eps)
        h = layer_norm(y, blk.norm2.weight, blk.norm2.bias, blk.norm2.eps)
        expected = y + blk.ls2.gamma * layer_norm(raw_mlp(blk.mlp, h), m_out.weight, m_out.bias, m_out.eps)
        torch.testing.assert_close(blk(x), expected, rtol=1e-10, atol=1e-12)


def test_peri_block_output_gpt2_float64() -> None:
    model = create_model("gpt2-tiny", "ln@peri").double().eval()
    randomize(model)
    blk = model.transformer.h[0]
    x = torch.randn(2, 7, 64, dtype=torch.float64)
    a_out, m_out = getattr(blk.attn, OUTPUT_NORM), getattr(blk.mlp, OUTPUT_NORM)
    with torch.no_grad():
        h = layer_norm(x, blk.ln_1.weight, blk.ln_1.bias, blk.ln_1.eps)
        y = x + layer_norm(type(blk.attn).forward(blk.attn, h)[0], a_out.weight, a_out.bias, a_out.eps)
        h = layer_norm(y, blk.ln_2.weight, blk.ln_2.bias, blk.ln_2.eps)
        expected = y + layer_norm(type(blk.mlp).forward(blk.mlp, h), m_out.weight, m_out.bias, m_out.eps)
        out = blk(x)
        torch.testing.assert_close(out[0] if isinstance(out, tuple) else out, expected, rtol=1e-10, atol=1e-12)


# -- deploy -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["deit", "gpt2"])
@pytest.mark.parametrize("variant", ["dyt", "derf", "lns"])
def test_deploy_is_exact_and_folds(variant: str, family: str) -> None:
    name, kw, make = FAMILIES[family]
    torch.manual_seed(0)
    model = create_model(name, variant, **kw)
    randomize(model)
    train_steps(model, make)
    deployed = deploy(model)
    assert deploy_error(model, deployed, make(3)) < 1e-5
    norm_cls = NORMS.get(variant)
    if variant == "lns":  # the scale is inside a plain LayerNorm's affine: LN's deploy cost
        assert not any(isinstance(m, norm_cls) for m in deployed.modules())
        assert sum(isinstance(m, nn.LayerNorm) for m in deployed.modules()) == count_norm_modules(model)
    else:  # every point-wise norm that feeds a linear layer is one element-wise op now
        assert not any(is_pointwise(m) for m in deployed.modules())
        assert count_norm_modules(deployed) == 0
        cores = [m for m in deployed.modules() if type(m).__name__.endswith("Core")]
        assert len(cores) == count_norm_modules(model) and not any(p.numel() > 1 for c in cores
                                                                   for p in c.parameters())


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("variant", ["bn+qknorm@peri", "prepbn@peri", "un+qknorm", "derf+qknorm@peri"])
def test_norms_added_by_qknorm_and_peri_deploy_exactly(variant: str, family: str) -> None:
    name, kw, make = FAMILIES[family]
    torch.manual_seed(0)
    model = create_model(name, variant, variant_kwargs={"total_steps": 2} if "prepbn" in variant else {}, **kw)
    randomize(model)
    train_steps(model, make, steps=4)
    deployed = deploy(model)
    assert deploy_error(model, deployed, make(3)) < 1e-5
    if parse_variant(variant).norm_cls.foldable:  # folded on the producer side: nothing left
        assert count_norm_modules(deployed) == 0
    else:  # point-wise q/k and output norms stay (nothing linear reads them); the stream ones fold
        assert count_norm_modules(deployed) == count_norm_modules(model) - 5


def test_pointwise_norm_after_a_convolution_stays() -> None:
    model = create_model("swin_tiny_patch4_window7_224", "dyt", img_size=56, embed_dim=16, depths=(1, 1),
                         num_heads=(1, 2), window_size=7, num_classes=5).eval()
    deployed = deploy(model)
    assert [n for n, m in deployed.named_modules() if is_pointwise(m)] == ["patch_embed.norm"]
    assert deploy_error(model, deployed, torch.randn(2, 3, 56, 56)) < 1e-5


# -- what does not apply ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("model_name", "variant", "needle"), [
    ("gpt2-tiny", "crms@peri", "exact rewrite of a Pre-LN model"),
    ("vit_tiny_patch16_224", "prerms@peri", "no exact RMSNorm form"),
    ("vit_tiny_patch16_224", "ln+sla+qknorm", "no softmax"),
    ("swin_tiny_patch4_window7_224", "ln+qknorm", "no surgery for timm Swin"),
    ("swin_tiny_patch4_window7_224", "rms@peri", "no surgery for timm Swin"),
])
def test_not_applicable_with_the_reason(model_name: str, variant: str, needle: str) -> None:
    kw = TINY_VIT if model_name.startswith("vit") else {} if model_name.startswith("gpt2") else dict(
        img_size=56, embed_dim=16, depths=(1, 1), num_heads=(1, 2), window_size=7, num_classes=5)
    with pytest.raises(NotApplicable, match=needle):
        create_model(model_name, variant, **kw)


def test_variant_names_compose() -> None:
    v = parse_variant("dyt+qknorm+sla@peri")
    assert v == Variant("dyt", "sla+qknorm", "peri") and v.name == "dyt+sla+qknorm@peri"
    assert v.attentions == ("sla", "qknorm")
    assert v.versions() == {"norm": "2", "attention": "1+1", "placement": "1"}
    assert parse_variant("qknorm@peri").name == "ln+qknorm@peri"
    assert parse_variant(" rms @ peri ").name == "rms@peri"


# -- timm's reparameterize_model ----------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["deit", "gpt2"])
@pytest.mark.parametrize("variant", ["prepbn", "dyt", "crms"])
def test_timm_reparameterize_model_returns_the_deployed_model(variant: str, family: str) -> None:
    from timm.utils import reparameterize_model
    name, kw, make = FAMILIES[family]
    torch.manual_seed(0)
    model = create_model(name, variant, variant_kwargs={"total_steps": 2} if variant == "prepbn" else {}, **kw)
    randomize(model)
    train_steps(model, make, steps=4)
    before = count_norm_modules(model)
    folded = reparameterize_model(model)  # timm deep-copies, then calls fuse()/reparameterize() on every child
    assert folded is not model and count_norm_modules(model) == before  # the input is untouched
    assert not any(is_foldable(m) or is_pointwise(m) for m in folded.modules())
    x = make(3)
    assert deploy_error(deploy(model), folded, x) < 1e-5
    assert deploy_error(model, folded, x) < 1e-5
    assert count_norm_modules(folded) == count_norm_modules(deploy(model))


def test_the_handle_follows_copies_and_a_norm_fuses_on_its_own() -> None:
    model = create_model("vit_tiny_patch16_224", "bn", **TINY_VIT)
    clone = copy.deepcopy(model)
    assert clone.normbench_reparam.owner is clone and model.normbench_reparam.owner is model
    assert "normbench_reparam" not in "".join(model.state_dict())
    norm = create_norm("prepbn", 8, total_steps=2).train()
    for _ in range(3):
        norm(torch.randn(4, 5, 8))
    fused = norm.eval().fuse()
    x = torch.randn(2, 3, 8)
    assert isinstance(fused, ChannelAffine)
    torch.testing.assert_close(fused(x), norm(x))
    lns = create_norm("lns", 8, layer=9)
    assert isinstance(lns.fuse(), nn.LayerNorm)
    torch.testing.assert_close(lns.fuse()(x), lns(x))


def test_listing_cites_the_new_entries() -> None:
    from suite.cli.run import listing
    text = listing()
    for needle in ("derf", "2512.10938", "lns", "NeurIPS 2025", "qknorm", "ICML 2023", "@peri", "Kim et al."):
        assert needle in text, needle
