"""What a first CUDA run needs, checked on CPU where the logic allows: memory read where each
runtime keeps it, agreement measured on the inference graph, one GPU per DDP process, the ONNX
Runtime provider actually used, deploy-bench's parent off the GPU, TF32 in the provenance."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from suite.errors import UsageError
from suite.measure.jobs import TimingResult
from suite.measure.memory_worker import GpuReading, gpu_figures
from suite.measure.runtimes import RUNTIMES, Built

from conftest import TINY_INPUT, save_tiny_deployed

BEFORE = GpuReading(allocated_mb=10.0, reserved_mb=20.0, peak_allocated_mb=10.0, peak_reserved_mb=20.0,
                    device_used_mb=1000.0, process_mb=500.0)


@pytest.mark.parametrize("runtime, expected", [("eager", 90.0), ("compile", 90.0), ("cudagraphs", 380.0),
                                               ("onnxruntime", 700.0)])
def test_gpu_memory_is_read_where_each_runtime_keeps_it(runtime: str, expected: float) -> None:
    # weights + activations: 90 MB allocated at the peak; CUDA graphs' pool 380 MB reserved (replays
    # write there, allocated bytes stay at the weights); ORT's arena 700 MB outside PyTorch
    after = GpuReading(allocated_mb=40.0, reserved_mb=400.0, peak_allocated_mb=100.0, peak_reserved_mb=400.0,
                       device_used_mb=1800.0, process_mb=1200.0)
    mem = gpu_figures(RUNTIMES.get(runtime).gpu_memory, BEFORE, after)
    assert mem["peak_mb"] == pytest.approx(expected)
    assert mem["torch_max_allocated_mb"] == pytest.approx(90.0)  # the input (in the baseline) left out
    assert mem["source"].startswith("cuda")


def test_outside_pytorch_without_nvml_falls_back_to_the_device_then_says_n_a() -> None:
    hidden = GpuReading(allocated_mb=10.0, reserved_mb=20.0, peak_allocated_mb=10.0, peak_reserved_mb=20.0,
                        device_used_mb=1000.0, process_mb=None)
    after = GpuReading(allocated_mb=10.0, reserved_mb=20.0, peak_allocated_mb=12.0, peak_reserved_mb=20.0,
                       device_used_mb=1300.0, process_mb=None)
    assert gpu_figures("device", hidden, after)["peak_mb"] == pytest.approx(300.0)
    blind = GpuReading(**{**vars(after), "device_used_mb": None})
    mem = gpu_figures("device", hidden, blind)
    assert mem["peak_mb"] is None and mem["source"].startswith("n/a:")
    with pytest.raises(ValueError, match="unknown GPU memory method"):
        gpu_figures("guess", BEFORE, after)


def test_every_runtime_declares_how_its_gpu_memory_is_read() -> None:
    from suite.measure.runtimes import GPU_MEMORY
    declared = {name: cls.gpu_memory for name, cls in RUNTIMES.items()}
    assert set(declared.values()) <= set(GPU_MEMORY) and declared["cudagraphs"] == "reserved"


class _Spy:
    """A runtime whose callable records how it is called."""

    calls: list[tuple[bool, bool]] = []

    @classmethod
    def build(cls, model: torch.nn.Module, examples: list[Any], **_: Any) -> Built:
        def fn(x: Any) -> Any:
            cls.calls.append((torch.is_inference_mode_enabled(), any(p.requires_grad for p in model.parameters())))
            return model(x)
        return Built(fn, 0.0, {})


def test_agreement_runs_the_built_model_as_it_is_timed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under inference_mode, with no weight requiring grad: the graph a runtime compiled for the
    timed calls, not a second, gradient-tracking one."""
    from suite.measure import prepare
    from suite.measure.inputs import make_input
    monkeypatch.setattr(prepare, "RUNTIMES", SimpleNamespace(get=lambda name: _Spy))
    folder = save_tiny_deployed(tmp_path / "ln")
    probe = make_input(TINY_INPUT, 4, "cpu", seed=5)
    out = prepare.prepare(folder, device=torch.device("cpu"), runtime="spy", precision="fp32",
                          examples=[make_input(TINY_INPUT, 4, "cpu")], threads=None, probe=probe)
    assert _Spy.calls == [(True, False)]
    assert out.agreement["rel_err"] == 0.0 and out.agreement["inputs"] == 4


def test_a_ddp_cell_on_cuda_gets_one_gpu_per_process() -> None:
    from suite.sweep.config import check_nproc
    check_nproc(2, 2)
    with pytest.raises(UsageError, match=r"--nproc-per-node 4 needs 4 GPUs .* but 2 are visible .* "
                                         r"use --nproc-per-node 2 or fewer"):
        check_nproc(4, 2)


def test_ort_refuses_a_session_that_fell_back_to_another_provider() -> None:
    from suite.measure.runtimes.ort import check_provider
    assert check_provider(["CUDAExecutionProvider", "CPUExecutionProvider"],
                          ["CUDAExecutionProvider", "CPUExecutionProvider"]) == "CUDAExecutionProvider"
    with pytest.raises(RuntimeError, match=r"did not load CUDAExecutionProvider .*got CPUExecutionProvider"):
        check_provider(["CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"])


