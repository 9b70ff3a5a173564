"""gpu-check: the plan (real commands, in order of value), the budget (steps that do not fit are
skipped and named, a step at the deadline is stopped with its workers, a rerun repeats nothing that
finished), the bundle, and the whole script on CPU."""
from __future__ import annotations

import json
import os
import shlex
import sys
import tarfile
import time
from pathlib import Path

import pytest

from suite import jsonio
from suite.bench import gpu_check
from suite.bench.gpu_check import FOCUS, Check, Step, focus_tables, plan
from suite.cli import deploy_bench as bench_cli
from suite.cli import run as run_cli
from suite.cli import scaling as scaling_cli

from conftest import ROOT, plugin_env, run_forked


def parsed(step: Step):
    argv = step.argv[2:]  # after python and run_suite.py
    if argv and argv[0] == "deploy-bench":
        return bench_cli.parser().parse_args(argv[1:])
    if argv and argv[0] == "scaling":
        return scaling_cli.parser().parse_args(argv[1:])
    return run_cli.given_options(argv)


def test_the_plan_puts_the_headline_measurements_first(tmp_path: Path) -> None:
    steps = plan(Check(out=tmp_path, device="cuda", budget_s=480))
    names = [s.name for s in steps]
    assert names[:2] == ["environment", "gpu tests"] and "-m" in steps[1].argv and "gpu" in steps[1].argv
    benches = [(s, parsed(s)) for s in steps if s.name.startswith("deploy-bench")]
    eager = [b for s, b in benches[:3]]
    assert [b.model for b in eager] == ["deit_tiny_patch16_224", "gpt2-small", "deit_small_patch16_224"]
    assert all(b.runtime == "eager" and b.precision == "fp32,bf16" and b.device == "cuda" for b in eager)
    assert eager[1].seq_len == 1024
    compiled = [b for s, b in benches[3:6]]
    assert [b.model for b in compiled] == [b.model for b in eager]
    assert all(b.runtime == "compile,cudagraphs" and b.batch == 0 and b.build_jobs == 6 for b in compiled)
    assert all(b.variants == "ln,none,un,prepbn,crms,dyt" for _, b in benches)
    assert all(str(tmp_path) in str(b.out) and s.folder == b.out.name for s, b in benches)
    sweep = parsed(steps[names.index("sweep")])
    assert names.index("sweep") == 8 and sweep.tasks == "imagenet,wikitext" and sweep.device == "cuda"
    assert sweep.variants == "ln,prepbn" and "cudagraphs" in sweep.runtime and sweep.max_steps is None
    assert names[-1] == "scaling" and parsed(steps[-1]).device == "cuda"


def sleeper(name: str, seconds: float, min_s: float = 0, folder: str | None = None) -> Step:
    """A step that sleeps in a grandchild too: stopping it must end the whole process group."""
    code = (f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            f"time.sleep({seconds})")
    return Step(name, [sys.executable, "-c", code], min_s, folder)


def test_the_budget_stops_a_step_with_its_workers_skips_the_rest_and_a_rerun_repeats_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil
    steps = [Step("environment", [], 0), sleeper("quick", 0.1), sleeper("long", 60), sleeper("never", 0.1, min_s=5)]
    monkeypatch.setattr(gpu_check, "plan", lambda check: [Step(**vars(s)) for s in steps])
    monkeypatch.setattr(gpu_check, "RESERVE_S", 1.0)
    t0 = time.monotonic()
    code = gpu_check.run_gpu_check(name="t", device="cpu", budget_s=8, results_dir=tmp_path, out=tmp_path / "c",
                                   bundle_dir=tmp_path / "b")
    assert code == 0 and time.monotonic() - t0 < 8 + 15  # within the budget, the stop's grace and the bundle
    record = {s["name"]: s for s in jsonio.read(tmp_path / "c" / "steps.json")["steps"]}
    assert [record[n]["status"] for n in ("environment", "quick", "long", "never")] == \
        ["ok", "ok", "stopped at the budget", "skipped: budget"]
    assert not [p for p in psutil.process_iter(["cmdline"]) if "time.sleep(60)" in " ".join(p.info["cmdline"] or [])]
    summary = (tmp_path / "b" / "summary.md").read_text()
    assert "Not run for the budget, or stopped at it: long, never." in summary
    # a second call on the same folder (a warm machine) repeats only what did not finish
    monkeypatch.setattr(gpu_check, "plan", lambda check: [Step(**vars(s)) for s in steps[:2]] + [sleeper("long", 0.1)])
    gpu_check.run_gpu_check(name="t", device="cpu", budget_s=8, results_dir=tmp_path, out=tmp_path / "c",
                            bundle_dir=tmp_path / "b")
    again = {s["name"]: s["status"] for s in jsonio.read(tmp_path / "c" / "steps.json")["steps"]}
    assert again == {"environment": "ok", "quick": "done earlier", "long": "ok"}


