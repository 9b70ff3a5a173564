"""The benchmark files stay runnable: each benchmark once, timing disabled (no claims here)."""
from __future__ import annotations

from conftest import ROOT, run_forked_pytest


def test_norm_micro_benchmarks_run(tmp_path) -> None:
    proc = run_forked_pytest("-q", "--benchmark-disable", "-p", "no:cacheprovider", "-p", "no:xdist",
                             "--rootdir", str(ROOT / "benchmarks"), str(ROOT / "benchmarks"), folder=tmp_path / "bench",
                             timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert " passed" in proc.stdout


def test_deploy_bench_runs_per_runtime_and_judges_like_a_sweep(tmp_path) -> None:
    from suite import jsonio
    from suite.cli.main import main
    from suite.report.store import read_rows
    args = ["deploy-bench", "--model", "vit_tiny_patch16_224", "--img-size", "32", "--variants", "bn,crms",
            "--batch", "2", "--seconds", "0.5", "--device", "cpu"]
    assert main([*args, "--runtime", "eager,onnxruntime,cudagraphs", "--out", str(tmp_path / "a")]) == 0
    report = jsonio.read(tmp_path / "a" / "report.json")
    assert set(report["groups"]) == {"eager fp32", "onnxruntime fp32", "cudagraphs fp32"}
    assert "CUDA" in report["groups"]["cudagraphs fp32"]["not_applicable"]
    for label in ("eager fp32", "onnxruntime fp32"):
        rows = {r["variant"]: r for r in report["groups"][label]["rows"]}
        assert set(rows) == {"bn", "crms", "none", "ln"}
        assert rows["none"]["b1_vs_none"][0] == 1.0 and rows["crms"]["params"] < rows["ln"]["params"]
        assert all(r["agreement"] < 1e-4 for r in rows.values())  # fp32 reproduces eager fp32
    assert all(r["build_s"] > 0 for r in report["groups"]["onnxruntime fp32"]["rows"])
    md = (tmp_path / "a" / "report.md").read_text()
    assert "CPU:" in md and "Matrix: batch-1 latency / ln" in md
    rows = list(read_rows(tmp_path / "a" / "rows.jsonl"))
    assert len(rows) == 12 and {r["runtime"] for r in rows} == {"eager", "onnxruntime", "cudagraphs"}
    # a second bench (eager only) judged against the first: every cell gets a verdict, none incomparable
    assert main([*args, "--out", str(tmp_path / "b"), "--compare", str(tmp_path / "a")]) == 0
    verdicts = jsonio.read(tmp_path / "b" / "verdicts.json")["verdicts"]
    latency = [v for v in verdicts if v["metric"] == "latency"]
    assert len(latency) == 4 and all(v["verdict"] != "incomparable" for v in latency)


def test_scaling_benchmark_runs_and_fits(tmp_path) -> None:
    from suite import jsonio
    from suite.cli.main import main
    assert main(["scaling", "--tokens", "16,64", "--dims", "64", "--seconds", "0.3", "--device", "cpu",
                 "--out", str(tmp_path)]) == 0
    report = jsonio.read(tmp_path / "report.json")
    assert [r["N"] for r in report["rows"]] == [16, 64] and len(report["summary"]) == 1
    assert (tmp_path / "scaling.png").stat().st_size > 1000


def test_crossover_interpolates_in_log_log() -> None:
    from suite.bench.scaling import crossover, fit_exponent
    n, how = crossover([100, 400], [1.0, 16.0], [2.0, 8.0])  # ratios 2 then 0.5: equal at N = 200
    assert how == "interpolated" and abs(n - 200) < 1e-6
    assert abs(fit_exponent([10, 100, 1000], [1, 100, 10000]) - 2) < 1e-9