def test_ort_records_the_provider_its_session_runs_on(tmp_path: Path) -> None:
    from suite.measure.inputs import make_input
    from suite.measure.prepare import prepare
    folder = save_tiny_deployed(tmp_path / "ln")
    out = prepare(folder, device=torch.device("cpu"), runtime="onnxruntime", precision="fp32",
                  examples=[make_input(TINY_INPUT, 2, "cpu")], threads=1)
    info = out.built.info
    assert info["provider"] == "CPUExecutionProvider" and info["providers"] == ["CPUExecutionProvider"]


def test_deploy_bench_builds_on_the_cpu_and_keeps_every_finished_group(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """With --device cuda the parent builds and saves the models on the CPU (this machine has no
    CUDA: any use of it would raise), and the report is on disk after each group."""
    from suite import jsonio
    from suite.bench import deploy_bench
    from suite.measure import gpu
    monkeypatch.setattr(gpu, "device_info", lambda index=0: {"name": "Fake GPU", "driver": "1"})
    monkeypatch.setattr(gpu, "capability", lambda index=0: (9, 0))
    seen: list[dict[str, Any]] = []

    def fake_group(folder: Path, names: list[str], **kw: Any) -> TimingResult:
        report = folder / "report.json"
        seen.append(jsonio.read(report)["groups"] if report.exists() else {})
        return TimingResult(error="not timed in this test")

    monkeypatch.setattr(deploy_bench, "time_group", fake_group)
    code = deploy_bench.run_deploy_bench(model="vit_tiny_patch16_224", img_size=32, seq_len=0, variants=["ln"],
                                         batch=2, seconds=1, runtimes=["eager"], precisions=["fp32", "bf16"],
                                         device="cuda", threads=1, out=tmp_path / "b", results_dir=tmp_path)
    assert code == 0 and not torch.cuda.is_initialized()
    assert seen[0] == {} and list(seen[1]) == ["eager fp32"]  # the first group was on disk before the second ran
    report = jsonio.read(tmp_path / "b" / "report.json")
    assert report["complete"] and report["provenance"]["device"]["name"] == "Fake GPU"
    assert (tmp_path / "b" / "models" / "none" / "deployed.pt").exists()


def test_cuda_provenance_says_whether_fp32_uses_tf32(monkeypatch: pytest.MonkeyPatch) -> None:
    from suite.measure import gpu
    from suite.measure.env import device_description
    monkeypatch.setattr(gpu, "device_info", lambda index=0: {"name": "Fake GPU"})
    state = device_description(torch.device("cuda"))["tf32"]
    assert state["cudnn_conv"] is torch.backends.cudnn.allow_tf32
    assert state["matmul"] is torch.backends.cuda.matmul.allow_tf32
    assert state["float32_matmul_precision"] in ("highest", "high", "medium")
    assert "tf32" not in device_description(torch.device("cpu"))


def test_the_leaderboard_says_when_cuda_fp32_used_tf32() -> None:
    from suite.report.leaderboard import leaderboard_markdown

    from synth import make_row, provenance
    tf32 = {"cudnn_conv": True, "matmul": False, "float32_matmul_precision": "highest"}
    rows = [make_row(v, device="cuda", prov=provenance(device={"type": "cuda", "name": "Fake GPU", "tf32": tf32}))
            for v in ("ln", "un")]
    md = leaderboard_markdown(rows)
    assert "- fp32 on CUDA: cuDNN convolutions (the patch embedding) ran in TF32" in md
    assert "TF32" not in leaderboard_markdown([make_row(v) for v in ("ln", "un")])


def test_build_jobs_warm_a_caching_runtime_side_by_side_and_skip_the_others(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from suite.bench import deploy_bench

    from conftest import PLUGINS
    for v in ("ln", "un"):
        save_tiny_deployed(tmp_path / "models" / v, v)
    # the build workers load the test runtime `cachedeager` (eager that claims a disk cache); this process
    # only asks whether a runtime has one
    monkeypatch.setenv("NORMBENCH_PLUGINS", "cached_runtime")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setattr(deploy_bench, "RUNTIMES", SimpleNamespace(
        get=lambda name: SimpleNamespace(build_cache=name == "cachedeager")))
    kw = dict(precision="fp32", device="cpu", spec_in=TINY_INPUT, batch=2, jobs=2)
    assert deploy_bench.warm_builds(tmp_path, ["ln", "un"], runtime="eager", **kw) == {}
    warmed = deploy_bench.warm_builds(tmp_path, ["ln", "un"], runtime="cachedeager", **kw)
    assert set(warmed) == {"ln", "un"} and all("build_s" in w for w in warmed.values()), warmed
    assert deploy_bench.warm_builds(tmp_path, ["ln", "un"], runtime="cachedeager", **(kw | {"jobs": 1})) == {}