def test_a_stopped_sweep_resumes_and_a_stopped_bench_starts_clean(tmp_path: Path) -> None:
    check = Check(out=tmp_path, device="cpu", budget_s=30)
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "run.json").write_text("{}")
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "rows.jsonl").write_text("{}\n")
    for folder, expect in (("sweep", "--resume"), ("bench", None)):
        step = Step(folder, [sys.executable, "-c", "import sys; print(sys.argv[1:])"], 0, folder)
        gpu_check.run_command(check, step)
        assert step.status == "ok"
        printed = (tmp_path / f"{folder}.log").read_text()
        assert (expect in printed) if expect else printed.strip() == "[]"
    assert not (tmp_path / "bench").exists()


def test_the_summary_quotes_the_focus_ratios_of_every_model(tmp_path: Path) -> None:
    for folder, groups in (("deploy-bench-deit-tiny-patch16-224-eager", {"eager fp32": 0.9}),
                           ("deploy-bench-deit-tiny-patch16-224-compiled", {"cudagraphs bf16": 0.8})):
        (tmp_path / folder).mkdir()
        jsonio.write_atomic(tmp_path / folder / "report.json", {"args": {"model": "deit_tiny_patch16_224"}, "groups": {
            label: {"rows": [{"variant": v, "b1_vs_ln": [x, x - 0.02, x + 0.02]} for v in ("ln", *FOCUS)]}
            for label, x in groups.items()} | {"compile fp32": {"not_applicable": "no"}}})
    (table,) = focus_tables(tmp_path).values()
    assert "0.900 [0.880, 0.920]" in table and "0.800 [0.780, 0.820]" in table and "n/a" in table
    assert all(v in table for v in FOCUS)


#: what the GPU image lacks: the check's steps (fresh interpreters) run here without them
LACKING = ("jsonschema", "pycocotools", "submitit")


@pytest.mark.slow
def test_the_whole_check_on_cpu_stops_within_its_budget_and_bundles_what_it_did(tmp_path: Path) -> None:
    """Its steps run without the packages the GPU image lacks (a sitecustomize hides them from every
    fresh interpreter), so the gpu tests step also shows that pytest collects every test file there:
    `pytest -m gpu` imports every file before it selects."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(f"import sys\nfor m in {LACKING!r}:\n    sys.modules[m] = None\n")
    env = plugin_env() | {"PYTHONPATH": os.pathsep.join([str(hide), plugin_env()["PYTHONPATH"]])}
    env.pop("NORMBENCH_VALIDATE_ROWS", None)  # validating needs jsonschema
    out, bundle = tmp_path / "check", tmp_path / "bundle"
    t0 = time.monotonic()
    proc = run_forked("gpu-check", "--device", "cpu", "--budget", "60", "--out", str(out), "--bundle", str(bundle),
                      env=env, folder=tmp_path / "cli", timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert time.monotonic() - t0 < 60 + 30  # the budget, plus a stopped step's grace and the bundle
    files = sorted(p.name for p in bundle.iterdir())
    assert files == ["gpu-check-cpu.tar.gz", "summary.md"]  # fits the device tool's 8 returned files
    steps = {s["name"]: s for s in jsonio.read(out / "steps.json")["steps"]}
    assert steps["environment"]["status"] == "ok" and steps["gpu tests"]["status"] == "ok"
    tests_log = (out / "gpu-tests.log").read_text()
    assert "error" not in tests_log.lower() and "skipped" in tests_log and "needs CUDA" in tests_log
    left_out = [n for n, s in steps.items() if s["status"] in ("skipped: budget", "stopped at the budget")]
    assert "scaling" in left_out and "sweep" in left_out
    summary = (bundle / "summary.md").read_text()
    assert f"Not run for the budget, or stopped at it: {', '.join(left_out)}." in summary
    assert "gpu tests: " in summary and "skipped" in summary
    with tarfile.open(bundle / "gpu-check-cpu.tar.gz") as tar:
        names = tar.getnames()
    assert "gpu-check-cpu/environment.json" in names and "gpu-check-cpu/steps.json" in names
    assert not any(n.endswith(".pt") for n in names)
    env_report = json.loads((out / "environment.json").read_text())
    assert {d["name"] for d in env_report["dependencies"]} >= {"torch", "jsonschema", "pycocotools"}


def test_make_gpu_check_runs_without_a_venv() -> None:
    make = (ROOT / "Makefile").read_text()
    target = make[make.index("gpu-check:"):].splitlines()[1]
    assert shlex.split(target.strip())[1:3] == ["run_suite.py", "gpu-check"] and "$(GPU_PY)" in target
    assert "GPU_PY ?=" in make and "python3" in make  # no $(STAMP): nothing is installed on a GPU machine
    wheels = make[make.index("\nwheelhouse:"):].splitlines()[2]
    assert "scripts/wheelhouse.py" in wheels and "--dest .whl" in wheels
