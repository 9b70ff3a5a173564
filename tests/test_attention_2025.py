"""The 2025 attention proposals: differential (``diff``), gated (``gated``) and sigmoid (``sigmoid``).

Each formula is checked in float64 against a computation written here from the paper's
definition (explicit score matrices, RMSNorm from its mean square, RoPE from its frequencies),
never through the suite's kernels; then deploy exactness, causality, the KV cache and the
combinations that do not apply. The conformance tests (``test_norm_conformance``) train and
deploy every registered attention in a ViT and GPT-2, and ``gated`` crossed with every norm.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn as nn

from suite import create_model, deploy, parse_variant
from suite.errors import NotApplicable
from suite.models.deploy import deploy_error

TINY_VIT = dict(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2, num_classes=5)
LMS = ("gpt2-tiny", "llama-tiny")
F64 = dict(rtol=1e-9, atol=1e-11)
#: LLaMA's rotary table is computed in float32 whatever the model's dtype (transformers' LlamaRotaryEmbedding)
F64_ROPE = dict(rtol=1e-6, atol=1e-9)


def randomize(model: nn.Module) -> None:
    """Give the new parameters (lambda vectors, norm scales) values away from their initialisation."""
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lambda" in name:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.3)
            elif "sub_norm" in name or "norm" in name.rsplit(".", 1)[0].rsplit(".", 1)[-1]:
                p.copy_(torch.empty(p.shape, dtype=p.dtype).uniform_(0.5, 1.5, generator=gen))


def rms_norm(x: torch.Tensor, g: torch.Tensor, eps: float) -> torch.Tensor:
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * g


def causal_fill(scores: torch.Tensor, value: float) -> torch.Tensor:
    n = scores.shape[-1]
    return scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), value)


def softmax_map(q: torch.Tensor, k: torch.Tensor, causal: bool) -> torch.Tensor:
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    return (causal_fill(scores, float("-inf")) if causal else scores).softmax(-1)


def lam(p: dict[str, torch.Tensor], depth: int) -> torch.Tensor:
    """The paper's lambda; in float32, as timm computes it (the scalar lambda is float32 in every dtype)."""
    init = 0.8 - 0.6 * math.exp(-0.3 * depth)
    dot1, dot2 = ((p[f"lambda_q{i}"] * p[f"lambda_k{i}"]).sum().float() for i in (1, 2))
    return (torch.exp(dot1) - torch.exp(dot2) + init).double()


def rotate(x: torch.Tensor, theta: float) -> torch.Tensor:
    """RoPE of width ``x.shape[-1]`` at positions 0..N-1 (the rotate-half layout), from its frequencies."""
    d, n = x.shape[-1], x.shape[-2]
    freq = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angle = torch.arange(n, dtype=torch.float64)[:, None] * freq[None]
    cos, sin = torch.cat([angle.cos()] * 2, -1), torch.cat([angle.sin()] * 2, -1)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


class Capture:
    """The input and output of one attention module during a whole-model forward."""

    def __init__(self, module: nn.Module) -> None:
        self.x: torch.Tensor | None = None
        self.y: torch.Tensor | None = None
        module.register_forward_hook(self, with_kwargs=True)

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict, out: object) -> None:
        self.x = args[0] if args else kwargs["hidden_states"]
        self.y = out[0] if isinstance(out, tuple) else out


