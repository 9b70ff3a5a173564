"""Runtimes and precisions: the plugins, their reasons to refuse, agreement with eager, and the sweep's matrix."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from suite import create_model, deploy
from suite.measure.prepare import agreement, prepare_module, tensors
from suite.measure.runtimes import PRECISIONS, RUNTIMES, cpu_has_bf16, precision_unsupported
from suite.report.store import read_rows

from conftest import FAST, run_main

CPU = torch.device("cpu")
TINY_VIT = dict(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2, num_classes=5)


def test_registry_and_reasons_to_refuse_on_cpu() -> None:
    assert {"eager", "compile", "onnxruntime", "cudagraphs"} <= set(RUNTIMES.names())
    assert "CUDA" in RUNTIMES.get("cudagraphs").unsupported(CPU, "fp32")
    assert RUNTIMES.get("eager").unsupported(CPU, "fp32") is None
    assert "GPU precision" in precision_unsupported(CPU, "fp16")
    assert (precision_unsupported(CPU, "bf16") is None) == cpu_has_bf16()
    assert "unknown precision" in precision_unsupported(CPU, "fp8")
    assert set(PRECISIONS) == {"fp32", "bf16", "fp16"}


@pytest.mark.parametrize("runtime", ["eager", "onnxruntime", "compile"])
def test_each_runtime_reproduces_eager_fp32(runtime: str) -> None:
    torch.manual_seed(0)
    model = deploy(create_model("vit_tiny_patch16_224", "prepbn", variant_kwargs={"total_steps": 2}, **TINY_VIT))
    x1, x4 = torch.randn(1, 3, 16, 16), torch.randn(4, 3, 16, 16)
    p = prepare_module(model, "module", name="prepbn", device=CPU, runtime=runtime, precision="fp32",
                       examples=[x1, x4], threads=2, probe=x4)
    assert p.agreement is not None and p.agreement["rel_err"] < 1e-5 and p.agreement["reference"] == "eager fp32"
    assert (p.built.build_s > 0) == (runtime != "eager")
    torch.testing.assert_close(tensors(p.built.fn(x1))[0], tensors(model(x1))[0], rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("runtime", ["eager", "compile", "cudagraphs"])
def test_each_runtime_reproduces_eager_fp32_on_cuda(runtime: str, precision: str) -> None:
    cuda = torch.device("cuda")
    torch.manual_seed(0)
    model = deploy(create_model("vit_tiny_patch16_224", "prepbn", variant_kwargs={"total_steps": 2}, **TINY_VIT))
    model = model.to(cuda)
    x1, x4 = torch.randn(1, 3, 16, 16, device=cuda), torch.randn(4, 3, 16, 16, device=cuda)
    p = prepare_module(model, "module", name="prepbn", device=cuda, runtime=runtime, precision=precision,
                       examples=[x1.to(PRECISIONS[precision]), x4.to(PRECISIONS[precision])], threads=None, probe=x4)
    # fp32 on CUDA: cuDNN's convolution (the patch embedding) may run in TF32 (10-bit mantissa)
    assert p.agreement["rel_err"] < (5e-3 if precision == "fp32" else 5e-2), p.agreement
    assert (p.built.build_s > 0) == (runtime != "eager")


def test_agreement_says_why_outputs_of_another_shape_cannot_be_compared() -> None:
    ref = tensors(torch.ones(3, 2))
    assert agreement(torch.ones(3, 2) * 1.01, ref, 3)["rel_err"] == pytest.approx(0.01)
    different = agreement(torch.ones(2, 2), ref, 3)
    assert different["rel_err"] is None and "cannot be compared" in different["note"]


@pytest.mark.slow
def test_sweep_over_runtimes_rows_errors_and_matrix(tmp_path: Path) -> None:
    """A plugin norm that ONNX cannot export: an error row for onnxruntime only; CUDA-only runtime and
    fp16 on CPU: not-applicable rows; the leaderboard gets per-runtime sections, the matrix and its heat map."""
    out = tmp_path / "run"
    proc = run_main("--variants", "ln,noexport", "--tasks", "imagenet", "--precision", "fp32,fp16",
                    "--runtime", "eager,compile,onnxruntime,cudagraphs", "--out", str(out), "--inline", *FAST,
                    plugins=("faulty_norms",))
    assert proc.returncode == 1, proc.stderr[-3000:]  # a cell errored (the export), the sweep finished
    rows = {(r["variant"], r["runtime"], r["precision"]): r for r in read_rows(out / "rows.jsonl")}
    assert len(rows) == 16
    bad = rows["noexport", "onnxruntime", "fp32"]
    assert bad["status"] == "error" and "No ONNX function" in bad["message"] and "\n" not in bad["message"]
    for runtime in ("eager", "compile"):
        r = rows["noexport", runtime, "fp32"]
        assert r["status"] == "ok" and r["agreement"]["rel_err"] < 1e-5 and r["latency"]["ratio"]["baseline"] == "ln"
    assert rows["ln", "onnxruntime", "fp32"]["status"] == "ok"
    assert rows["ln", "compile", "fp32"]["runtime_info"]["build_s"] > 0
    for v in ("ln", "noexport"):
        assert rows[v, "cudagraphs", "fp32"]["status"] == "not-applicable"
        assert all(rows[v, r, "fp16"]["status"] == "not-applicable" for r in ("eager", "compile", "onnxruntime"))
    board = (out / "leaderboard.md").read_text()
    assert "compile fp32" in board and "## Deployment matrix: imagenet" in board
    assert (out / "matrix-imagenet-smoke-cpu-embedded.png").stat().st_size > 1000


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no native bfloat16")
def test_bf16_rows_carry_the_quality_change_against_fp32(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_main("--variants", "ln,un", "--tasks", "imagenet", "--precision", "fp32,bf16", "--out", str(out),
                    "--inline", *FAST)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {(r["variant"], r["precision"]): r for r in read_rows(out / "rows.jsonl")}
    for v in ("ln", "un"):
        low, full = rows[v, "bf16"], rows[v, "fp32"]
        assert low["status"] == "ok" and set(low["quality_delta"]) == set(low["quality"])
        assert low["quality_delta"]["top1"] == pytest.approx(low["quality"]["top1"] - full["quality"]["top1"])
        assert 0 < low["agreement"]["rel_err"] < 0.1  # bf16 differs from fp32, by rounding
        assert full["quality_delta"] == {} and full["agreement"]["rel_err"] == 0.0


def test_bf16_on_a_cpu_without_it_is_not_applicable_with_the_reason(monkeypatch) -> None:
    import suite.measure.runtimes as runtimes
    monkeypatch.setattr(runtimes, "cpu_has_bf16", lambda: False)
    why = precision_unsupported(torch.device("cpu"), "bf16")
    assert why and "no native bfloat16" in why
    monkeypatch.setattr(runtimes, "cpu_has_bf16", lambda: True)
    assert precision_unsupported(torch.device("cpu"), "bf16") is None


@pytest.mark.skipif(cpu_has_bf16(), reason="this CPU has native bfloat16 (the rows are measured instead)")
def test_bf16_rows_on_this_cpu_are_not_applicable_and_fp32_is_measured(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_main("--variants", "ln", "--tasks", "imagenet", "--precision", "fp32,bf16", "--out", str(out),
                    "--inline", *FAST)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["precision"]: r for r in read_rows(out / "rows.jsonl")}
    assert rows["fp32"]["status"] == "ok"
    assert rows["bf16"]["status"] == "not-applicable" and "no native bfloat16" in rows["bf16"]["message"]
