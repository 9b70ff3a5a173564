"""Simplified linear attention: formula, orders, precision, surgery, deploy, the causal rule."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from suite import create_model, deploy
from suite.errors import NotApplicable
from suite.models.deploy import count_norm_modules, deploy_error
from suite.variants.attention.sla import SimplifiedLinearAttention

F64 = torch.float64


def sla(n_side: int = 4, dim: int = 24, heads: int = 3, prefix: int = 0) -> SimplifiedLinearAttention:
    torch.manual_seed(0)
    m = SimplifiedLinearAttention(dim, heads, (n_side, n_side), prefix_tokens=prefix).double()
    with torch.no_grad():
        m.pos.normal_(0, 0.5)  # a non-zero positional term
    return m


def direct(m: SimplifiedLinearAttention, x: torch.Tensor) -> torch.Tensor:
    """The formula token by token, O(N^2): no shared code with the module's forward."""
    b, n, c = x.shape
    h, d = m.num_heads, m.head_dim
    qkv = x @ m.qkv.weight.T + m.qkv.bias
    q, k, v = qkv[..., :c], qkv[..., c:2 * c] + m.pos, qkv[..., 2 * c:]
    q, k = q.clamp_min(0), k.clamp_min(0)
    out = torch.zeros(b, n, c, dtype=x.dtype)
    gh, gw = m.grid
    for bi in range(b):
        for hi in range(h):
            sl = slice(hi * d, (hi + 1) * d)
            qh, kh, vh = q[bi, :, sl], k[bi, :, sl], v[bi, :, sl]
            for i in range(n):
                weights = torch.stack([qh[i] @ kh[j] for j in range(n)])
                z = 1.0 / (weights.sum() + 1e-6)
                out[bi, i, sl] = z * (weights[:, None] * vh).sum(0)
            grid = vh[m.prefix_tokens:].T.reshape(d, gh, gw)[None]
            local = F.conv2d(grid, m.dwc.weight, m.dwc.bias, padding=2, groups=d)[0]
            out[bi, m.prefix_tokens:, sl] += local.reshape(d, gh * gw).T
    return out @ m.proj.weight.T + m.proj.bias