def lm_heads(model: nn.Module, layer: int, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """q, k, v ``[B, h, N, D]`` of an LM attention from its input, and a function applying its output projection."""
    cfg = model.config
    b, n, _ = x.shape
    if cfg.model_type == "gpt2":
        attn = model.transformer.h[layer].attn
        q, k, v = (x @ attn.c_attn.weight + attn.c_attn.bias).split(cfg.hidden_size, -1)
    else:
        attn = model.model.layers[layer].self_attn
        q, k, v = (x @ getattr(attn, f"{c}_proj").weight.T for c in "qkv")
    h = cfg.num_attention_heads
    return tuple(t.reshape(b, n, h, -1).transpose(1, 2) for t in (q, k, v))


def lm_out(model: nn.Module, layer: int, o: torch.Tensor) -> torch.Tensor:
    b, h, n, d = o.shape
    o = o.transpose(1, 2).reshape(b, n, h * d)
    if model.config.model_type == "gpt2":
        proj = model.transformer.h[layer].attn.c_proj
        return o @ proj.weight + proj.bias
    return o @ model.model.layers[layer].self_attn.o_proj.weight.T


def lm_attn(model: nn.Module, layer: int) -> nn.Module:
    return model.transformer.h[layer].attn if model.config.model_type == "gpt2" else model.model.layers[layer].self_attn


def vit_heads(variant: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Block 0's attention of a float64 DeiT with ``variant`` (2 heads of 16), an input ``x`` of 17 tokens,
    and q, k, v ``[B, h, N, 16]`` computed here from its ``qkv`` weights."""
    torch.manual_seed(0)
    model = create_model("deit_tiny_patch16_224", variant, **TINY_VIT).double().eval()
    attn = model.blocks[0].attn
    x = torch.randn(2, 17, 32, dtype=torch.float64)
    q, k, v = (x @ attn.qkv.weight.T + attn.qkv.bias).split(32, -1)
    q, k, v = (t.reshape(2, 17, 2, 16).transpose(1, 2) for t in (q, k, v))
    return attn, x, q, k, v


def rotated(model: nn.Module, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """q and k with the model's RoPE (LLaMA) at positions 0..N-1; unchanged for GPT-2."""
    if model.config.model_type != "llama":
        return q, k
    theta = model.config.rope_parameters["rope_theta"]
    return rotate(q, theta), rotate(k, theta)


def run_lm(name: str, variant: str, layer: int = 1) -> tuple[nn.Module, Capture]:
    torch.manual_seed(0)
    model = create_model(name, variant).double().eval()
    randomize(model)
    cap = Capture(lm_attn(model, layer))
    with torch.no_grad():
        model(torch.randint(0, 512, (2, 9)))
    return model, cap


# -- diff --------------------------------------------------------------------------------------------------------------
def test_diff_in_a_vit_float64() -> None:
    torch.manual_seed(0)
    model = create_model("deit_tiny_patch16_224", "ln+diff", **TINY_VIT).double().eval()
    randomize(model)
    attn = model.blocks[1].attn
    x = torch.randn(2, 17, 32, dtype=torch.float64)
    h, d = 2, 8  # two heads of width 16: maps of width 8, values of width 16
    q, k, v = (x @ attn.qkv.weight.T + attn.qkv.bias).split(32, -1)
    q, k = (t.reshape(2, 17, h, 2, d).permute(0, 2, 3, 1, 4) for t in (q, k))  # [B, h, map, N, d]
    v = v.reshape(2, 17, h, 2 * d).transpose(1, 2)
    a = softmax_map(q[:, :, 0], k[:, :, 0], False) - lam(dict(attn.named_parameters()), 1) * softmax_map(
        q[:, :, 1], k[:, :, 1], False)
    o = rms_norm(a @ v, attn.sub_norm.weight, 1e-5) * (1 - (0.8 - 0.6 * math.exp(-0.3)))
    expected = o.transpose(1, 2).reshape(2, 17, 32) @ attn.proj.weight.T + attn.proj.bias
    with torch.no_grad():
        torch.testing.assert_close(attn(x), expected, **F64)
    assert attn.qkv.weight.shape == (96, 32) and attn.proj.weight.shape == (32, 32)  # a checkpoint still loads
    assert [round(b.attn.lambda_init, 6) for b in model.blocks] == [0.2, round(0.8 - 0.6 * math.exp(-0.3), 6)]


@pytest.mark.parametrize("name", LMS)
def test_diff_in_a_causal_lm_float64(name: str) -> None:
    model, cap = run_lm(name, "ln+diff")
    assert cap.x is not None and cap.y is not None
    attn = lm_attn(model, 1)
    q, k, v = lm_heads(model, 1, cap.x)
    dh = q.shape[-1]
    if name.startswith("llama"):
        # the reference rotates each map as a vector of width D/2; the suite's map 1 is channels
        # [0, D/4) + [D/2, 3D/4) of the projection's head, map 2 the other quarter pair
        quarter = dh // 4
        r = torch.arange(quarter)
        m1, m2 = torch.cat([r, r + 2 * quarter]), torch.cat([r + quarter, r + 3 * quarter])
        theta = model.config.rope_parameters["rope_theta"]
        q1, q2, k1, k2 = (rotate(t[..., m], theta) for t, m in ((q, m1), (q, m2), (k, m1), (k, m2)))
    else:
        q1, q2, k1, k2 = q[..., : dh // 2], q[..., dh // 2:], k[..., : dh // 2], k[..., dh // 2:]
    a = softmax_map(q1, k1, True) - lam(dict(attn.named_parameters()), 1) * softmax_map(q2, k2, True)
    o = rms_norm(a @ v, attn.sub_norm.weight, 1e-5) * (1 - (0.8 - 0.6 * math.exp(-0.3)))
    torch.testing.assert_close(cap.y, lm_out(model, 1, o), **(F64_ROPE if name.startswith("llama") else F64))


def test_diff_on_llama_keeps_rope_relative() -> None:
    """Shifting every position by the same offset leaves the logits alone (each map is rotated as a whole)."""
    torch.manual_seed(0)
    model = create_model("llama-tiny", "ln+diff").double().eval()
    randomize(model)
    ids = torch.randint(0, 512, (2, 10))
    with torch.no_grad():
        base = model(ids, position_ids=torch.arange(10)[None]).logits
        shifted = model(ids, position_ids=torch.arange(10)[None] + 17).logits
    torch.testing.assert_close(shifted, base, rtol=1e-5, atol=1e-6)  # float32 angles at positions up to 27


# -- gated -------------------------------------------------------------------------------------------------------------
def test_gated_in_a_vit_float64() -> None:
    attn, x, q, k, v = vit_heads("ln+gated")
    o = (softmax_map(q, k, False) @ v).transpose(1, 2).reshape(2, 17, 32)
    gate = torch.sigmoid(x @ attn.gate.weight.T + attn.gate.bias)
    expected = (o * gate) @ attn.proj.weight.T + attn.proj.bias
    with torch.no_grad():
        torch.testing.assert_close(attn(x), expected, **F64)
    assert attn.gate.weight.shape == (32, 32) and attn.qkv.weight.shape == (96, 32)


@pytest.mark.parametrize("name", LMS)
def test_gated_in_a_causal_lm_float64(name: str) -> None:
    model, cap = run_lm(name, "ln+gated")
    assert cap.x is not None and cap.y is not None
    attn = lm_attn(model, 1)
    q, k, v = lm_heads(model, 1, cap.x)
    q, k = rotated(model, q, k)
    o = softmax_map(q, k, True) @ v
    gate = torch.sigmoid(cap.x @ attn.gate.weight.T + (attn.gate.bias if attn.gate.bias is not None else 0))
    b, h, n, d = o.shape
    gated = (o.transpose(1, 2).reshape(b, n, h * d) * gate).reshape(b, n, h, d).transpose(1, 2)
    torch.testing.assert_close(cap.y, lm_out(model, 1, gated), **(F64_ROPE if name.startswith("llama") else F64))
    assert (attn.gate.bias is None) == name.startswith("llama")  # a bias exactly when the query projection has one


# -- sigmoid -----------------------------------------------------------------------------------------------------------
def test_sigmoid_in_a_vit_float64() -> None:
    attn, x, q, k, v = vit_heads("ln+sigmoid")
    w = torch.sigmoid(q @ k.transpose(-2, -1) / 4.0 - math.log(17))  # n = 17 keys (16 patches + class token)
    expected = (w @ v).transpose(1, 2).reshape(2, 17, 32) @ attn.proj.weight.T + attn.proj.bias
    with torch.no_grad():
        torch.testing.assert_close(attn(x), expected, **F64)


@pytest.mark.parametrize("name", LMS)
def test_sigmoid_in_a_causal_lm_float64(name: str) -> None:
    model, cap = run_lm(name, "ln+sigmoid")
    assert cap.x is not None and cap.y is not None
    q, k, v = lm_heads(model, 1, cap.x)
    q, k = rotated(model, q, k)
    n = 128  # the model's context (n_positions / max_position_embeddings), not the 9 tokens of this input
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]) - math.log(n)
    w = torch.sigmoid(causal_fill(scores, float("-inf")))
    torch.testing.assert_close(cap.y, lm_out(model, 1, w @ v), **(F64_ROPE if name.startswith("llama") else F64))
    assert model.normbench_attention["bias"] == "-log(n), n = 128 (the model's context)"


# -- deploy, causality, the cache, composition -------------------------------------------------------------------------
VARIANTS = ["prepbn+diff", "prepbn+gated", "crms+diff+gated", "crms+sigmoid+gated+qknorm"]  # each attention, folded


def build(name: str, variant: str) -> nn.Module:
    torch.manual_seed(0)
    kw = TINY_VIT if name.startswith("deit") else {}
    return create_model(name, variant, variant_kwargs={"total_steps": 2} if variant.startswith("prepbn") else {}, **kw)


def train(model: nn.Module, make: Callable[[], torch.Tensor], steps: int = 3) -> None:
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    for _ in range(steps):
        out = model(make())
        loss = (out.logits if hasattr(out, "logits") else out).float().pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", ["deit_tiny_patch16_224", "gpt2-tiny"])
def test_deploy_is_exact(name: str, variant: str) -> None:
    model = build(name, variant)
    make = (lambda: torch.randn(4, 3, 16, 16)) if name.startswith("deit") else (lambda: torch.randint(0, 512, (4, 12)))
    train(model, make)
    deployed = deploy(model)
    assert deploy_error(model, deployed, make()) < 1e-5
    gates = [m for n, m in deployed.named_modules() if n.endswith(".gate")]
    if "gated" in variant:  # the gate reads the stream norm: CRMS narrows its input with the query projection's
        width = (32 if name.startswith("deit") else 64) - variant.startswith("crms")
        assert len(gates) == 2 and {g.in_features for g in gates} == {width}


@pytest.mark.parametrize("attention", ["diff", "gated", "sigmoid"])
@pytest.mark.parametrize("name", LMS)
def test_language_models_stay_causal_and_cache_consistent(name: str, attention: str) -> None:
    model = build(name, f"ln+{attention}").eval()
    ids = torch.randint(0, 512, (2, 12))
    changed = ids.clone()
    changed[:, 8:] = (changed[:, 8:] + 1) % 512
    with torch.no_grad():
        full = model(ids).logits
        torch.testing.assert_close(model(changed).logits[:, :8], full[:, :8])  # the future is not seen
        prefix = model(ids[:, :8], use_cache=True)
        step = model(ids[:, 8:9], past_key_values=prefix.past_key_values, use_cache=True)
    torch.testing.assert_close(step.logits[:, -1], full[:, 8], rtol=1e-4, atol=1e-5)


def test_padding_mask_hides_keys() -> None:
    """A padded key (attention_mask 0) changes nothing for the other tokens, under every new kernel."""
    for attention in ("diff", "sigmoid"):
        model = build("gpt2-tiny", f"ln+{attention}").eval()
        ids = torch.randint(0, 512, (1, 8))
        with torch.no_grad():
            short = model(ids[:, :6]).logits
            padded = model(ids, attention_mask=torch.tensor([[1] * 6 + [0] * 2])).logits
        torch.testing.assert_close(padded[:, :6], short)


def test_names_compose_in_one_order() -> None:
    assert parse_variant("ln+qknorm+gated").name == "ln+gated+qknorm"
    assert parse_variant("rms+gated+sigmoid").name == "rms+sigmoid+gated"
    assert parse_variant("gated").name == "ln+gated"


@pytest.mark.parametrize(("name", "variant", "needle"), [
    ("deit_tiny_patch16_224", "ln+sla+gated", "no gate slot"),
    ("llama-tiny", "ln+diff+qknorm", "not contiguous channel groups"),
    ("swin_tiny_patch4_window7_224", "ln+diff", "no surgery for timm Swin"),
    ("swin_tiny_patch4_window7_224", "ln+sigmoid", "no surgery for timm Swin"),
    ("swin_tiny_patch4_window7_224", "ln+gated", "no surgery for timm Swin"),
])
def test_not_applicable_with_the_reason(name: str, variant: str, needle: str) -> None:
    kw = TINY_VIT if name.startswith("deit") else {} if not name.startswith("swin") else dict(
        img_size=56, embed_dim=16, depths=(1, 1), num_heads=(1, 2), window_size=7, num_classes=5)
    with pytest.raises(NotApplicable, match=needle):
        create_model(name, variant, **kw)


@pytest.mark.parametrize(("name", "variant"), [("deit_tiny_patch16_224", "ln+diff+gated"),
                                               ("deit_tiny_patch16_224", "ln+sigmoid+gated"),
                                               ("gpt2-tiny", "ln+diff+gated"), ("llama-tiny", "ln+sigmoid+gated")])
def test_the_gate_multiplies_every_mechanisms_output(name: str, variant: str) -> None:
    """With a mechanism, the output projection reads that mechanism's heads times sigmoid(gate(input))."""
    model = build(name, variant).double().eval()
    attn = model.blocks[0].attn if name.startswith("deit") else lm_attn(model, 0)
    proj = attn.proj if name.startswith("deit") else attn.c_proj if name.startswith("gpt2") else attn.o_proj
    seen: dict[str, torch.Tensor] = {}
    proj.register_forward_pre_hook(lambda m, a: seen.__setitem__("heads", a[0]))  # runs after the gate's hook
    cap = Capture(attn)
    make = (lambda: torch.randn(2, 3, 16, 16)) if name.startswith("deit") else (lambda: torch.randint(0, 512, (2, 9)))
    inputs = make().double() if name.startswith("deit") else make()
    with torch.no_grad():
        model(inputs)
        gated_heads = seen["heads"]
        gate = torch.sigmoid(attn.gate(cap.x))
        del attn.gate  # the same mechanism without its gate
        if name.startswith("deit"):
            attn.gate = None
            attn(cap.x)
        else:
            attn.gate = nn.Linear(1, 1)  # a placeholder the hooks would use: they must not run for this check
            for hooks in (attn._forward_pre_hooks, proj._forward_pre_hooks):
                for key in [k for k, h in hooks.items() if type(h).__module__.endswith("gated")]:
                    del hooks[key]
            model(inputs)
    torch.testing.assert_close(gated_heads, seen["heads"] * gate, **F64)
