"""make gpu-check, minus the GPU: every planned command is a real command, and the summary reads the reports."""
from __future__ import annotations

import shlex
from pathlib import Path

from suite import jsonio
from suite.bench.gpu_check import FOCUS, Step, focus_table, plan, render_summary
from suite.cli import deploy_bench as bench_cli
from suite.cli import run as run_cli
from suite.cli import scaling as scaling_cli

from conftest import ROOT


def parsed(step: Step):
    argv = step.argv[2:]  # after python and run_suite.py
    if argv and argv[0] == "deploy-bench":
        return bench_cli.parser().parse_args(argv[1:])
    if argv and argv[0] == "scaling":
        return scaling_cli.parser().parse_args(argv[1:])
    return run_cli.parser().parse_args(argv)


def test_the_full_plan_measures_real_sizes_under_every_runtime(tmp_path: Path) -> None:
    steps = plan(tmp_path, "cuda", quick=False, variants="ln,un,prepbn,crms")
    names = [s.name for s in steps]
    assert names[0] == "gpu tests" and names[1] == "smoke sweep" and names[-1] == "scaling"
    assert "-m" in steps[0].argv and "gpu" in steps[0].argv
    sweep = parsed(steps[1])
    assert sweep.device == "cuda" and sweep.runtime == "eager,compile,onnxruntime,cudagraphs"
    assert sweep.precision == "fp32,bf16,fp16" and sweep.max_steps is None
    benches = [parsed(s) for s in steps if s.name.startswith("deploy-bench")]
    assert [b.model for b in benches] == ["deit_tiny_patch16_224", "deit_small_patch16_224",
                                          "swin_tiny_patch4_window7_224", "gpt2-small"]
    assert all(b.precision == "fp32,bf16" and "cudagraphs" in b.runtime and b.device == "cuda" for b in benches)
    assert benches[-1].seq_len == 1024
    assert all(str(tmp_path) in str(b.out) for b in benches)


def test_quick_plan_is_small_and_the_summary_quotes_the_focus_ratios(tmp_path: Path) -> None:
    steps = plan(tmp_path, "cpu", quick=True, variants="ln,un,prepbn,crms")
    sweep = parsed(steps[1])
    assert sweep.max_steps == 6 and sweep.tasks == "imagenet"
    bench = parsed(next(s for s in steps if s.name.startswith("deploy-bench")))
    assert bench.img_size == 32 and float(bench.seconds) <= 5
    folder = tmp_path / "deploy-bench-deit-tiny-patch16-224"
    folder.mkdir()
    groups = {"eager fp32": {"rows": [{"variant": v, "b1_vs_ln": [0.9, 0.88, 0.92]} for v in ("ln", *FOCUS)]},
              "cudagraphs fp32": {"not_applicable": "cuda only"}}
    jsonio.write_atomic(folder / "report.json", {"groups": groups})
    for s in steps:
        s.code, s.seconds = 0, 1.0
    md = render_summary(tmp_path, steps, "cpu")
    assert "| smoke sweep | 0 |" in md and "deploy-bench-deit-tiny-patch16-224" in md
    table = focus_table(jsonio.read(folder / "report.json"))
    assert "0.900 [0.880, 0.920]" in table and "n/a" in table and all(v in table for v in FOCUS)


def test_make_gpu_check_runs_without_a_venv() -> None:
    make = (ROOT / "Makefile").read_text()
    target = make[make.index("gpu-check:"):].splitlines()[1]
    assert shlex.split(target.strip())[1:3] == ["run_suite.py", "gpu-check"] and "$(GPU_PY)" in target
    assert "GPU_PY ?=" in make and "python3" in make  # no $(STAMP): nothing is installed on a GPU machine