@pytest.mark.parametrize("prefix", [0, 1])
def test_equals_a_direct_quadratic_evaluation(prefix: int) -> None:
    m = sla(prefix=prefix)
    x = torch.randn(2, m.num_tokens, 24, dtype=F64)
    torch.testing.assert_close(m(x), direct(m, x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n_side, dim, heads", [(4, 24, 3), (2, 48, 2)])  # N > d and N < d
def test_both_multiplication_orders_agree(n_side: int, dim: int, heads: int) -> None:
    m = sla(n_side, dim, heads)
    x = torch.randn(2, m.num_tokens, dim, dtype=F64)
    outs = {}
    for order in ("kv_first", "qk_first"):
        m.order = order
        outs[order] = m(x)
    rel = (outs["kv_first"] - outs["qk_first"]).abs().max() / outs["qk_first"].abs().max()
    assert rel <= 1e-6


def test_normalizer_is_float32_under_bf16_autocast() -> None:
    m = sla().float()
    x = torch.randn(2, m.num_tokens, 24)
    seen = {}
    original = m.global_term

    def spy(q, k, v):
        out = original(q, k, v)
        seen.update(q=q, k=k, v=v, out=out)
        return out

    m.global_term = spy
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
    assert seen["q"].dtype == torch.bfloat16 and seen["out"].dtype == torch.float32 and torch.isfinite(y).all()
    q, k, v = (seen[n].double() for n in "qkv")  # the same bf16 inputs, evaluated in float64
    ref = (q @ (k.transpose(-2, -1) @ v)) / (q @ k.sum(2, keepdim=True).transpose(-2, -1) + 1e-6)
    assert (seen["out"].double() - ref).abs().max() / ref.abs().max() < 1e-5  # float32, not bf16, accuracy


VIT = dict(img_size=16, patch_size=4, embed_dim=48, depth=2, num_heads=3, num_classes=5)


@pytest.mark.parametrize("variant", ["prepbn+sla", "ln+sla", "crms+sla"])
def test_vit_with_sla_trains_and_deploys_exactly(variant: str) -> None:
    torch.manual_seed(0)
    model = create_model("vit_tiny_patch16_224", variant,
                         variant_kwargs={"total_steps": 2} if "prepbn" in variant else {},
                         **VIT)
    assert isinstance(model.blocks[0].attn, SimplifiedLinearAttention)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    for _ in range(4):
        loss = model(torch.randn(4, 3, 16, 16)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    deployed = deploy(model)
    assert deploy_error(model, deployed, torch.randn(3, 3, 16, 16)) <= 1e-5
    if variant.startswith("prepbn"):
        assert count_norm_modules(deployed) == 0


def test_slab_deit_convention_is_recorded() -> None:
    model = create_model("deit_tiny_patch16_224", "prepbn+sla", attention_kwargs={"slab_convention": True}, **VIT)
    info = model.normbench_attention
    assert not model.has_class_token and model.global_pool == "avg"
    assert info["convention"].startswith("slab-deit") and info["prefix_tokens"] == 0


def test_swin_gets_global_sla_in_stages_1_2_and_window_softmax_after() -> None:
    torch.manual_seed(0)
    model = create_model("swin_tiny_patch4_window7_224", "prepbn+sla", variant_kwargs={"total_steps": 2},
                         img_size=112, embed_dim=16, depths=(1, 1, 1, 1), num_heads=(1, 2, 2, 4), window_size=7,
                         num_classes=5)
    kinds = [type(stage.blocks[0].attn).__name__ for stage in model.layers]
    assert kinds == ["SimplifiedLinearAttention", "SimplifiedLinearAttention", "WindowAttention", "WindowAttention"]
    assert model.layers[0].blocks[0].attn.num_tokens == 28 * 28  # global over the stage map
    assert model.normbench_attention["stages"] == [1, 2]
    model(torch.randn(2, 3, 112, 112)).sum().backward()
    model.eval()
    assert deploy_error(model, deploy(model), torch.randn(2, 3, 112, 112)) <= 1e-5


@pytest.mark.parametrize("lm", ["gpt2-tiny", "llama-tiny"])
def test_sla_refuses_causal_language_models(lm: str) -> None:
    with pytest.raises(NotApplicable, match="not applicable to causal language models"):
        create_model(lm, "ln+sla")


def test_softmax_is_the_models_own_attention_through_sdpa() -> None:
    model = create_model("vit_tiny_patch16_224", "ln+softmax", **VIT)
    assert all(blk.attn.fused_attn for blk in model.blocks)
    assert model.normbench_attention["fused_modules"] == 2


def test_methods_that_do_not_apply_are_not_applicable_rows_beside_the_others(tmp_path) -> None:
    from suite.report.store import read_rows

    from conftest import FAST, run_main
    out = tmp_path / "run"
    # LLaMA: PRepBN applies (RMSNorm base); Pre-CRMSNorm has no LayerNorm to convert; SLA is not causal
    proc = run_main("--tasks", "wikitext-llama", "--variants", "prepbn,crms,ln+sla", "--out", str(out), *FAST)
    assert proc.returncode == 0, proc.stderr[-2000:]  # not failures of the suite: facts about the methods
    rows = {r["variant"]: r for r in read_rows(out / "rows.jsonl")}
    assert rows["prepbn"]["status"] == "ok"
    assert rows["crms"]["status"] == "not-applicable" and "LLaMA is not supported" in rows["crms"]["message"]
    assert rows["ln+sla"]["status"] == "not-applicable" and "causal language models" in rows["ln+sla"]["message"]
    assert len({r["dataset"]["label"] for r in rows.values()}) == 1  # identified like the ok row
    board = (out / "leaderboard.md").read_text()
    assert board.count("## wikitext-llama") == 1 and board.count("not-applicable") >= 2
